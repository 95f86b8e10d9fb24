//! Adaptive attempt timeouts: a percentile of recent latency × a factor, kept between a floor
//! and a ceiling.
//!
//! A static timeout is a guess made once: too tight and it cuts calls that were about to
//! succeed (each one a wasted call and, with retries, a duplicate); too loose and a stuck
//! call holds its caller far longer than any healthy one would. An [`AdaptiveTimeout`] learns
//! the timeout of one destination from its recent latencies: the `percentile` (p99 by
//! default) of a [`RollingHistogram`] × `factor` (2 by default), kept between `floor` and
//! `ceiling`. Until the window holds `min_samples` latencies the timeout is the floor, so set
//! the floor to the tightest timeout you would accept as a static one.
//!
//! It is sans-IO: [`timeout_at`](AdaptiveTimeout::timeout_at) takes `now`, and
//! [`attempt_timeout`](AdaptiveTimeout::attempt_timeout) reads no clock at all (the value as of
//! the latest `timeout_at` or `record_at`). Recording and reading are lock-free and never
//! allocate; the percentile is recomputed at most once per slice of the window.
//!
//! ## What to record
//!
//! - [`record_at`](AdaptiveTimeout::record_at) the latency of every attempt that completed in
//!   time, success or failure;
//! - [`record_timeout_at`](AdaptiveTimeout::record_timeout_at) every attempt the timeout cut:
//!   it is recorded at the time it had been out, a lower bound on its latency. Leaving cut
//!   attempts out would be survivor bias: the window would lose its tail, the percentile would
//!   drop, the timeout would tighten and cut more, and so on. A lower bound above the
//!   percentile keeps the percentile exact (the count of samples under it is right);
//! - if the caller lets some cut attempts run on in the background (or learns their fate
//!   later), [`record_late`](AdaptiveTimeout::record_late) whether each would have succeeded.
//!
//! ## False timeouts
//!
//! A *false timeout* is an attempt cut that would have succeeded had it been given longer.
//! It cannot be known for an attempt that was cancelled; it is **estimated** from the cut
//! attempts whose outcome the caller observed anyway (by letting them finish in the
//! background, or by a later check): [`AdaptiveTimeoutStats::false_timeout_rate`] is the share
//! of those that succeeded, and, as a rate over all attempts,
//! [`AdaptiveTimeoutStats::false_timeout_share`] multiplies it by the share of attempts cut.
//! Both are estimates from a sample; with no late outcome observed they are `None`.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use tailguard::adaptive_timeout::AdaptiveTimeout;
//!
//! let timeout = AdaptiveTimeout::builder()
//!     .percentile(0.99)
//!     .factor(2.0)
//!     .floor(Duration::from_millis(20))
//!     .ceiling(Duration::from_secs(2))
//!     .min_samples(100)
//!     .build()?;
//! let t0 = Instant::now();
//! assert_eq!(timeout.timeout_at(t0), Duration::from_millis(20)); // the floor, until it knows
//! for i in 0..1000u64 {
//!     timeout.record_at(t0, Duration::from_millis(10 + i % 40)); // 10..50 ms
//! }
//! // p99 ≈ 50 ms, × 2.
//! let learnt = timeout.timeout_at(t0);
//! assert!(learnt > Duration::from_millis(95) && learnt < Duration::from_millis(101));
//! assert_eq!(timeout.attempt_timeout(), learnt); // no clock needed
//! # Ok::<(), tailguard::ConfigError>(())
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::latency::{RollingHistogram, MAX_SLOTS};
use crate::{validate, ConfigError};

/// A per-destination attempt timeout learnt from recent latency; see the
/// [module documentation](self). Clones share everything.
#[derive(Clone)]
pub struct AdaptiveTimeout {
    inner: Arc<Inner>,
}

struct Inner {
    percentile: f64,
    factor: f64,
    floor: Duration,
    ceiling: Duration,
    min_samples: u64,
    latency: RollingHistogram,
    /// The slice (plus one) the cached timeout was computed in; 0 = never from enough samples.
    cached_slice: AtomicU64,
    cached_nanos: AtomicU64,
    completed: AtomicU64,
    timed_out: AtomicU64,
    late_ok: AtomicU64,
    late_failed: AtomicU64,
}

impl AdaptiveTimeout {
    /// A builder with the defaults: p99 × 2, within 10 ms..=30 s, after 100 samples, over the
    /// last 10 s (10 slices).
    pub fn builder() -> AdaptiveTimeoutBuilder {
        AdaptiveTimeoutBuilder::default()
    }

