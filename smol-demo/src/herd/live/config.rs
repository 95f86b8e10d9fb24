//! The live herd's settings: the two retry behaviours compared, and everything that defines a
//! run.

use std::time::Duration;

use serde::Serialize;
use tailguard::backoff::{Backoff, Jitter};
use tailguard::retry::{Retry, RetryBudget};
use tailguard::time::DefaultTimer;
use tailguard::ConfigError;

use crate::backend::{BackendConfig, LatencyDist, Outage, OutageMode, Profile};

/// The retry behaviours compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum HerdMode {
    /// Exponential backoff without jitter, no retry budget.
    NoJitter,
    /// Exponential backoff with full jitter, and a shared retry budget.
    JitterBudget,
}

impl HerdMode {
    /// Both modes, in report order.
    pub const ALL: [HerdMode; 2] = [HerdMode::NoJitter, HerdMode::JitterBudget];

    /// The mode's key in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            HerdMode::NoJitter => "no_jitter",
            HerdMode::JitterBudget => "jitter_budget",
        }
    }

    /// What the mode does, in a few words.
    pub fn describe(self, config: &LiveHerdConfig) -> String {
        match self {
            HerdMode::NoJitter => "no jitter, no budget".to_string(),
            HerdMode::JitterBudget => format!(
                "full jitter + {}% budget",
                (config.budget_ratio * 100.0).round()
            ),
        }
    }
}

/// Everything that defines a live herd run. `Default` is what `tailguard-demo herd` runs.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveHerdConfig {
    /// User requests per second, arriving steadily whatever happens.
    pub rate: f64,
    /// The backend's service time per call.
    pub service: Duration,
    /// The most calls the backend serves at once; more get `503` at once.
    pub capacity: usize,
    /// Healthy time before the outage.
    pub warmup: Duration,
    /// How long the backend is down (refusing connections).
    pub outage: Duration,
    /// How long requests keep arriving after the backend is back.
    pub after: Duration,
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// The first retry's backoff; it doubles up to `max_delay`.
    pub base_delay: Duration,
    /// The longest backoff.
    pub max_delay: Duration,
    /// The longest a request may take, retries included.
    pub max_elapsed: Duration,
    /// Longest wait for one call.
    pub call_timeout: Duration,
    /// The budget of [`HerdMode::JitterBudget`]: retries ≤ ratio × first tries.
    pub budget_ratio: f64,
    /// ... plus this many retries per second.
    pub budget_min_per_second: u32,
    /// The width of a window of the success-rate timeline.
    pub window: Duration,
    /// The success rate that counts as recovered, in (0, 1].
    pub high: f64,
    /// Seeds the jitter.
    pub seed: u64,
}

impl Default for LiveHerdConfig {
    /// 250 requests/s against a backend of 10 slots × 20 ms (500 calls/s), down from 0.5 s to
    /// 1.5 s, watched for 2.5 s after; up to 8 attempts within 3 s, backoff 50 ms doubling to
    /// 800 ms; a 20 % budget (+10/s); 100 ms windows, 90 % counts as recovered.
    fn default() -> Self {
        LiveHerdConfig {
            rate: 250.0,
            service: Duration::from_millis(20),
            capacity: 10,
            warmup: Duration::from_millis(500),
            outage: Duration::from_secs(1),
            after: Duration::from_millis(2500),
            max_attempts: 8,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(800),
            max_elapsed: Duration::from_secs(3),
            call_timeout: Duration::from_secs(1),
            budget_ratio: 0.2,
            budget_min_per_second: 10,
            window: Duration::from_millis(100),
            high: 0.9,
            seed: 1,
        }
    }
}

impl LiveHerdConfig {
    /// A shorter run for the tour: 0.3 s healthy, 0.7 s down, 1.5 s after.
    pub fn short() -> Self {
        LiveHerdConfig {
            warmup: Duration::from_millis(300),
            outage: Duration::from_millis(700),
            after: Duration::from_millis(1500),
            ..LiveHerdConfig::default()
        }
    }

