//! The policies' own counters (the core's `metrics` feature, names in docs/metrics.md) in
//! `/metrics`: [`PolicyMetrics`], a `metrics` recorder that keeps counters and writes them as
//! Prometheus text.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

use super::{Kind, PromText};

/// A recorder for the counters tailguard's policies emit (`tailguard_<policy>_<event>_total`).
///
/// Install it with [`install`](PolicyMetrics::install) before building the policies: they
/// register their counters when built. Counting is a relaxed atomic add on a handle; only
/// registering (once per policy) and writing take the lock. Gauges and histograms, which the
/// policies do not emit, are dropped.
#[derive(Debug, Default)]
pub struct PolicyMetrics {
    counters: Mutex<BTreeMap<Key, Arc<AtomicU64>>>,
}

/// The recorder [`PolicyMetrics::install`] installed, or `None` if another was there first.
static INSTALLED: OnceLock<Option<&'static PolicyMetrics>> = OnceLock::new();

impl PolicyMetrics {
    /// Installs a `PolicyMetrics` as the process's recorder, once; later calls return the same
    /// one. `None` if another recorder was installed first.
    pub fn install() -> Option<&'static PolicyMetrics> {
        *INSTALLED.get_or_init(|| {
            let recorder: &'static PolicyMetrics = Box::leak(Box::default());
            metrics::set_global_recorder(recorder)
                .ok()
                .map(|()| recorder)
        })
    }

    /// The installed recorder, if [`install`](PolicyMetrics::install) succeeded.
    pub fn installed() -> Option<&'static PolicyMetrics> {
        INSTALLED.get().copied().flatten()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Key, Arc<AtomicU64>>> {
        self.counters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Writes every counter whose name starts with `tailguard_` (a family per name, a series per
    /// label set), in name order.
    pub fn write(&self, out: &mut PromText) {
        let counters = self.lock();
        let mut family = None;
        for (key, count) in counters.iter() {
            let name = key.name();
            if !name.starts_with("tailguard_") {
                continue;
            }
            if family != Some(name) {
                out.family(
                    name,
                    Kind::Counter,
                    "A tailguard policy's events (see docs/metrics.md).",
                );
                family = Some(name);
            }
            let labels: Vec<(&str, &str)> = key
                .labels()
                .map(|label| (label.key(), label.value()))
                .collect();
            out.sample(name, &labels, count.load(Relaxed) as f64);
        }
    }
}

impl Recorder for PolicyMetrics {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let count = Arc::clone(self.lock().entry(key.clone()).or_default());
        Counter::from_arc(count)
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tailguard::breaker::CircuitBreaker;
    use tailguard::time::ManualTimer;

    use super::*;

    #[test]
    fn a_breakers_counters_are_written_as_prometheus_text() {
        let recorder = PolicyMetrics::default();
        let breaker = metrics::with_local_recorder(&recorder, || {
            let breaker = CircuitBreaker::builder()
                .name("replica-1")
                .count_window(2)
                .minimum_calls(2)
                .open_duration(Duration::from_secs(5))
                .build_with(ManualTimer::new())
                .unwrap();
            for _ in 0..2 {
                breaker.try_acquire().unwrap().failure();
            }
            breaker
        });
        assert!(breaker.try_acquire().is_err());
        assert!(breaker.try_acquire().is_err());
        let mut out = PromText::new();
        recorder.write(&mut out);
        let text = out.finish();
        assert!(
            text.contains("# TYPE tailguard_breaker_rejections_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("tailguard_breaker_rejections_total{name=\"replica-1\"} 2\n"),
            "{text}"
        );
        assert!(text.contains(
            "tailguard_breaker_transitions_total{name=\"replica-1\",from=\"closed\",to=\"open\"} 1\n"
        ));
    }
}
