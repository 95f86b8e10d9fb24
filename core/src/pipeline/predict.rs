//! The pipeline's prediction of how long an attempt takes: a percentile of its own recent
//! attempt latencies, or a configured floor until it has enough of them.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crate::latency::RollingHistogram;

/// The rolling window of attempt latencies and the rule that turns it into a prediction.
pub(super) struct Predictor {
    pub(super) latency: RollingHistogram,
    pub(super) percentile: f64,
    pub(super) min_samples: u64,
    pub(super) floor: Duration,
    /// The prediction last computed, and (plus one) the window slice it was computed in; 0 =
    /// none. Recomputed once per slice: a quantile is a scan of every bucket.
    cached_slice: AtomicU64,
    cached_nanos: AtomicU64,
}

impl Predictor {
    pub(super) fn new(
        latency: RollingHistogram,
        percentile: f64,
        min_samples: u64,
        floor: Duration,
    ) -> Self {
        Predictor {
            latency,
            percentile,
            min_samples,
            floor,
            cached_slice: AtomicU64::new(0),
            cached_nanos: AtomicU64::new(0),
        }
    }

    /// How long an attempt started at `now` is predicted to take: the percentile of the window
    /// once it holds `min_samples`, else the floor.
    pub(super) fn predict_at(&self, now: Instant) -> Duration {
        let slice = self.latency.slice_at(now) + 1;
        if self.cached_slice.load(Relaxed) == slice {
            return Duration::from_nanos(self.cached_nanos.load(Relaxed));
        }
        if !self.latency.has_at_least(now, self.min_samples) {
            return self.floor;
        }
        let Some(quantile) = self.latency.quantile_at(now, self.percentile) else {
            return self.floor;
        };
        self.cached_nanos.store(
            u64::try_from(quantile.as_nanos()).unwrap_or(u64::MAX),
            Relaxed,
        );
        self.cached_slice.store(slice, Relaxed);
        quantile
    }

    /// An attempt that ended at `now` took `latency`.
    #[inline]
    pub(super) fn record_at(&self, now: Instant, latency: Duration) {
        self.latency.record_at(now, latency);
    }

    /// An attempt that ended at `now_nanos` (the timer's coarse time,
    /// [`Timer::now_coarse_nanos`](crate::time::Timer::now_coarse_nanos)) took `latency`.
    #[inline]
    pub(super) fn record_nanos_at(&self, now_nanos: u64, latency: Duration) {
        self.latency.record_nanos_at(now_nanos, latency);
    }
}

impl fmt::Debug for Predictor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Predictor")
            .field("percentile", &self.percentile)
            .field("min_samples", &self.min_samples)
            .field("floor", &self.floor)
            .field("window", &self.latency.window())
            .finish()
    }
}
