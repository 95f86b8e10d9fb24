//! The gateway's settings, and the tailguard policies built from them.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use tailguard::backoff::{Backoff, Jitter};
use tailguard::hedge::Hedge;
use tailguard::ConfigError;

use crate::args::parse_duration;

/// When the gateway sends a backup request for a slow key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HedgeMode {
    /// Never: one attempt per try.
    Off,
    /// After a fixed delay.
    Fixed(Duration),
    /// At this percentile (in (0, 1)) of recent primary latency, or at `1 -
    /// hedge_budget_ratio` if that is higher: never earlier than the budget pays for (see
    /// [`tailguard::hedge`]).
    Adaptive(f64),
    /// No hedging: tied requests ([`tailguard::tied`]). Each key goes to two replicas, the
    /// second copy this long after the first, each tagged with the other
    /// (`tailguard-request-id`, `tailguard-tied-to`), and the replica that starts one cancels
    /// the other in its twin's queue.
    Tied(Duration),
}

impl FromStr for HedgeMode {
    type Err = String;

    /// `off`, `fixed:10ms`, `adaptive` (p95), `adaptive:0.9`, `tied` (1 ms) or `tied:2ms`.
    fn from_str(text: &str) -> Result<Self, String> {
        let usage = "write off, fixed:10ms, adaptive (p95), adaptive:0.9, tied (1ms) or tied:2ms";
        match text.split_once(':') {
            None if text == "off" => Ok(HedgeMode::Off),
            None if text == "tied" => Ok(HedgeMode::Tied(Duration::from_millis(1))),
            Some(("tied", delay)) => Ok(HedgeMode::Tied(parse_duration(delay)?)),
            None if text == "adaptive" => Ok(HedgeMode::Adaptive(0.95)),
            Some(("fixed", delay)) => Ok(HedgeMode::Fixed(parse_duration(delay)?)),
            Some(("adaptive", p)) => match p.parse::<f64>() {
                Ok(p) if p > 0.0 && p < 1.0 => Ok(HedgeMode::Adaptive(p)),
                _ => Err(format!(
                    "`{p}` is not a percentile in (0, 1), like 0.95: {usage}"
                )),
            },
            _ => Err(format!("`{text}` is not a hedging mode: {usage}")),
        }
    }
}

impl fmt::Display for HedgeMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HedgeMode::Off => f.write_str("off"),
            HedgeMode::Fixed(delay) => write!(f, "fixed:{}ms", delay.as_secs_f64() * 1e3),
            HedgeMode::Adaptive(p) => write!(f, "adaptive:{p}"),
            HedgeMode::Tied(delay) => write!(f, "tied:{}ms", delay.as_secs_f64() * 1e3),
        }
    }
}

/// The per-replica circuit breakers' settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerSettings {
    /// Opens when at least this fraction of the calls in the window failed, in (0, 1].
    pub failure_rate: f64,
    /// The window: the last this many calls.
    pub window: u32,
    /// Rates are only judged once the window holds this many calls.
    pub minimum_calls: u64,
    /// How long an open breaker rejects calls before probing.
    pub open_duration: Duration,
    /// Probes admitted when half-open; all must succeed to close.
    pub half_open_calls: u32,
}

impl Default for BreakerSettings {
    /// Opens at 50 % failures over the last 20 calls (10 at least), stays open 1 s, then
    /// probes with 2 calls.
    fn default() -> Self {
        BreakerSettings {
            failure_rate: 0.5,
            window: 20,
            minimum_calls: 10,
            open_duration: Duration::from_secs(1),
            half_open_calls: 2,
        }
    }
}

