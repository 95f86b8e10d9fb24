//! Five layers of retries in front of a dead backend, with and without a retry budget.
//!
//! Driven with the sans-IO [`RetryState`] directly: the backend fails at once and the backoff is
//! zero, so no timer is needed, only the instant of each request for the budgets' windows.

use std::time::{Duration, Instant};

use serde::Serialize;
use tailguard::backoff::{Backoff, Jitter};
use tailguard::retry::{Decision, Next, Retry, RetryBudget, RetryConfig, RetryState};
use tailguard::time::ManualTimer;

/// Settings of the storm experiment.
#[derive(Debug, Clone)]
pub struct StormConfig {
    /// Layers of services between the user and the backend (default 5).
    pub layers: u32,
    /// Attempts each layer makes per call, the first included (default 3): a layer "retrying
    /// three times" in the sense that the dead backend sees 3⁵ = 243 calls per request.
    pub attempts_per_layer: u32,
    /// User requests (default 1000).
    pub requests: u32,
    /// Time between user requests (default 10 ms: 1000 requests span one 10 s budget window).
    pub spacing: Duration,
    /// Each layer's budget ratio (default 0.1).
    pub budget_ratio: f64,
    /// Each layer's budget floor, in retries per second (default 1).
    pub budget_min_per_second: u32,
    /// Each layer's budget window (default 10 s).
    pub budget_window: Duration,
}

impl Default for StormConfig {
    fn default() -> Self {
        StormConfig {
            layers: 5,
            attempts_per_layer: 3,
            requests: 1000,
            spacing: Duration::from_millis(10),
            budget_ratio: 0.1,
            budget_min_per_second: 1,
            budget_window: Duration::from_secs(10),
        }
    }
}

/// One run of the storm.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StormRun {
    /// Calls that reached the dead backend.
    pub backend_calls: u64,
    /// Backend calls per user request.
    pub amplification: f64,
}

/// The storm with and without budgets.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StormResult {
    /// Layers of services.
    pub layers: u32,
    /// Attempts per layer per call.
    pub attempts_per_layer: u32,
    /// User requests.
    pub requests: u32,
    /// The worst case: `attempts_per_layer ^ layers`.
    pub worst_case_amplification: f64,
    /// Budget ratio per layer in the budgeted run.
    pub budget_ratio: f64,
    /// No budgets: every layer retries every failure.
    pub without_budget: StormRun,
    /// One budget per layer.
    pub with_budget: StormRun,
}

/// Runs the storm twice: without budgets, then with one budget per layer.
pub fn run_storm(config: &StormConfig) -> StormResult {
    let worst_case = f64::from(config.attempts_per_layer).powi(config.layers as i32);
    StormResult {
        layers: config.layers,
        attempts_per_layer: config.attempts_per_layer,
        requests: config.requests,
        worst_case_amplification: worst_case,
        budget_ratio: config.budget_ratio,
        without_budget: storm_run(config, false),
        with_budget: storm_run(config, true),
    }
}

fn storm_run(config: &StormConfig, budgeted: bool) -> StormRun {
    let start = Instant::now();
    let layers: Vec<RetryConfig> = (0..config.layers)
        .map(|_| {
            let builder = Retry::with_timer(ManualTimer::new())
                .max_attempts(config.attempts_per_layer)
                .backoff(
                    Backoff::constant(Duration::ZERO)
                        .jitter(Jitter::None)
                        .build()
                        .expect("zero backoff is valid"),
                );
            let builder = if budgeted {
                builder.budget(
                    RetryBudget::builder()
                        .ratio(config.budget_ratio)
                        .min_per_second(config.budget_min_per_second)
                        .window(config.budget_window)
                        .build_at(start)
                        .expect("the storm's budget is valid"),
                )
            } else {
                builder
            };
            builder
                .build()
                .expect("the storm's policy is valid")
                .config()
                .clone()
        })
        .collect();
    let mut backend_calls = 0u64;
    for request in 0..config.requests {
        let now = start + config.spacing * request;
        let _ = call(&layers, now, &mut backend_calls);
    }
    StormRun {
        backend_calls,
        amplification: backend_calls as f64 / f64::from(config.requests.max(1)),
    }
}

/// One call into the first of `layers`; the backend behind the last one is dead.
fn call(layers: &[RetryConfig], now: Instant, backend_calls: &mut u64) -> Result<(), ()> {
    let Some((layer, deeper)) = layers.split_first() else {
        *backend_calls += 1;
        return Err(());
    };
    let mut state = RetryState::new(layer);
    loop {
        state
            .begin_attempt_at(now)
            .expect("no deadline in the storm");
        if call(deeper, now, backend_calls).is_ok() {
            state.on_success_at(now);
            return Ok(());
        }
        match state.on_failure_at(now, Decision::Retry) {
            Next::Retry(_) => continue,
            Next::GiveUp(_) => return Err(()),
        }
    }
}
