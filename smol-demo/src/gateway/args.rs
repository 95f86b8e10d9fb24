//! The gateway's command-line flags, flattened into `tailguard-demo serve`.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

use super::{BreakerSettings, GatewayConfig, HedgeMode};
use crate::args::parse_duration;

/// Flags of `serve` that set up `GET /fanout`.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Gateway (GET /fanout)")]
pub struct GatewayArgs {
    /// A backend replica's address (repeat, or separate with commas), e.g. the addresses
    /// `tailguard-demo backend` prints. Without any, GET /fanout answers 503.
    #[arg(long = "backend", value_delimiter = ',')]
    pub backends: Vec<SocketAddr>,
    /// The most keys one GET /fanout may ask for; above, it is answered 400.
    #[arg(long, default_value_t = NonZeroUsize::new(1000).unwrap())]
    pub max_keys: NonZeroUsize,
    /// The most keys of one fan-out read at once; the others wait for their turn.
    #[arg(long, default_value_t = NonZeroUsize::new(32).unwrap())]
    pub fanout_concurrency: NonZeroUsize,
    /// The most connections open to each replica; a call beyond waits for one to come free.
    #[arg(long, default_value_t = NonZeroUsize::new(16).unwrap())]
    pub pool_size: NonZeroUsize,
    /// Longest wait for a pooled connection (0ms: never wait); a call that got none fails
    /// without being held against the replica.
    #[arg(long, default_value = "50ms", value_parser = parse_duration)]
    pub pool_timeout: Duration,
    /// Longest wait for one call to a replica, waiting for a pooled connection and connecting
    /// included (at least --pool-timeout + --connect-timeout).
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    pub call_timeout: Duration,
    /// Longest wait to connect to a replica.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// A fan-out's deadline: keys not read by then are reported missing.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub fanout_deadline: Duration,
    /// Tries per key, the first included.
    #[arg(long, default_value_t = 3)]
    pub retry_attempts: u32,
    /// Retries allowed as a fraction of first tries (the shared retry budget).
    #[arg(long, default_value_t = 0.2, allow_negative_numbers = true)]
    pub retry_budget: f64,
    /// When to hedge a slow call: off, fixed:10ms, adaptive (p95) or adaptive:0.9 (never
    /// earlier than the percentile the budget pays for, 1 - --hedge-budget); or tied
    /// (tied:1ms): every key to two replicas, each copy cancelling the other when it starts.
    #[arg(long, default_value = "adaptive")]
    pub hedge: HedgeMode,
    /// Hedges allowed as a fraction of calls.
    #[arg(long, default_value_t = 0.1, allow_negative_numbers = true)]
    pub hedge_budget: f64,
    /// How each key's replica is picked: home (key k on replica k mod n first, each hedge or
    /// retry one further along) or p2c (power of two choices over a peak-EWMA of latency;
    /// hedges and retries only to replicas not running the key, hedges only to healthy ones).
    #[arg(long, default_value = "home")]
    pub balance: super::Balance,
    /// A replica's breaker opens at this failure rate over its last 20 calls.
    #[arg(long, default_value_t = 0.5, allow_negative_numbers = true)]
    pub breaker_failure_rate: f64,
    /// How long an open breaker keeps traffic away before probing.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub breaker_open: Duration,
    /// An adaptive concurrency limit in front of each replica: off, gradient2 or aimd. A call
    /// the limit refuses goes to another replica; it learns from latency, 503s and timeouts.
    #[arg(long, default_value = "off")]
    pub replica_limit: super::ReplicaLimit,
    /// The replica limit to start from.
    #[arg(long, default_value_t = 20)]
    pub replica_limit_initial: u32,
    /// The most the replica limit may grow to.
    #[arg(long, default_value_t = 200)]
    pub replica_limit_max: u32,
    /// Client-side throttling of each replica: off, or K (2 is the SRE book's); calls are
    /// refused locally with probability max(0, (requests - K*accepts) / (requests + 1)) over
    /// the last two minutes, where 503, 429 and timeouts are not accepted.
    #[arg(long, default_value = "off", value_parser = parse_throttle_k, allow_negative_numbers = true)]
    pub throttle_k: ThrottleK,
}