/// Everything a [`Gateway`](super::Gateway) needs. `Default` gives the demo's values, with no
/// replicas.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayConfig {
    /// The backend replicas; key `k` lives on replica `k mod n` first.
    pub replicas: Vec<SocketAddr>,
    /// Longest wait for one sub-request (waiting for a pooled connection and connecting
    /// included).
    pub call_timeout: Duration,
    /// Longest wait to connect to a replica.
    pub connect_timeout: Duration,
    /// The most connections open to one replica: a call beyond waits for one of them to come
    /// free, up to `pool_timeout`.
    pub pool_size: usize,
    /// Longest wait for a pooled connection (zero: never wait), part of `call_timeout`. The
    /// rest is the replica's: with `pool_timeout + connect_timeout <= call_timeout`, a
    /// replica always gets at least `call_timeout - pool_timeout` to connect and answer, so
    /// it is not blamed for time the gateway spent waiting on itself.
    pub pool_timeout: Duration,
    /// The most keys of one fan-out read at once; the others wait for their turn (under the
    /// fan-out's deadline, but not yet under any call's timeout). A burst of large fan-outs
    /// then shares the pools, each making progress, instead of the first filling them.
    pub fanout_concurrency: usize,
    /// Idle keep-alive connections kept per replica (at most `pool_size` are ever open).
    pub max_idle_per_replica: usize,
    /// The whole fan-out's deadline: keys not done by then are answered as timed out.
    pub fanout_deadline: Duration,
    /// The most keys one `/fanout` may ask for.
    pub max_keys: usize,
    /// Tries per key, the first included (1 = no retries).
    pub retry_attempts: u32,
    /// The first retry's delay; it doubles, with full jitter, up to `retry_max_delay`.
    pub retry_base_delay: Duration,
    /// The longest delay between two tries.
    pub retry_max_delay: Duration,
    /// Retries allowed as a fraction of first tries, over 10 s (the shared budget).
    pub retry_budget_ratio: f64,
    /// Retries always allowed per second, whatever the ratio.
    pub retry_budget_min_per_second: u32,
    /// When to hedge.
    pub hedge: HedgeMode,
    /// Hedges allowed as a fraction of primaries.
    pub hedge_budget_ratio: f64,
    /// Adaptive hedging: primaries needed before the delay is trusted.
    pub hedge_min_samples: u64,
    /// Calls per try when hedging, the primary included (2: one backup); each backup goes one
    /// replica further along.
    pub hedge_max_attempts: u32,
    /// How each key's replica is picked: its home replica first (the default), or by power of
    /// two choices over latency with replica-aware hedges and retries.
    pub balance: super::Balance,
    /// The per-replica circuit breakers.
    pub breaker: BreakerSettings,
    /// The adaptive concurrency limit in front of each replica (off by default; see the
    /// gateway's module docs for what it is told).
    pub replica_limit: super::ReplicaLimit,
    /// The replica limit to start from (it adapts from there).
    pub replica_limit_initial: u32,
    /// The most the replica limit may grow to.
    pub replica_limit_max: u32,
    /// Client-side throttling of each replica with this K (`None`: off): calls are refused
    /// locally with probability max(0, (requests − K·accepts) / (requests + 1)).
    pub throttle_k: Option<f64>,
    /// Seeds the retry jitter (`None`: random).
    pub seed: Option<u64>,
    /// Log every breaker transition to stderr.
    pub log_transitions: bool,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            replicas: Vec::new(),
            call_timeout: Duration::from_millis(200),
            connect_timeout: Duration::from_millis(100),
            pool_size: 16,
            pool_timeout: Duration::from_millis(50),
            fanout_concurrency: 32,
            max_idle_per_replica: 64,
            fanout_deadline: Duration::from_millis(500),
            max_keys: 1000,
            retry_attempts: 3,
            retry_base_delay: Duration::from_millis(2),
            retry_max_delay: Duration::from_millis(50),
            retry_budget_ratio: 0.2,
            retry_budget_min_per_second: 10,
            hedge: HedgeMode::Adaptive(0.95),
            hedge_budget_ratio: 0.1,
            hedge_min_samples: 50,
            hedge_max_attempts: 2,
            balance: super::Balance::Home,
            breaker: BreakerSettings::default(),
            replica_limit: super::ReplicaLimit::Off,
            replica_limit_initial: 20,
            replica_limit_max: 200,
            throttle_k: None,
            seed: None,
            log_transitions: false,
        }
    }
}

