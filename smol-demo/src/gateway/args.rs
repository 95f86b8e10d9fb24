//! The gateway's command-line flags, flattened into `tailguard-demo serve`.

use std::net::SocketAddr;
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
    /// Longest wait for one call to a replica.
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
    /// When to hedge a slow call: off, fixed:10ms, adaptive (p95) or adaptive:0.9.
    #[arg(long, default_value = "adaptive")]
    pub hedge: HedgeMode,
    /// Hedges allowed as a fraction of calls.
    #[arg(long, default_value_t = 0.1, allow_negative_numbers = true)]
    pub hedge_budget: f64,
    /// A replica's breaker opens at this failure rate over its last 20 calls.
    #[arg(long, default_value_t = 0.5, allow_negative_numbers = true)]
    pub breaker_failure_rate: f64,
    /// How long an open breaker keeps traffic away before probing.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub breaker_open: Duration,
}

impl GatewayArgs {
    /// The gateway's configuration, or `None` without backends.
    pub fn config(&self) -> Option<GatewayConfig> {
        if self.backends.is_empty() {
            return None;
        }
        Some(GatewayConfig {
            replicas: self.backends.clone(),
            call_timeout: self.call_timeout,
            connect_timeout: self.connect_timeout,
            fanout_deadline: self.fanout_deadline,
            retry_attempts: self.retry_attempts,
            retry_budget_ratio: self.retry_budget,
            hedge: self.hedge,
            hedge_budget_ratio: self.hedge_budget,
            breaker: BreakerSettings {
                failure_rate: self.breaker_failure_rate,
                open_duration: self.breaker_open,
                ..BreakerSettings::default()
            },
            log_transitions: true,
            ..GatewayConfig::default()
        })
    }
}