    /// The attempt timeout at `now`: `percentile` × `factor` of the window ending at `now`,
    /// within `floor..=ceiling`; the floor while the window has fewer than `min_samples`
    /// (after a quiet spell that thinned it, the last timeout learnt from enough samples).
    pub fn timeout_at(&self, now: Instant) -> Duration {
        let inner = &*self.inner;
        let slice = inner.latency.slice_at(now) + 1;
        let cached = inner.cached_slice.load(Relaxed);
        if cached == slice {
            return Duration::from_nanos(inner.cached_nanos.load(Relaxed));
        }
        if !inner.latency.has_at_least(now, inner.min_samples) {
            return self.attempt_timeout();
        }
        let Some(quantile) = inner.latency.quantile_at(now, inner.percentile) else {
            return self.attempt_timeout();
        };
        let timeout = quantile
            .mul_f64(inner.factor)
            .clamp(inner.floor, inner.ceiling);
        inner.cached_nanos.store(
            u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX),
            Relaxed,
        );
        inner.cached_slice.store(slice, Relaxed);
        timeout
    }

    /// The timeout as last computed by [`timeout_at`](AdaptiveTimeout::timeout_at), without
    /// reading any clock; the floor before it has ever had enough samples.
    pub fn attempt_timeout(&self) -> Duration {
        let inner = &*self.inner;
        if inner.cached_slice.load(Relaxed) == 0 {
            inner.floor
        } else {
            Duration::from_nanos(inner.cached_nanos.load(Relaxed))
        }
    }

    /// An attempt completed in time (success or failure) after `latency`, observed at `now`.
    pub fn record_at(&self, now: Instant, latency: Duration) {
        self.inner.latency.record_at(now, latency);
        self.inner.completed.fetch_add(1, Relaxed);
    }

    /// [`record_at`](AdaptiveTimeout::record_at) at `now_nanos`, an instant on the process's
    /// nanosecond scale ([`process_nanos`](crate::time::process_nanos)): what
    /// [`Timer::now_coarse_nanos`](crate::time::Timer::now_coarse_nanos) returns, for a hot path
    /// (an attempt ready at once, say) that would rather not build an `Instant`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tailguard::adaptive_timeout::AdaptiveTimeout;
    /// use tailguard::time::{ManualTimer, Timer};
    ///
    /// let timer = ManualTimer::new();
    /// let timeout = AdaptiveTimeout::builder().min_samples(1).build()?;
    /// timeout.record_nanos_at(timer.now_coarse_nanos(), Duration::ZERO);
    /// assert_eq!(timeout.latency().count_at(timer.now()), 1);
    /// assert_eq!(timeout.stats().completed, 1);
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    pub fn record_nanos_at(&self, now_nanos: u64, latency: Duration) {
        self.inner.latency.record_nanos_at(now_nanos, latency);
        self.inner.completed.fetch_add(1, Relaxed);
    }

    /// An attempt was cut by the timeout at `now`, after being out `elapsed`: recorded as a
    /// lower bound on its latency, and counted.
    pub fn record_timeout_at(&self, now: Instant, elapsed: Duration) {
        self.inner.latency.record_at(now, elapsed);
        self.inner.timed_out.fetch_add(1, Relaxed);
    }

    /// The outcome of an attempt the timeout had cut, learnt later (it was left to finish in
    /// the background, say): `succeeded` makes it a false timeout. Counted only; its latency
    /// was already recorded, as a lower bound, when it was cut.
    pub fn record_late(&self, succeeded: bool) {
        let counter = if succeeded {
            &self.inner.late_ok
        } else {
            &self.inner.late_failed
        };
        counter.fetch_add(1, Relaxed);
    }

    /// The window the timeout is computed from.
    pub fn latency(&self) -> &RollingHistogram {
        &self.inner.latency
    }

    /// What it has seen so far.
    pub fn stats(&self) -> AdaptiveTimeoutStats {
        let inner = &*self.inner;
        AdaptiveTimeoutStats {
            completed: inner.completed.load(Relaxed),
            timed_out: inner.timed_out.load(Relaxed),
            late_succeeded: inner.late_ok.load(Relaxed),
            late_failed: inner.late_failed.load(Relaxed),
        }
    }
}

/// What an [`AdaptiveTimeout`] has seen: a snapshot of relaxed counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdaptiveTimeoutStats {
    /// Attempts that completed in time.
    pub completed: u64,
    /// Attempts the timeout cut.
    pub timed_out: u64,
    /// Cut attempts later seen to succeed: false timeouts.
    pub late_succeeded: u64,
    /// Cut attempts later seen to fail.
    pub late_failed: u64,
}

