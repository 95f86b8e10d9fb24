//! Validation of backoff settings.

use std::time::Duration;

use super::{Backoff, Growth, Jitter};
use crate::{validate, ConfigError};

/// Settings for a [`Backoff`], validated by [`build`](BackoffBuilder::build).
///
/// Start from [`Backoff::constant`], [`Backoff::linear`] or [`Backoff::exponential`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct BackoffBuilder {
    base: Duration,
    growth: Growth,
    step: Duration,
    factor: Option<f64>,
    max_delay: Option<Duration>,
    max_retries: Option<u32>,
    jitter: Jitter,
    seed: Option<u64>,
}

impl BackoffBuilder {
    pub(super) fn new(base: Duration, growth: Growth) -> Self {
        BackoffBuilder {
            base,
            growth,
            step: Duration::ZERO,
            factor: None,
            max_delay: None,
            max_retries: None,
            jitter: Jitter::default(),
            seed: None,
        }
    }

    pub(super) fn step(mut self, step: Duration) -> Self {
        self.step = step;
        self
    }

    /// The growth factor of an exponential backoff: a finite number ≥ 1.0 (default 2.0). Refused
    /// for constant and linear backoff.
    pub fn factor(mut self, factor: f64) -> Self {
        self.factor = Some(factor);
        self
    }

    /// The cap: no delay is longer, jitter included. Must be at least the base delay. Without a
    /// cap delays saturate at [`MAX_DELAY`](super::MAX_DELAY) (about 584 years); set one.
    pub fn max_delay(mut self, cap: Duration) -> Self {
        self.max_delay = Some(cap);
        self
    }

    /// The number of delays the sequence yields; after that it ends, and a retry loop driven by
    /// it gives up. Zero means no retries at all. Unlimited by default.
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = Some(retries);
        self
    }

    /// How delays are randomized (default [`Jitter::Full`]).
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Seeds the random generator so the delays can be reproduced. Unseeded backoffs draw a seed
    /// from fastrand's thread-local generator.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Checks the settings and makes the [`Backoff`].
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the field when: a duration exceeds [`MAX_DELAY`](super::MAX_DELAY); the base is
    /// zero for exponential growth or decorrelated jitter (it would never grow); `factor` is not
    /// a finite number ≥ 1.0, or is set on a constant or linear backoff; `max_delay` is below the
    /// base.
    pub fn build(self) -> Result<Backoff, ConfigError> {
        let base = validate::nanos("base", self.base)?;
        let step = validate::nanos("step", self.step)?;
        let cap = match self.max_delay {
            Some(cap) => validate::nanos("max_delay", cap)?,
            None => u64::MAX,
        };
        let growth = match (self.growth, self.factor) {
            (Growth::Exponential { .. }, factor) => Growth::Exponential {
                factor: validate::factor("factor", factor.unwrap_or(2.0))?,
            },
            (_, Some(factor)) => {
                return Err(ConfigError::new(
                    "factor",
                    format!(
                        "applies only to exponential backoff, got {} for a {} backoff",
                        crate::validate::Float(factor),
                        if matches!(self.growth, Growth::Constant) {
                            "constant"
                        } else {
                            "linear"
                        }
                    ),
                ))
            }
            (Growth::Linear { .. }, None) => Growth::Linear { step },
            (Growth::Constant, None) => Growth::Constant,
        };
        if base == 0 && matches!(growth, Growth::Exponential { .. }) {
            return Err(ConfigError::new(
                "base",
                "must be greater than zero for exponential backoff (zero never grows), got 0ns",
            ));
        }
        if base == 0 && self.jitter == Jitter::Decorrelated {
            return Err(ConfigError::new(
                "base",
                "must be greater than zero for decorrelated jitter (it draws from [base, 3·prev]), got 0ns",
            ));
        }
        if cap < base {
            return Err(ConfigError::new(
                "max_delay",
                format!(
                    "must be at least the base delay ({:?}), got {:?}",
                    self.base,
                    Duration::from_nanos(cap)
                ),
            ));
        }
        let mut backoff = Backoff {
            base,
            growth,
            cap,
            max_retries: self.max_retries,
            jitter: self.jitter,
            seed: None,
            retries: 0,
            cursor: super::Cursor {
                rng: fastrand::Rng::new(),
                prev: base,
            },
        };
        if let Some(seed) = self.seed {
            backoff.reseed(seed);
        }
        Ok(backoff)
    }
}