/// `--throttle-k`: off, or K.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThrottleK(pub Option<f64>);

/// `off`, or a number (checked when the gateway is built, naming `--throttle-k`).
fn parse_throttle_k(text: &str) -> Result<ThrottleK, String> {
    if text == "off" {
        return Ok(ThrottleK(None));
    }
    text.parse::<f64>()
        .map(|k| ThrottleK(Some(k)))
        .map_err(|_| format!("`{text}` is not off or a number K, like 2"))
}

impl GatewayArgs {
    /// The gateway's configuration, or `None` without backends.
    pub fn config(&self) -> Option<GatewayConfig> {
        if self.backends.is_empty() {
            return None;
        }
        Some(GatewayConfig {
            replicas: self.backends.clone(),
            max_keys: self.max_keys.get(),
            fanout_concurrency: self.fanout_concurrency.get(),
            pool_size: self.pool_size.get(),
            pool_timeout: self.pool_timeout,
            call_timeout: self.call_timeout,
            connect_timeout: self.connect_timeout,
            fanout_deadline: self.fanout_deadline,
            retry_attempts: self.retry_attempts,
            retry_budget_ratio: self.retry_budget,
            hedge: self.hedge,
            hedge_budget_ratio: self.hedge_budget,
            balance: self.balance,
            breaker: BreakerSettings {
                failure_rate: self.breaker_failure_rate,
                open_duration: self.breaker_open,
                ..BreakerSettings::default()
            },
            replica_limit: self.replica_limit,
            replica_limit_initial: self.replica_limit_initial,
            replica_limit_max: self.replica_limit_max,
            throttle_k: self.throttle_k.0,
            log_transitions: true,
            ..GatewayConfig::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        gateway: GatewayArgs,
    }

    fn parse(args: &[&str]) -> Result<GatewayArgs, clap::Error> {
        Cli::try_parse_from(["serve", "--backend", "127.0.0.1:1"].iter().chain(args))
            .map(|cli| cli.gateway)
    }

    #[test]
    fn the_defaults_are_the_configs() {
        let config = parse(&[]).unwrap().config().unwrap();
        let defaults = GatewayConfig::default();
        assert_eq!(config.max_keys, defaults.max_keys);
        assert_eq!(config.pool_size, defaults.pool_size);
        assert_eq!(config.pool_timeout, defaults.pool_timeout);
        assert_eq!(config.fanout_concurrency, defaults.fanout_concurrency);
        assert_eq!(config.call_timeout, defaults.call_timeout);
        assert_eq!(config.replica_limit, defaults.replica_limit);
        assert_eq!(config.replica_limit_initial, defaults.replica_limit_initial);
        assert_eq!(config.replica_limit_max, defaults.replica_limit_max);
        assert_eq!(config.throttle_k, defaults.throttle_k);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn limits_are_set_by_flags_and_zero_is_refused_naming_the_flag() {
        let config = parse(&["--max-keys", "256", "--pool-size", "8"])
            .unwrap()
            .config()
            .unwrap();
        assert_eq!((config.max_keys, config.pool_size), (256, 8));
        for flag in ["--max-keys", "--pool-size", "--fanout-concurrency"] {
            let err = parse(&[flag, "0"]).expect_err("0 refused").to_string();
            assert!(err.contains(flag), "{err}");
        }
    }

    #[test]
    fn overload_control_is_set_by_flags() {
        let config = parse(&["--replica-limit", "aimd", "--throttle-k", "2"])
            .unwrap()
            .config()
            .unwrap();
        assert_eq!(config.replica_limit, super::super::ReplicaLimit::Aimd);
        assert_eq!(config.throttle_k, Some(2.0));
        for (flag, bad) in [("--replica-limit", "vegas"), ("--throttle-k", "lots")] {
            let err = parse(&[flag, bad]).expect_err("refused").to_string();
            assert!(err.contains(flag), "{err}");
        }
    }
}
