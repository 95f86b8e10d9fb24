//! Gradient2: the limit follows the ratio of a long-term latency baseline to the latest
//! latency, plus a small queue allowance (after Netflix concurrency-limits' `Gradient2Limit`).

use std::time::Duration;

use super::algorithm::{Algorithm, Sample};
use crate::validate;
use crate::ConfigError;

/// Samples averaged plainly before the baseline becomes an exponential average.
const WARMUP: u32 = 100;

/// Latency-gradient limit, Gradient2-style.
///
/// The *short* RTT, an exponential average over about one round of the calls in flight (the
/// last `limit` samples, and at least [`short_window`](Self::short_window)) (concurrency-limits takes the raw sample, or a window's aggregate: one
/// sample's noise alone would hold the limit down), is compared with a *long* RTT, an
/// exponential average over [`long_window`](Self::long_window) of time:
///
/// ```text
/// gradient  = clamp(long / short, 0.5, 1.0)
/// new       = limit × gradient + max(queue_size, √limit)
/// limit'    = limit × (1 − w) + new × w,   w = smoothing / limit
/// ```
///
/// A sample moves the limit `1/limit` of the way `smoothing` says, so that the limit moves by
/// about `smoothing` per round trip (about `limit` samples) whatever its size (concurrency-limits
/// gets the same from updating once per window of samples).
///
/// While latency stays at the baseline the gradient is 1 and the limit grows by the queue
/// allowance (smoothed); once calls queue, latency rises, the gradient falls and the limit
/// settles where about `max(queue_size, √limit)` calls wait (the square root, as Envoy's
/// headroom, so the allowance scales with the backend). A gradient is never below 0.5, so one outlier cannot
/// more than halve the limit. When the long RTT is more than twice the short one (latency has
/// come back down after a long overload), the long RTT decays by 5 % per sample so the limit
/// recovers without waiting for the average. Dropped calls are treated as concurrency-limits
/// treats them here: their latency is a sample like any other (a timed-out call's is long),
/// and a permit dropped without a report, which measured nothing, is skipped.
///
/// Under sustained overload the long average drifts towards the loaded latency; the
/// limiter's periodic probe ([`probe_interval`](super::AdaptiveLimiterBuilder::probe_interval))
/// re-measures the no-load latency at low concurrency and [`rebase`s](Algorithm::rebase) the
/// long RTT on it.
///
/// ```
/// use std::time::Duration;
/// use tailguard::limit::{AdaptiveLimiter, Gradient2};
///
/// let gradient = Gradient2::new()
///     .smoothing(0.2)?
///     .queue_size(4)?
///     .long_window(Duration::from_secs(60))?;
/// let limiter = AdaptiveLimiter::builder().algorithm(gradient).build()?;
/// assert_eq!(limiter.limit(), 20);
/// # Ok::<(), tailguard::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Gradient2 {
    smoothing: f64,
    queue_size: u32,
    long_window: Duration,
    short_window: u32,
    /// The short RTT in nanoseconds, once there is a sample.
    short: Option<f64>,
    /// The long RTT in nanoseconds, once there is a sample.
    long: Option<f64>,
    warmup: u32,
    last: Option<std::time::Instant>,
}

impl Gradient2 {
    /// Smoothing 0.2, queue allowance 4, a short window of 10 samples, a 10 s long window.
    pub fn new() -> Self {
        Gradient2 {
            smoothing: 0.2,
            queue_size: 4,
            long_window: Duration::from_secs(10),
            short_window: 10,
            short: None,
            long: None,
            warmup: 0,
            last: None,
        }
    }

    /// How far each sample moves the limit towards its new estimate, in (0, 1]. Field:
    /// `gradient2.smoothing`.
    pub fn smoothing(mut self, smoothing: f64) -> Result<Self, ConfigError> {
        self.smoothing = validate::rate("gradient2.smoothing", smoothing, "")?;
        Ok(self)
    }

    /// How many calls may wait beyond the no-load concurrency, at least (at least 1, so that a
    /// limit can always grow again; the allowance is `max(queue_size, √limit)`). Field:
    /// `gradient2.queue_size`.
    pub fn queue_size(mut self, queue_size: u32) -> Result<Self, ConfigError> {
        self.queue_size = validate::at_least_one(
            "gradient2.queue_size",
            queue_size,
            "the limit grows by it when latency is at the baseline",
        )?;
        Ok(self)
    }

    /// The time constant of the long RTT's exponential average. Field: `gradient2.long_window`.
    pub fn long_window(mut self, long_window: Duration) -> Result<Self, ConfigError> {
        self.long_window = validate::positive_duration("gradient2.long_window", long_window, "")?;
        Ok(self)
    }

    /// How many samples the short RTT averages over at least (an exponential average, weight
    /// `2 / (max(n, limit) + 1)`). Field: `gradient2.short_window`.
    pub fn short_window(mut self, samples: u32) -> Result<Self, ConfigError> {
        self.short_window = validate::at_least_one("gradient2.short_window", samples, "")?;
        Ok(self)
    }