impl AdaptiveTimeoutStats {
    /// The share of attempts the timeout cut (`None` before any attempt).
    pub fn timeout_rate(&self) -> Option<f64> {
        let all = self.completed + self.timed_out;
        (all > 0).then(|| self.timed_out as f64 / all as f64)
    }

    /// Of the cut attempts whose outcome was observed, the share that succeeded: an estimate
    /// of how many timeouts were false (`None` with no outcome observed).
    pub fn false_timeout_rate(&self) -> Option<f64> {
        let seen = self.late_succeeded + self.late_failed;
        (seen > 0).then(|| self.late_succeeded as f64 / seen as f64)
    }

    /// The estimated share of all attempts cut although they would have succeeded:
    /// [`timeout_rate`](Self::timeout_rate) × [`false_timeout_rate`](Self::false_timeout_rate).
    pub fn false_timeout_share(&self) -> Option<f64> {
        Some(self.timeout_rate()? * self.false_timeout_rate()?)
    }
}

impl fmt::Debug for AdaptiveTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("AdaptiveTimeout")
            .field("percentile", &inner.percentile)
            .field("factor", &inner.factor)
            .field("floor", &inner.floor)
            .field("ceiling", &inner.ceiling)
            .field("min_samples", &inner.min_samples)
            .field("window", &inner.latency.window())
            .field("attempt_timeout", &self.attempt_timeout())
            .field("stats", &self.stats())
            .finish()
    }
}

/// Builds an [`AdaptiveTimeout`]; every value is checked by
/// [`build`](AdaptiveTimeoutBuilder::build).
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct AdaptiveTimeoutBuilder {
    percentile: f64,
    factor: f64,
    floor: Duration,
    ceiling: Duration,
    min_samples: u64,
    window: Duration,
    slots: usize,
}

impl Default for AdaptiveTimeoutBuilder {
    fn default() -> Self {
        AdaptiveTimeoutBuilder {
            percentile: 0.99,
            factor: 2.0,
            floor: Duration::from_millis(10),
            ceiling: Duration::from_secs(30),
            min_samples: 100,
            window: Duration::from_secs(10),
            slots: 10,
        }
    }
}

impl AdaptiveTimeoutBuilder {
    /// The percentile of recent latency the timeout starts from, in `(0, 1]` (default 0.99).
    pub fn percentile(mut self, p: f64) -> Self {
        self.percentile = p;
        self
    }

    /// The multiple of that percentile allowed, a finite number ≥ 1.0 (default 2.0).
    pub fn factor(mut self, factor: f64) -> Self {
        self.factor = factor;
        self
    }

    /// The shortest timeout, and the one used until `min_samples` are known (default 10 ms;
    /// positive).
    pub fn floor(mut self, floor: Duration) -> Self {
        self.floor = floor;
        self
    }

    /// The longest timeout, at least `floor` (default 30 s).
    pub fn ceiling(mut self, ceiling: Duration) -> Self {
        self.ceiling = ceiling;
        self
    }

    /// Samples the window must hold before the percentile is trusted (at least 1; default 100).
    pub fn min_samples(mut self, n: u64) -> Self {
        self.min_samples = n;
        self
    }

    /// Learn from the last `window` of latencies, in `slots` slices (1..=64; default 10 s in
    /// 10).
    pub fn window(mut self, window: Duration, slots: usize) -> Self {
        self.window = window;
        self.slots = slots;
        self
    }

