//! How long the breaker stays open: a sequence of durations that grows with each failed probe
//! round and starts over when the breaker closes.

use std::fmt;
use std::time::Duration;

use crate::ConfigError;

/// The built-in open-duration policy: exponential growth with a cap and jitter.
///
/// The `n`-th consecutive opening (counting from 0 since the breaker last closed) lasts
/// `min(base × factorⁿ, max)`, shortened by a random fraction of up to `jitter` so that a fleet
/// of breakers that opened together does not probe in lockstep. It is an endless
/// `Iterator<Item = Duration>`; any other iterator of durations that is `Clone` works in its
/// place (see [`CircuitBreakerBuilder::open_durations`](super::CircuitBreakerBuilder::open_durations)):
/// the breaker clones the one it was given each time it closes, so the sequence starts over.
///
/// ```
/// use std::time::Duration;
/// use tailguard::breaker::OpenDuration;
///
/// let policy = OpenDuration::exponential(Duration::from_secs(1), 2.0, Duration::from_secs(5))?;
/// let secs: Vec<u64> = policy.take(5).map(|d| d.as_secs()).collect();
/// assert_eq!(secs, [1, 2, 4, 5, 5]);
///
/// // With jitter each opening is up to 10% shorter; a seed makes the sequence reproducible.
/// let jittered = OpenDuration::exponential(Duration::from_secs(1), 2.0, Duration::from_secs(5))?
///     .with_jitter(0.1)?
///     .with_seed(7);
/// for (d, full) in jittered.take(5).zip([1000, 2000, 4000, 5000, 5000]) {
///     assert!(d <= Duration::from_millis(full) && d >= Duration::from_millis(full * 9 / 10));
/// }
/// # Ok::<(), tailguard::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct OpenDuration {
    base: Duration,
    factor: f64,
    max: Duration,
    jitter: f64,
    next: Duration,
    rng: fastrand::Rng,
}

impl OpenDuration {
    /// `base`, then `base × factor`, `base × factor²`, … capped at `max`; no jitter.
    ///
    /// Refuses a zero `base`, a `factor` that is not a finite number ≥ 1, and a `max` below
    /// `base`.
    pub fn exponential(base: Duration, factor: f64, max: Duration) -> Result<Self, ConfigError> {
        if base.is_zero() {
            return Err(ConfigError::new(
                "open_duration.base",
                "must be greater than zero, got 0s",
            ));
        }
        if !(factor.is_finite() && factor >= 1.0) {
            return Err(ConfigError::new(
                "open_duration.factor",
                format!("must be a finite number ≥ 1.0, got {factor}"),
            ));
        }
        if max < base {
            return Err(ConfigError::new(
                "open_duration.max",
                format!("must be at least the base ({base:?}), got {max:?}"),
            ));
        }
        Ok(OpenDuration {
            base,
            factor,
            max,
            jitter: 0.0,
            next: base,
            rng: fastrand::Rng::new(),
        })
    }

    /// The same duration every time.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tailguard::breaker::OpenDuration;
    ///
    /// let fixed = OpenDuration::fixed(Duration::from_secs(30))?;
    /// assert!(fixed.take(3).all(|d| d == Duration::from_secs(30)));
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    pub fn fixed(duration: Duration) -> Result<Self, ConfigError> {
        Self::exponential(duration, 1.0, duration)
    }

    /// Shortens each duration by a random fraction in `[0, jitter)`. `jitter` must be in
    /// `[0, 1)`.
    pub fn with_jitter(mut self, jitter: f64) -> Result<Self, ConfigError> {
        if !(0.0..1.0).contains(&jitter) {
            return Err(ConfigError::new(
                "open_duration.jitter",
                format!("must be in [0, 1), got {jitter}"),
            ));
        }
        self.jitter = jitter;
        Ok(self)
    }

    /// Seeds the jitter, for reproducible sequences in tests and simulations.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.rng = fastrand::Rng::with_seed(seed);
        self
    }
}

