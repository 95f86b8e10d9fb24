//! [`RateLimiterBuilder`]: the rate and the burst, validated when built.

use std::hash::Hash;
use std::time::Duration;

use super::gcra::Params;
use super::keyed::KeyedRateLimiter;
use super::RateLimiter;
use crate::metrics::PolicyName;
#[cfg(any(feature = "async-io", feature = "futures-timer"))]
use crate::time::DefaultTimer;
use crate::time::Timer;
use crate::validate;
use crate::ConfigError;

/// Configures and builds a [`RateLimiter`] or a [`KeyedRateLimiter`].
///
/// | setting | default | accepted |
/// |---|---|---|
/// | [`rate`](Self::rate) | 100 per second | at least 1 per period; a period of at least 1 ns per token |
/// | [`burst`](Self::burst) | 1 (smooth: evenly spaced) | at least 1 |
/// | [`max_keys`](Self::max_keys) (keyed) | 10,000 | at least 1 |
/// | [`shards`](Self::shards) (keyed) | 16 | 1..=1024 |
///
/// ```
/// use std::time::Duration;
/// use tailguard::rate::RateLimiter;
/// use tailguard::time::ManualTimer;
///
/// // 50 calls a second on average, up to 10 at once after a quiet spell.
/// let limiter = RateLimiter::builder()
///     .rate(50, Duration::from_secs(1))
///     .burst(10)
///     .build_with(ManualTimer::new())?;
/// assert_eq!(limiter.burst(), 10);
///
/// let err = RateLimiter::builder().burst(0).build_with(ManualTimer::new()).unwrap_err();
/// assert_eq!(err.field(), "burst");
/// # Ok::<(), tailguard::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct RateLimiterBuilder {
    count: u32,
    per: Duration,
    burst: u32,
    max_keys: usize,
    shards: usize,
    name: PolicyName,
}

impl Default for RateLimiterBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl RateLimiterBuilder {
    /// The defaults: 100 calls per second, evenly spaced (burst 1).
    pub fn new() -> Self {
        RateLimiterBuilder {
            count: 100,
            per: Duration::from_secs(1),
            burst: 1,
            max_keys: 10_000,
            shards: 16,
            name: PolicyName::DEFAULT,
        }
    }

    /// `count` calls per `per` on average: one token every `per / count`.
    pub fn rate(mut self, count: u32, per: Duration) -> Self {
        self.count = count;
        self.per = per;
        self
    }

    /// Tokens the bucket holds: how many calls may go at once after a quiet spell. 1 (the
    /// default) spaces calls evenly, one per interval (the generic cell rate algorithm's
    /// smooth shaping); `n` is a token bucket of `n`.
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = burst;
        self
    }

    /// Keyed limiter only: the most keys remembered at once (see [`KeyedRateLimiter`] for what
    /// happens when they are all in use).
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = max_keys;
        self
    }

    /// Keyed limiter only: independent locks the keys are spread over (fewer makes the memory
    /// bound tighter per key; more lets more threads through at once).
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = shards;
        self
    }

    pub(super) fn params(&self) -> Result<Params, ConfigError> {
        validate::at_least_one("rate.count", self.count, "0 would admit nothing")?;
        let per = validate::nanos(
            "rate.per",
            validate::positive_duration("rate.per", self.per, "")?,
        )?;
        let interval = per / u64::from(self.count);
        if interval == 0 {
            return Err(ConfigError::new(
                "rate.count",
                format!(
                    "must be at most one token per nanosecond of `rate.per` ({per} for {:?}), got {}",
                    self.per, self.count
                ),
            ));
        }
        // The interval is whole nanoseconds: refuse a rate it would change by more than 1%
        // rather than round it silently (999_999_999 per second would become 10^9).
        let remainder = per % u64::from(self.count);
        if remainder.saturating_mul(100) > interval {
            return Err(ConfigError::new(
                "rate.count",
                format!(
                    "must divide `rate.per` into whole nanoseconds within 1% ({:?} / {} is {interval} ns and {remainder} ns over); use a longer `rate.per`",
                    self.per, self.count
                ),
            ));
        }
        validate::at_least_one("burst", self.burst, "a call needs one token")?;
        let limit = interval.checked_mul(u64::from(self.burst)).ok_or_else(|| {
            ConfigError::new(
                "burst",
                format!(
                    "must hold at most 584 years of tokens ({} at one every {interval} ns), got {}",
                    u64::MAX / interval,
                    self.burst
                ),
            )
        })?;
        Ok(Params {
            interval,
            limit,
            burst: self.burst,
        })
    }

    /// Names the limiter: the `name` label of its [metrics](crate::metrics) (`"default"` if
    /// not set; a keyed limiter counts every key's refusals together).
    ///
    /// ```
    /// use tailguard::rate::RateLimiter;
    /// use tailguard::time::ManualTimer;
    ///
    /// let limiter = RateLimiter::builder().name("api").build_with(ManualTimer::new())?;
    /// # let _ = limiter;
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    pub fn name(mut self, name: &str) -> Self {
        self.name = PolicyName::new(name);
        self
    }

    /// Builds a limiter on the [`DefaultTimer`].
    #[cfg(any(feature = "async-io", feature = "futures-timer"))]
    pub fn build(self) -> Result<RateLimiter<DefaultTimer>, ConfigError> {
        self.build_with(DefaultTimer::default())
    }

    /// Builds a limiter on `timer`, whose clock starts (with a full bucket) now.
    pub fn build_with<T: Timer>(self, timer: T) -> Result<RateLimiter<T>, ConfigError> {
        let params = self.params()?;
        Ok(RateLimiter::new(params, &self.name, timer))
    }

    /// Builds a keyed limiter (one bucket per key) on the [`DefaultTimer`].
    #[cfg(any(feature = "async-io", feature = "futures-timer"))]
    pub fn build_keyed<K: Hash + Eq + Clone>(
        self,
    ) -> Result<KeyedRateLimiter<K, DefaultTimer>, ConfigError> {
        self.build_keyed_with(DefaultTimer::default())
    }

    /// Builds a keyed limiter (one bucket per key) on `timer`.
    pub fn build_keyed_with<K: Hash + Eq + Clone, T: Timer>(
        self,
        timer: T,
    ) -> Result<KeyedRateLimiter<K, T>, ConfigError> {
        let params = self.params()?;
        let max_keys = validate::at_least_one("max_keys", self.max_keys as u64, "")? as usize;
        let shards = validate::count_in("shards", self.shards, 1..=1024, "")?;
        Ok(KeyedRateLimiter::new(
            params, max_keys, shards, &self.name, timer,
        ))
    }
}