    /// Checks every value and builds the timeout.
    pub fn build(self) -> Result<AdaptiveTimeout, ConfigError> {
        let p = self.percentile;
        if !(p > 0.0 && p <= 1.0) {
            return Err(ConfigError::new(
                "percentile",
                format!(
                    "must be in (0, 1], e.g. 0.99 for p99, got {}",
                    validate::Float(p)
                ),
            ));
        }
        validate::factor("factor", self.factor)?;
        validate::positive_duration("floor", self.floor, "a zero timeout fails every call")?;
        if self.ceiling < self.floor {
            return Err(ConfigError::new(
                "ceiling",
                format!(
                    "must be at least `floor` ({:?}), got {:?}",
                    self.floor, self.ceiling
                ),
            ));
        }
        validate::nanos("ceiling", self.ceiling)?;
        validate::at_least_one("min_samples", self.min_samples, "a percentile of nothing")?;
        validate::count_in("window.slots", self.slots, 1..=MAX_SLOTS as u64, "")?;
        let latency = RollingHistogram::new(self.window, self.slots)
            .map_err(|e| ConfigError::new("window.duration", e.message().to_owned()))?;
        Ok(AdaptiveTimeout {
            inner: Arc::new(Inner {
                percentile: p,
                factor: self.factor,
                floor: self.floor,
                ceiling: self.ceiling,
                min_samples: self.min_samples,
                latency,
                cached_slice: AtomicU64::new(0),
                cached_nanos: AtomicU64::new(0),
                completed: AtomicU64::new(0),
                timed_out: AtomicU64::new(0),
                late_ok: AtomicU64::new(0),
                late_failed: AtomicU64::new(0),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn bad_values_are_refused_by_field() {
        let field = |b: AdaptiveTimeoutBuilder| b.build().unwrap_err().field();
        let b = AdaptiveTimeout::builder;
        assert_eq!(field(b().percentile(0.0)), "percentile");
        assert_eq!(field(b().percentile(1.5)), "percentile");
        assert_eq!(field(b().percentile(f64::NAN)), "percentile");
        assert_eq!(field(b().factor(0.9)), "factor");
        assert_eq!(field(b().floor(Duration::ZERO)), "floor");
        assert_eq!(field(b().floor(ms(100)).ceiling(ms(50))), "ceiling");
        assert_eq!(field(b().ceiling(Duration::MAX)), "ceiling");
        assert_eq!(field(b().min_samples(0)), "min_samples");
        assert_eq!(field(b().window(ms(100), 0)), "window.slots");
        assert_eq!(field(b().window(Duration::ZERO, 4)), "window.duration");
        assert!(b().percentile(1.0).build().is_ok());
    }

    #[test]
    fn the_floor_until_enough_samples_then_percentile_times_factor_clamped() {
        let t0 = Instant::now();
        let timeout = AdaptiveTimeout::builder()
            .percentile(0.5)
            .factor(3.0)
            .floor(ms(5))
            .ceiling(ms(100))
            .min_samples(10)
            .build()
            .unwrap();
        for _ in 0..9 {
            timeout.record_at(t0, ms(4));
        }
        assert_eq!(timeout.timeout_at(t0), ms(5), "9 samples: the floor");
        timeout.record_at(t0, ms(4));
        let learnt = timeout.timeout_at(t0);
        assert!(learnt.abs_diff(ms(12)) <= ms(12) / 100, "{learnt:?}");
        assert_eq!(timeout.attempt_timeout(), learnt);
        // A slower spell in the next window, clamped at the ceiling.
        let later = t0 + Duration::from_secs(20);
        for _ in 0..10 {
            timeout.record_at(later, ms(80));
        }
        assert_eq!(timeout.timeout_at(later), ms(100));
        // Quiet: the window empties, the last learnt timeout stays.
        assert_eq!(timeout.timeout_at(later + Duration::from_secs(60)), ms(100));
        // A fast spell: clamped at the floor.
        let fast = later + Duration::from_secs(120);
        for _ in 0..10 {
            timeout.record_at(fast, Duration::from_micros(100));
        }
        assert_eq!(timeout.timeout_at(fast), ms(5));
    }

    #[test]
    fn cut_attempts_keep_the_percentile_from_shrinking() {
        let t0 = Instant::now();
        let build = || {
            AdaptiveTimeout::builder()
                .percentile(0.9)
                .factor(1.0)
                .floor(ms(1))
                .min_samples(10)
                .build()
                .unwrap()
        };
        // 85 fast attempts, 15 slow ones (40 ms) cut at the 30 ms timeout.
        let honest = build();
        let biased = build();
        for _ in 0..85 {
            honest.record_at(t0, ms(5));
            biased.record_at(t0, ms(5));
        }
        for _ in 0..15 {
            honest.record_timeout_at(t0, ms(30));
        }
        // With the cut ones as lower bounds the p90 is still a cut one's: 30 ms.
        assert!(honest.timeout_at(t0).abs_diff(ms(30)) < ms(1));
        // Without them it would collapse to the fast ones.
        assert!(biased.timeout_at(t0) < ms(6));
    }

    #[test]
    fn false_timeouts_are_estimated_from_the_outcomes_seen() {
        let t0 = Instant::now();
        let timeout = AdaptiveTimeout::builder().build().unwrap();
        assert_eq!(timeout.stats().timeout_rate(), None);
        for _ in 0..90 {
            timeout.record_at(t0, ms(5));
        }
        for _ in 0..10 {
            timeout.record_timeout_at(t0, ms(30));
        }
        assert_eq!(timeout.stats().false_timeout_rate(), None);
        // Of 4 cut attempts let run on, 1 succeeded.
        for ok in [true, false, false, false] {
            timeout.record_late(ok);
        }
        let stats = timeout.stats();
        assert_eq!(stats.timeout_rate(), Some(0.1));
        assert_eq!(stats.false_timeout_rate(), Some(0.25));
        assert!((stats.false_timeout_share().unwrap() - 0.025).abs() < 1e-12);
    }
}