impl Iterator for OpenDuration {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let full = self.next;
        // `mul_f64` would panic on overflow; anything that does not fit is past the cap anyway.
        self.next = Duration::try_from_secs_f64(full.as_secs_f64() * self.factor)
            .map_or(self.max, |next| next.min(self.max));
        if self.jitter == 0.0 {
            return Some(full);
        }
        Some(full.mul_f64(1.0 - self.jitter * self.rng.f64()))
    }
}

impl fmt::Debug for OpenDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenDuration")
            .field("base", &self.base)
            .field("factor", &self.factor)
            .field("max", &self.max)
            .field("jitter", &self.jitter)
            .field("next", &self.next)
            .finish()
    }
}

/// The breaker's view of an open-duration sequence: the next duration, and start over.
pub(crate) trait OpenDurations: Send {
    fn next_duration(&mut self) -> Duration;
    fn restart(&mut self);
}

/// Any cloneable iterator of durations, restarted by cloning the original. An iterator that
/// runs out repeats its last duration (or `fallback` if it yielded none).
pub(crate) struct Restartable<I> {
    original: I,
    current: I,
    last: Duration,
    fallback: Duration,
}

impl<I: Iterator<Item = Duration> + Clone> Restartable<I> {
    pub(crate) fn new(original: I, fallback: Duration) -> Self {
        Restartable {
            current: original.clone(),
            original,
            last: fallback,
            fallback,
        }
    }
}

impl<I: Iterator<Item = Duration> + Clone + Send> OpenDurations for Restartable<I> {
    fn next_duration(&mut self) -> Duration {
        if let Some(next) = self.current.next() {
            self.last = next;
        }
        self.last
    }

    fn restart(&mut self) {
        // `clone_from` lets an iterator that owns a buffer reuse it instead of allocating.
        self.current.clone_from(&self.original);
        self.last = self.fallback;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_bad_parameters() {
        let second = Duration::from_secs(1);
        let field = |r: Result<OpenDuration, ConfigError>| r.unwrap_err().field();
        assert_eq!(
            field(OpenDuration::exponential(Duration::ZERO, 2.0, second)),
            "open_duration.base"
        );
        for factor in [f64::NAN, f64::INFINITY, 0.5, -1.0] {
            assert_eq!(
                field(OpenDuration::exponential(second, factor, second)),
                "open_duration.factor"
            );
        }
        assert_eq!(
            field(OpenDuration::exponential(second, 2.0, second / 2)),
            "open_duration.max"
        );
        for jitter in [f64::NAN, -0.1, 1.0, 2.0] {
            let policy = OpenDuration::fixed(second).unwrap();
            assert_eq!(field(policy.with_jitter(jitter)), "open_duration.jitter");
        }
    }

    #[test]
    fn huge_factors_saturate_at_max() {
        let mut policy =
            OpenDuration::exponential(Duration::from_secs(1), 1e300, Duration::from_secs(60))
                .unwrap();
        assert_eq!(policy.next(), Some(Duration::from_secs(1)));
        assert_eq!(policy.next(), Some(Duration::from_secs(60)));
        assert_eq!(policy.next(), Some(Duration::from_secs(60)));
    }

    #[test]
    fn restartable_repeats_the_last_and_starts_over() {
        let durations = [1, 2].map(Duration::from_secs);
        let mut source = Restartable::new(durations.into_iter(), Duration::from_secs(9));
        assert_eq!(source.next_duration(), Duration::from_secs(1));
        assert_eq!(source.next_duration(), Duration::from_secs(2));
        assert_eq!(source.next_duration(), Duration::from_secs(2));
        source.restart();
        assert_eq!(source.next_duration(), Duration::from_secs(1));

        let mut empty = Restartable::new(std::iter::empty(), Duration::from_secs(9));
        assert_eq!(empty.next_duration(), Duration::from_secs(9));
    }
}