    /// Checks every value; the retry policy and budget check theirs when built.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.rate > 0.0 && self.rate <= 10_000.0) {
            return Err(ConfigError::new(
                "rate",
                format!(
                    "must be in (0, 10000] requests per second, got {}",
                    self.rate
                ),
            ));
        }
        if self.capacity == 0 {
            return Err(ConfigError::new("capacity", "must be at least 1, got 0"));
        }
        for (field, value) in [
            ("outage", self.outage),
            ("after", self.after),
            ("window", self.window),
            ("call_timeout", self.call_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::new(field, "must be longer than zero"));
            }
        }
        let total = self.warmup + self.outage + self.after;
        if total > Duration::from_secs(600) {
            return Err(ConfigError::new(
                "after",
                format!("warmup + outage + after must be at most 10 minutes, got {total:?}"),
            ));
        }
        if !(self.high > 0.0 && self.high <= 1.0) {
            return Err(ConfigError::new(
                "high",
                format!("must be in (0, 1], got {}", self.high),
            ));
        }
        self.backend_config().validate()?;
        for mode in HerdMode::ALL {
            self.policy(mode)?;
        }
        Ok(())
    }

    /// The one backend replica: `capacity` slots of `service` each, down (refusing
    /// connections) from `warmup` to `warmup + outage`.
    pub(super) fn backend_config(&self) -> BackendConfig {
        let profile = Profile {
            latency: LatencyDist::Fixed(self.service),
            capacity: Some(self.capacity),
            ..Profile::default()
        };
        BackendConfig {
            outages: vec![Outage {
                replica: 0,
                from: self.warmup,
                to: self.warmup + self.outage,
            }],
            outage_mode: OutageMode::Refuse,
            control: false,
            ..BackendConfig::uniform(1, profile)
        }
    }

    /// The retry policy of `mode`.
    pub fn policy(&self, mode: HerdMode) -> Result<Retry<DefaultTimer>, ConfigError> {
        let jitter = match mode {
            HerdMode::NoJitter => Jitter::None,
            HerdMode::JitterBudget => Jitter::Full,
        };
        let backoff = Backoff::exponential(self.base_delay)
            .max_delay(self.max_delay)
            .jitter(jitter)
            .seed(self.seed)
            .build()?;
        let builder = Retry::with_timer(DefaultTimer::default())
            .max_attempts(self.max_attempts)
            .max_elapsed(self.max_elapsed)
            .attempt_timeout(self.call_timeout)
            .backoff(backoff);
        match mode {
            HerdMode::NoJitter => builder.build(),
            HerdMode::JitterBudget => builder
                .budget(
                    RetryBudget::builder()
                        .ratio(self.budget_ratio)
                        .min_per_second(self.budget_min_per_second)
                        .build()?,
                )
                .build(),
        }
    }

    /// The user requests of a run: `rate` over warmup, outage and after.
    pub(super) fn requests(&self) -> u64 {
        ((self.warmup + self.outage + self.after).as_secs_f64() * self.rate).floor() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_validated_by_field() {
        assert!(LiveHerdConfig::default().validate().is_ok());
        assert!(LiveHerdConfig::short().validate().is_ok());
        for (config, field) in [
            (
                LiveHerdConfig {
                    rate: f64::NAN,
                    ..LiveHerdConfig::default()
                },
                "rate",
            ),
            (
                LiveHerdConfig {
                    capacity: 0,
                    ..LiveHerdConfig::default()
                },
                "capacity",
            ),
            (
                LiveHerdConfig {
                    high: 1.5,
                    ..LiveHerdConfig::default()
                },
                "high",
            ),
            (
                LiveHerdConfig {
                    outage: Duration::ZERO,
                    ..LiveHerdConfig::default()
                },
                "outage",
            ),
            (
                LiveHerdConfig {
                    max_attempts: 0,
                    ..LiveHerdConfig::default()
                },
                "max_attempts",
            ),
        ] {
            assert_eq!(config.validate().unwrap_err().field(), field, "{config:?}");
        }
    }
}