    /// The long RTT (the baseline), once a sample has set it.
    pub fn long_rtt(&self) -> Option<Duration> {
        self.long.map(|nanos| Duration::from_nanos(nanos as u64))
    }

    fn average(&mut self, sample: &Sample, rtt: f64) -> f64 {
        let long = match self.long {
            None => rtt,
            Some(long) if self.warmup < WARMUP => long + (rtt - long) / f64::from(self.warmup + 1),
            Some(long) => {
                let dt = self.last.map_or(0.0, |last| {
                    sample.now.saturating_duration_since(last).as_secs_f64()
                });
                let alpha = 1.0 - (-dt / self.long_window.as_secs_f64()).exp();
                long + (rtt - long) * alpha
            }
        };
        self.warmup = self.warmup.saturating_add(1);
        self.last = Some(sample.now);
        // Latency came back down after a long overload: let the baseline follow quickly.
        let long = if long / rtt > 2.0 { long * 0.95 } else { long };
        self.long = Some(long);
        long
    }
}

impl Default for Gradient2 {
    fn default() -> Self {
        Gradient2::new()
    }
}

impl Algorithm for Gradient2 {
    fn update(&mut self, limit: f64, sample: &Sample) -> f64 {
        let Some(rtt) = sample.rtt else {
            return limit; // dropped unreported: nothing measured
        };
        let rtt = (rtt.as_nanos() as f64).max(1.0);
        // About one round of the calls in flight, and at least `short_window` samples.
        let alpha = 2.0 / (f64::from(self.short_window).max(limit) + 1.0);
        let short = self
            .short
            .map_or(rtt, |short| short + (rtt - short) * alpha);
        self.short = Some(short);
        let long = self.average(sample, short);
        if f64::from(sample.in_flight) < limit / 2.0 {
            return limit; // application-limited: the sample says nothing about the limit
        }
        let gradient = (long / short).clamp(0.5, 1.0);
        let queue = f64::from(self.queue_size).max(limit.sqrt());
        let new = limit * gradient + queue;
        // Each sample is about 1/limit of a round trip's samples: `smoothing` per round trip.
        let weight = self.smoothing / limit.max(1.0);
        limit * (1.0 - weight) + new * weight
    }

    fn wants_probe(&self) -> bool {
        true
    }

    fn rebase(&mut self, rtt: Duration) {
        self.long = Some((rtt.as_nanos() as f64).max(1.0));
        self.warmup = WARMUP;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn at(origin: Instant, ms: u64, rtt_ms: u64, in_flight: u32) -> Sample {
        Sample {
            now: origin + Duration::from_millis(ms),
            rtt: Some(Duration::from_millis(rtt_ms)),
            in_flight,
            dropped: false,
        }
    }

    #[test]
    fn grows_at_the_baseline_and_shrinks_when_latency_rises() {
        let origin = Instant::now();
        let mut g = Gradient2::new();
        let mut limit = 20.0;
        for i in 0..400 {
            limit = g.update(limit, &at(origin, i, 10, 20));
        }
        assert!(limit > 30.0, "{limit}");
        let before = limit;
        for i in 400..800 {
            limit = g.update(limit, &at(origin, i, 40, limit as u32));
        }
        assert!(limit < before * 0.7, "{before} -> {limit}");
    }

    #[test]
    fn application_limited_samples_do_not_move_the_limit() {
        let origin = Instant::now();
        let mut g = Gradient2::new();
        for i in 0..100 {
            assert_eq!(g.update(50.0, &at(origin, i, 10, 5)), 50.0);
        }
    }

    #[test]
    fn unmeasured_drops_are_skipped_and_rebase_sets_the_baseline() {
        let origin = Instant::now();
        let mut g = Gradient2::new();
        let dropped = Sample {
            rtt: None,
            dropped: true,
            ..at(origin, 0, 0, 10)
        };
        assert_eq!(g.update(10.0, &dropped), 10.0);
        assert_eq!(g.long_rtt(), None);
        g.update(10.0, &at(origin, 1, 30, 10));
        g.rebase(Duration::from_millis(10));
        assert_eq!(g.long_rtt(), Some(Duration::from_millis(10)));
    }

    #[test]
    fn bad_configuration_names_the_field() {
        let g = Gradient2::new;
        assert_eq!(
            g().short_window(0).unwrap_err().field(),
            "gradient2.short_window"
        );
        assert_eq!(
            g().smoothing(0.0).unwrap_err().field(),
            "gradient2.smoothing"
        );
        assert_eq!(
            g().queue_size(0).unwrap_err().field(),
            "gradient2.queue_size"
        );
        assert_eq!(
            g().long_window(Duration::ZERO).unwrap_err().field(),
            "gradient2.long_window"
        );
    }
}
