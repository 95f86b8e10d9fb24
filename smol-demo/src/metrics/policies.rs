//! The policies' own metrics (the core's `metrics` feature, names in docs/metrics.md) in
//! `/metrics`: [`PolicyMetrics`], a `metrics` recorder that keeps counters and gauges and writes
//! them as Prometheus text.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

use super::{Kind, PromText};

/// Series by key; a counter's count, or a gauge's `f64` as bits.
type Series = Mutex<BTreeMap<Key, Arc<AtomicU64>>>;

/// A recorder for the counters (`tailguard_<policy>_<event>_total`) and gauges
/// (`tailguard_breaker_state`) tailguard's policies emit.
///
/// Install it with [`install`](PolicyMetrics::install) before building the policies: they
/// register their series when built. Counting is a relaxed atomic add on a handle; only
/// registering (once per policy) and writing take a lock. Histograms, which the policies do not
/// emit, are dropped.
#[derive(Debug, Default)]
pub struct PolicyMetrics {
    counters: Series,
    gauges: Series,
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

    fn lock(series: &Series) -> MutexGuard<'_, BTreeMap<Key, Arc<AtomicU64>>> {
        series
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Writes every counter, then every gauge, whose name starts with `tailguard_` (a family per
    /// name, a series per label set), in name order.
    pub fn write(&self, out: &mut PromText) {
        let kinds = [
            (
                &self.counters,
                Kind::Counter,
                "A tailguard policy's events (docs/metrics.md).",
            ),
            (
                &self.gauges,
                Kind::Gauge,
                "A tailguard policy's state (docs/metrics.md).",
            ),
        ];
        for (series, kind, help) in kinds {
            let series = Self::lock(series);
            let mut family = None;
            for (key, value) in series.iter() {
                let name = key.name();
                if !name.starts_with("tailguard_") {
                    continue;
                }
                if family != Some(name) {
                    out.family(name, kind, help);
                    family = Some(name);
                }
                let labels: Vec<(&str, &str)> = key
                    .labels()
                    .map(|label| (label.key(), label.value()))
                    .collect();
                let value = value.load(Relaxed);
                let value = match kind {
                    Kind::Gauge => f64::from_bits(value),
                    _ => value as f64,
                };
                out.sample(name, &labels, value);
            }
        }
    }
}

impl Recorder for PolicyMetrics {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let count = Arc::clone(Self::lock(&self.counters).entry(key.clone()).or_default());
        Counter::from_arc(count)
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let value = Arc::clone(Self::lock(&self.gauges).entry(key.clone()).or_default());
        Gauge::from_arc(value)
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
            text.contains("tailguard_breaker_rejections_total{name=\"replica-1\",host=\"\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE tailguard_breaker_state gauge\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "tailguard_breaker_state{name=\"replica-1\",host=\"\",state=\"open\"} 1\n"
            ),
            "{text}"
        );
        assert!(text.contains(
            "tailguard_breaker_transitions_total{name=\"replica-1\",host=\"\",from=\"closed\",to=\"open\"} 1\n"
        ));
    }
}