impl GatewayConfig {
    /// The defaults, on these replicas.
    pub fn new(replicas: Vec<SocketAddr>) -> Self {
        GatewayConfig {
            replicas,
            ..GatewayConfig::default()
        }
    }

    /// Checks the gateway's own settings (the policies check theirs when built).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.replicas.is_empty() {
            return Err(ConfigError::new(
                "replicas",
                "needs at least one backend address",
            ));
        }
        for (field, value) in [
            ("call_timeout", self.call_timeout),
            ("connect_timeout", self.connect_timeout),
            ("fanout_deadline", self.fanout_deadline),
        ] {
            if value.is_zero() {
                return Err(ConfigError::new(
                    field,
                    "must be longer than zero; a zero limit would fail every call",
                ));
            }
        }
        let before_sending = self.pool_timeout.checked_add(self.connect_timeout);
        if before_sending.is_none_or(|before| before > self.call_timeout) {
            return Err(ConfigError::new(
                "pool_timeout",
                format!(
                    "pool_timeout + connect_timeout ({:?} + {:?}) must not exceed call_timeout \
                     ({:?}): a connect cut short by the call's own limit is not held against \
                     the replica, so a replica that never accepted could never open its breaker",
                    self.pool_timeout, self.connect_timeout, self.call_timeout
                ),
            ));
        }
        for (field, value) in [
            ("max_keys", self.max_keys),
            ("pool_size", self.pool_size),
            ("fanout_concurrency", self.fanout_concurrency),
        ] {
            if value == 0 {
                return Err(ConfigError::new(field, "must be at least 1, got 0"));
            }
        }
        if self.retry_attempts == 0 {
            return Err(ConfigError::new(
                "retry_attempts",
                "must be at least 1 (the first try), got 0",
            ));
        }
        // Tied calls pick their two replicas their own way (`tied.rs`): they would silently
        // bypass the balancer and the per-replica limits, so the combination is refused.
        if let HedgeMode::Tied(_) = self.hedge {
            let bypassed = if self.balance != super::Balance::Home {
                Some("balance")
            } else if self.replica_limit != super::ReplicaLimit::Off {
                Some("replica_limit")
            } else if self.throttle_k.is_some() {
                Some("throttle_k")
            } else {
                None
            };
            if let Some(field) = bypassed {
                return Err(ConfigError::new(
                    field,
                    "is not supported with tied requests (hedge tied:…), which choose their two \
                     replicas without the balancer, the per-replica limits or the throttle",
                ));
            }
        }
        Ok(())
    }

    pub(super) fn backoff(&self) -> Result<Backoff, ConfigError> {
        let mut backoff = Backoff::exponential(self.retry_base_delay)
            .max_delay(self.retry_max_delay)
            .jitter(Jitter::Full);
        if let Some(seed) = self.seed {
            backoff = backoff.seed(seed);
        }
        backoff.build()
    }

    pub(super) fn hedge_policy(&self) -> Result<Hedge, ConfigError> {
        let builder = Hedge::builder()
            .name("gateway")
            .budget_ratio(self.hedge_budget_ratio);
        match self.hedge {
            // One attempt: no hedging, but the same statistics and code path (a tied call is
            // that one attempt).
            HedgeMode::Off | HedgeMode::Tied(_) => builder
                .fixed_delay(self.call_timeout)
                .max_attempts(1)
                .build(),
            HedgeMode::Fixed(delay) => builder
                .fixed_delay(delay)
                .max_attempts(self.hedge_max_attempts)
                .build(),
            HedgeMode::Adaptive(p) => builder
                .adaptive_delay(p)
                .min_samples(self.hedge_min_samples)
                .max_attempts(self.hedge_max_attempts)
                .build(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tied_requests_refuse_the_settings_they_would_bypass() {
        let tied = || GatewayConfig {
            replicas: vec!["127.0.0.1:1".parse().unwrap()],
            hedge: HedgeMode::Tied(Duration::from_millis(1)),
            ..GatewayConfig::default()
        };
        assert!(tied().validate().is_ok());
        let field = |config: GatewayConfig| config.validate().unwrap_err().field().to_owned();
        let p2c = GatewayConfig {
            balance: super::super::Balance::P2c,
            ..tied()
        };
        assert_eq!(field(p2c), "balance");
        let throttled = GatewayConfig {
            throttle_k: Some(2.0),
            ..tied()
        };
        assert_eq!(field(throttled), "throttle_k");
    }

    #[test]
    fn hedge_modes_parse() {
        assert_eq!("off".parse::<HedgeMode>(), Ok(HedgeMode::Off));
        assert_eq!(
            "adaptive".parse::<HedgeMode>(),
            Ok(HedgeMode::Adaptive(0.95))
        );
        assert_eq!(
            "fixed:10ms".parse::<HedgeMode>(),
            Ok(HedgeMode::Fixed(Duration::from_millis(10)))
        );
        assert_eq!(
            "adaptive:0.9".parse::<HedgeMode>().unwrap().to_string(),
            "adaptive:0.9"
        );
        assert!("adaptive:1.5".parse::<HedgeMode>().is_err());
        assert_eq!(
            "tied".parse::<HedgeMode>(),
            Ok(HedgeMode::Tied(Duration::from_millis(1)))
        );
        assert_eq!(
            "tied:2ms".parse::<HedgeMode>().unwrap().to_string(),
            "tied:2ms"
        );
        assert!("tied:soon".parse::<HedgeMode>().is_err());
        assert!("sometimes".parse::<HedgeMode>().is_err());
    }

    #[test]
    fn settings_are_validated_by_field() {
        assert_eq!(
            GatewayConfig::default().validate().unwrap_err().field(),
            "replicas"
        );
        let ok = GatewayConfig::new(vec!["127.0.0.1:1".parse().unwrap()]);
        assert!(ok.validate().is_ok());
        let bad = GatewayConfig {
            call_timeout: Duration::ZERO,
            ..ok.clone()
        };
        assert_eq!(bad.validate().unwrap_err().field(), "call_timeout");
        let bad = GatewayConfig {
            call_timeout: ok.pool_timeout + ok.connect_timeout - Duration::from_millis(1),
            ..ok.clone()
        };
        let err = bad.validate().unwrap_err();
        assert_eq!(err.field(), "pool_timeout");
        assert!(
            err.to_string().contains("must not exceed call_timeout"),
            "{err}"
        );
        let never_wait = GatewayConfig {
            pool_timeout: Duration::ZERO,
            ..ok.clone()
        };
        assert!(never_wait.validate().is_ok());
        let endless = GatewayConfig {
            pool_timeout: Duration::MAX,
            ..ok.clone()
        };
        assert_eq!(endless.validate().unwrap_err().field(), "pool_timeout");
        for (field, bad) in [
            (
                "max_keys",
                GatewayConfig {
                    max_keys: 0,
                    ..ok.clone()
                },
            ),
            (
                "pool_size",
                GatewayConfig {
                    pool_size: 0,
                    ..ok.clone()
                },
            ),
            (
                "fanout_concurrency",
                GatewayConfig {
                    fanout_concurrency: 0,
                    ..ok.clone()
                },
            ),
        ] {
            assert_eq!(bad.validate().unwrap_err().field(), field);
        }
        let bad = GatewayConfig {
            retry_attempts: 0,
            ..ok.clone()
        };
        assert_eq!(bad.validate().unwrap_err().field(), "retry_attempts");
        let bad = GatewayConfig {
            hedge_budget_ratio: -1.0,
            ..ok
        };
        assert!(bad.hedge_policy().is_err());
    }
}
