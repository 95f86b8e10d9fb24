//! The pluggable part of the limiter: how a sample moves the limit. [`Fixed`] and [`Aimd`] here,
//! [`Gradient2`](super::Gradient2) in its own file.

use std::fmt;
use std::time::{Duration, Instant};

use crate::validate;
use crate::ConfigError;

/// One finished call, as an [`Algorithm`] sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// When the call finished.
    pub now: Instant,
    /// How long it took, from admission to its report; `None` when its permit was dropped
    /// without a report, so nothing measured it.
    pub rtt: Option<Duration>,
    /// Calls in flight when it was admitted, itself included, divided by the share of the
    /// limit its [class](crate::priority::Criticality) may fill (rounded up): a class that may
    /// fill 30 % of the limit uses all of it with 30 % in flight, so shares never keep a limit
    /// from growing.
    pub in_flight: u32,
    /// Whether the call was dropped: it timed out, was shed further down, or its permit was
    /// dropped without a report (see [`Outcome::Dropped`](super::Outcome::Dropped)).
    pub dropped: bool,
}

/// A rule that turns samples into a concurrency limit: [`Gradient2`](super::Gradient2),
/// [`Aimd`] or [`Fixed`], or your own.
///
/// The [`AdaptiveLimiter`](super::AdaptiveLimiter) owns the limit and calls
/// [`update`](Self::update) with each sample (under a lock, one at a time); it clamps the
/// answer to `[min_limit, max_limit]`, and never lets it grow on a sample taken while fewer
/// than half the limit were in flight, so a limit cannot run far ahead of the load that
/// justifies it.
///
/// ```
/// use tailguard::limit::{Algorithm, Sample};
///
/// /// Halves the limit on a drop, otherwise adds one.
/// #[derive(Debug)]
/// struct Halving;
///
/// impl Algorithm for Halving {
///     fn update(&mut self, limit: f64, sample: &Sample) -> f64 {
///         if sample.dropped { limit / 2.0 } else { limit + 1.0 }
///     }
/// }
/// ```
pub trait Algorithm: fmt::Debug + Send + 'static {
    /// The new limit after `sample`, given the current one.
    fn update(&mut self, limit: f64, sample: &Sample) -> f64;

    /// Whether this algorithm compares latency with a no-load baseline that periodic probes
    /// should re-measure ([`rebase`](Self::rebase)). By default, no.
    fn wants_probe(&self) -> bool {
        false
    }

    /// A probe measured the no-load latency as `rtt`: take it as the new baseline. By default
    /// ignored.
    fn rebase(&mut self, rtt: Duration) {
        let _ = rtt;
    }

    /// `Some(limit)` for an algorithm whose limit never moves (as [`Fixed`]): the limiter
    /// then starts there, skips slow start and probes, and ignores the configured initial,
    /// minimum and maximum limits. By default `None`.
    fn fixed(&self) -> Option<u32> {
        None
    }
}

/// A limit that never moves: a bulkhead's, expressed as an algorithm.
///
/// ```
/// use tailguard::limit::{AdaptiveLimiter, Fixed};
///
/// let limiter = AdaptiveLimiter::builder().algorithm(Fixed::new(8)?).build()?;
/// assert_eq!(limiter.limit(), 8);
/// # Ok::<(), tailguard::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fixed {
    limit: u32,
}

impl Fixed {
    /// Always `limit` (at least 1). Field: `fixed.limit`.
    pub fn new(limit: u32) -> Result<Self, ConfigError> {
        validate::at_least_one("fixed.limit", limit, "0 would admit nothing")?;
        Ok(Fixed { limit })
    }

    /// The limit.
    pub fn limit(&self) -> u32 {
        self.limit
    }
}

impl Algorithm for Fixed {
    fn update(&mut self, _limit: f64, _sample: &Sample) -> f64 {
        f64::from(self.limit)
    }

    fn fixed(&self) -> Option<u32> {
        Some(self.limit)
    }
}

/// Additive increase, multiplicative decrease: one more per sample while the limit is in use,
/// `× backoff` on a drop or on a call slower than `timeout` (as concurrency-limits' `AIMDLimit`).
///
/// ```
/// use std::time::Duration;
/// use tailguard::limit::Aimd;
///
/// let aimd = Aimd::new(0.9)?.timeout(Duration::from_millis(500))?;
/// assert_eq!(aimd.backoff(), 0.9);
/// # Ok::<(), tailguard::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Aimd {
    backoff: f64,
    timeout: Option<Duration>,
}

impl Aimd {
    /// Multiplies the limit by `backoff`, in [0.5, 1), on each drop. Field: `aimd.backoff`.
    pub fn new(backoff: f64) -> Result<Self, ConfigError> {
        if !(0.5..1.0).contains(&backoff) {
            return Err(ConfigError::new(
                "aimd.backoff",
                format!(
                    "must be in [0.5, 1) (a decrease, at most by half), got {}",
                    validate::Float(backoff)
                ),
            ));
        }
        Ok(Aimd {
            backoff,
            timeout: None,
        })
    }

    /// A call that took longer than `timeout` counts as dropped. Field: `aimd.timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Result<Self, ConfigError> {
        self.timeout = Some(validate::positive_duration("aimd.timeout", timeout, "")?);
        Ok(self)
    }

    /// The decrease factor.
    pub fn backoff(&self) -> f64 {
        self.backoff
    }
}

impl Default for Aimd {
    /// `backoff` 0.9, no timeout.
    fn default() -> Self {
        Aimd {
            backoff: 0.9,
            timeout: None,
        }
    }
}

impl Algorithm for Aimd {
    fn update(&mut self, limit: f64, sample: &Sample) -> f64 {
        let slow = matches!((sample.rtt, self.timeout), (Some(rtt), Some(max)) if rtt > max);
        if sample.dropped || slow {
            limit * self.backoff
        } else if f64::from(sample.in_flight) * 2.0 >= limit {
            limit + 1.0
        } else {
            limit
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(rtt_ms: u64, in_flight: u32, dropped: bool) -> Sample {
        Sample {
            now: Instant::now(),
            rtt: Some(Duration::from_millis(rtt_ms)),
            in_flight,
            dropped,
        }
    }

    #[test]
    fn aimd_adds_while_used_and_backs_off_on_drops_and_timeouts() {
        let mut aimd = Aimd::new(0.5)
            .unwrap()
            .timeout(Duration::from_millis(100))
            .unwrap();
        assert_eq!(aimd.update(10.0, &sample(10, 5, false)), 11.0);
        assert_eq!(aimd.update(10.0, &sample(10, 4, false)), 10.0); // idle: no growth
        assert_eq!(aimd.update(10.0, &sample(10, 9, true)), 5.0);
        assert_eq!(aimd.update(10.0, &sample(101, 9, false)), 5.0);
        // At 1 with one call in flight it still grows: never stuck at 1.
        assert_eq!(aimd.update(1.0, &sample(10, 1, false)), 2.0);
    }

    #[test]
    fn bad_configuration_names_the_field() {
        assert_eq!(Aimd::new(1.0).unwrap_err().field(), "aimd.backoff");
        assert_eq!(Aimd::new(0.4).unwrap_err().field(), "aimd.backoff");
        assert_eq!(Aimd::new(f64::NAN).unwrap_err().field(), "aimd.backoff");
        assert_eq!(
            Aimd::default().timeout(Duration::ZERO).unwrap_err().field(),
            "aimd.timeout"
        );
        assert_eq!(Fixed::new(0).unwrap_err().field(), "fixed.limit");
    }
}
