//! The builder: every setting checked when built.

use std::time::Duration;

use super::algorithm::Algorithm;
use super::gradient::Gradient2;
use super::limiter::{AdaptiveLimiter, ProbeConfig};
use crate::metrics::PolicyName;
use crate::priority::Shares;
use crate::validate;
use crate::ConfigError;

/// Builds an [`AdaptiveLimiter`]; see each setting for its default.
///
/// ```
/// use std::time::Duration;
/// use tailguard::limit::{AdaptiveLimiter, Aimd};
///
/// let limiter = AdaptiveLimiter::builder()
///     .algorithm(Aimd::default())
///     .initial_limit(10)
///     .min_limit(2)
///     .max_limit(200)
///     .build()?;
/// assert_eq!(limiter.limit(), 10);
///
/// let err = AdaptiveLimiter::builder().min_limit(50).max_limit(10).build().unwrap_err();
/// assert_eq!(err.field(), "max_limit");
/// # Ok::<(), tailguard::ConfigError>(())
/// ```
#[derive(Debug)]
pub struct AdaptiveLimiterBuilder {
    algorithm: Box<dyn Algorithm>,
    initial: u32,
    min: u32,
    max: u32,
    slow_start: bool,
    shares: Shares,
    monitor_only: bool,
    probe_interval: Option<Duration>,
    probe_limit: u32,
    probe_samples: u32,
    seed: u64,
    name: PolicyName,
}

impl AdaptiveLimiterBuilder {
    /// The defaults: [`Gradient2`], initial limit 20 in [1, 1000], slow start on, the default
    /// [`Shares`], a probe every 60 s at 3 in flight for 20 samples.
    pub fn new() -> Self {
        AdaptiveLimiterBuilder {
            algorithm: Box::new(Gradient2::new()),
            initial: 20,
            min: 1,
            max: 1000,
            slow_start: true,
            shares: Shares::default(),
            monitor_only: false,
            probe_interval: Some(Duration::from_secs(60)),
            probe_limit: 3,
            probe_samples: 20,
            seed: 0x7a11_6a4d,
            name: PolicyName::DEFAULT,
        }
    }

    /// The rule that moves the limit (default [`Gradient2`]).
    pub fn algorithm(mut self, algorithm: impl Algorithm) -> Self {
        self.algorithm = Box::new(algorithm);
        self
    }

    /// The limit to start from (default 20), within `[min_limit, max_limit]`.
    pub fn initial_limit(mut self, limit: u32) -> Self {
        self.initial = limit;
        self
    }

    /// The lowest the limit may go (default 1, at least 1: a limit of 0 would admit nothing,
    /// so no sample could raise it again).
    pub fn min_limit(mut self, limit: u32) -> Self {
        self.min = limit;
        self
    }

    /// The highest the limit may go (default 1000).
    pub fn max_limit(mut self, limit: u32) -> Self {
        self.max = limit;
        self
    }

    /// Whether the limit starts in slow start (default on): it grows by one per sample
    /// (doubling every round trip) until the first sign of queueing (the algorithm proposes a
    /// decrease) or the first drop, then follows the algorithm.
    pub fn slow_start(mut self, on: bool) -> Self {
        self.slow_start = on;
        self
    }

    /// The share of the limit each criticality class may fill (default [`Shares::default`];
    /// [`Shares::equal`] for no priority).
    pub fn shares(mut self, shares: Shares) -> Self {
        self.shares = shares;
        self
    }

    /// Admit everything and only count what would have been refused (default off): to see
    /// what a limit would do before enforcing it.
    pub fn monitor_only(mut self, on: bool) -> Self {
        self.monitor_only = on;
        self
    }

    /// Re-measure the no-load latency every `interval` (default 60 s, jittered by ±10 %),
    /// for algorithms that use a baseline ([`Gradient2`]): the limit is held at
    /// [`probe_limit`](Self::probe_limit) until [`probe_samples`](Self::probe_samples) calls
    /// admitted meanwhile have finished (or a tenth of the interval has passed), and their
    /// fastest latency becomes the baseline, as Envoy's adaptive concurrency filter does.
    pub fn probe_interval(mut self, interval: Duration) -> Self {
        self.probe_interval = Some(interval);
        self
    }

    /// Never probe.
    pub fn no_probe(mut self) -> Self {
        self.probe_interval = None;
        self
    }

    /// The limit held during a probe (default 3, at least 1).
    pub fn probe_limit(mut self, limit: u32) -> Self {
        self.probe_limit = limit;
        self
    }

    /// How many calls a probe measures (default 20, at least 1).
    pub fn probe_samples(mut self, samples: u32) -> Self {
        self.probe_samples = samples;
        self
    }

    /// The seed of the probe jitter, for reproducible runs.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Names the limiter: the `name` label of its [metrics](crate::metrics) (`"default"` if
    /// not set).
    ///
    /// ```
    /// use tailguard::limit::AdaptiveLimiter;
    ///
    /// let limiter = AdaptiveLimiter::builder().name("db").build()?;
    /// # let _ = limiter;
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    pub fn name(mut self, name: &str) -> Self {
        self.name = PolicyName::new(name);
        self
    }

    /// The limiter, or the first setting refused.
    pub fn build(self) -> Result<AdaptiveLimiter, ConfigError> {
        validate::at_least_one("min_limit", self.min, "a limit of 0 admits nothing")?;
        if self.max < self.min {
            return Err(ConfigError::new(
                "max_limit",
                format!(
                    "must be at least min_limit ({}), got {}",
                    self.min, self.max
                ),
            ));
        }
        let range = u64::from(self.min)..=u64::from(self.max);
        validate::count_in(
            "initial_limit",
            self.initial,
            range,
            "min_limit..=max_limit",
        )?;
        let probe = match self.probe_interval {
            None => None,
            Some(interval) => Some(ProbeConfig {
                interval: {
                    validate::nanos("probe_interval", interval)?;
                    validate::positive_duration("probe_interval", interval, "")?
                },
                limit: validate::at_least_one("probe_limit", self.probe_limit, "")?,
                samples: validate::at_least_one("probe_samples", self.probe_samples, "")?,
            }),
        };
        Ok(AdaptiveLimiter::from_parts(
            self.algorithm,
            self.initial,
            self.min,
            self.max,
            self.slow_start,
            self.shares,
            self.monitor_only,
            probe,
            self.seed,
            &self.name,
        ))
    }
}

impl Default for AdaptiveLimiterBuilder {
    fn default() -> Self {
        AdaptiveLimiterBuilder::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(builder: AdaptiveLimiterBuilder) -> &'static str {
        builder.build().unwrap_err().field()
    }

    #[test]
    fn bad_configuration_names_the_field() {
        let b = AdaptiveLimiterBuilder::new;
        assert_eq!(field(b().min_limit(0)), "min_limit");
        assert_eq!(field(b().min_limit(10).max_limit(5)), "max_limit");
        assert_eq!(field(b().initial_limit(0)), "initial_limit");
        assert_eq!(field(b().initial_limit(2000)), "initial_limit");
        assert_eq!(field(b().probe_interval(Duration::ZERO)), "probe_interval");
        assert_eq!(field(b().probe_interval(Duration::MAX)), "probe_interval");
        assert_eq!(field(b().probe_limit(0)), "probe_limit");
        assert_eq!(field(b().probe_samples(0)), "probe_samples");
        // Without probes, the probe settings are not used and not checked.
        assert!(b().no_probe().probe_limit(0).build().is_ok());
    }
}
