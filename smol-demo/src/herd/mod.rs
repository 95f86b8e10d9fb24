//! `tailguard-demo herd`: the thundering herd, and what jitter and budgets do about it.
//!
//! [`live`] runs clients against a real backend that comes back from an outage (the default
//! of `tailguard-demo herd`). With `--sim`, two experiments, both in virtual time on a [`ManualTimer`](tailguard::time::ManualTimer) with
//! seeded randomness, so every run with the same flags prints the same numbers:
//!
//! 1. **Contention** ([`contention`]), after the AWS Architecture Blog post "Exponential Backoff
//!    and Jitter" (Marc Brooker, 2015). N clients each want to write once to one resource guarded
//!    by optimistic concurrency: a client reads the version, spends a fixed service time, then
//!    writes; the write fails if another write landed since the read, and the client retries
//!    under a [`Retry`](tailguard::retry::Retry) policy. Five strategies: no backoff, exponential
//!    without jitter, and exponential with full, equal and decorrelated jitter. Without jitter,
//!    clients that collided once collide again every round; jitter spreads them out.
//! 2. **Retry storm** ([`storm`]): five layers of services, each making up to three attempts,
//!    in front of a dead backend. Each failure is multiplied at every layer. A 10% retry budget
//!    per layer keeps the amplification near 1.1⁵.

pub mod command;
pub mod contention;
pub mod live;
pub mod storm;
pub mod summary;

use std::fmt::Write as _;

use serde::Serialize;

pub use self::contention::{run_contention, ContentionConfig, ContentionResult, Strategy};
pub use self::storm::{run_storm, StormConfig, StormResult, StormRun};

/// Settings for both experiments.
#[derive(Debug, Clone)]
pub struct HerdConfig {
    /// Contention: the clients (default 100).
    pub contention: ContentionConfig,
    /// The retry storm.
    pub storm: StormConfig,
}

impl HerdConfig {
    /// The defaults with `clients` contending clients and `seed` for every random choice.
    pub fn new(clients: u32, seed: u64) -> Self {
        HerdConfig {
            contention: ContentionConfig {
                clients,
                seed,
                ..ContentionConfig::default()
            },
            storm: StormConfig::default(),
        }
    }
}

/// Everything `tailguard-demo herd` prints.
#[derive(Debug, Clone, Serialize)]
pub struct HerdReport {
    /// Contention results, in [`Strategy::ALL`] order.
    #[serde(skip)]
    pub contention: Vec<(Strategy, ContentionResult)>,
    /// The retry storm.
    pub storm: StormResult,
}

impl HerdReport {
    /// The result for one strategy.
    pub fn get(&self, strategy: Strategy) -> &ContentionResult {
        &self
            .contention
            .iter()
            .find(|(s, _)| *s == strategy)
            .expect("every strategy is simulated")
            .1
    }

    /// One JSON object keyed by strategy name (`calls`, `completion_ms`), plus `"storm"`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut object = serde_json::Map::new();
        for (strategy, result) in &self.contention {
            object.insert(
                strategy.name().to_string(),
                serde_json::to_value(result).expect("plain numbers serialize"),
            );
        }
        object.insert(
            "storm".to_string(),
            serde_json::to_value(self.storm).expect("plain numbers serialize"),
        );
        serde_json::Value::Object(object)
    }

    /// The human-readable tables.
    pub fn to_table(&self, config: &HerdConfig) -> String {
        let c = &config.contention;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Contention: {} clients, one optimistic-concurrency write each (network \
             |N({:?}, {:?})| per trip, backoff base {:?}, cap {:?}, seed {}, mean of {} trials)",
            c.clients, c.network_mean, c.network_sd, c.base, c.cap, c.seed, c.trials
        );
        let _ = writeln!(
            out,
            "{:<14} {:>10} {:>16}",
            "strategy", "calls", "completion_ms"
        );
        for (strategy, result) in &self.contention {
            let _ = writeln!(
                out,
                "{:<14} {:>10.1} {:>16.1}",
                strategy.name(),
                result.calls,
                result.completion_ms
            );
        }
        let s = &self.storm;
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "Retry storm: {} layers x {} attempts each, dead backend, {} requests over {:?}",
            s.layers,
            s.attempts_per_layer,
            s.requests,
            config.storm.spacing * s.requests
        );
        let _ = writeln!(
            out,
            "{:<26} {:>14} {:>14}",
            "", "backend_calls", "amplification"
        );
        for (label, run) in [
            ("no budget".to_string(), &s.without_budget),
            (
                format!("{}% budget per layer", s.budget_ratio * 100.0),
                &s.with_budget,
            ),
        ] {
            let _ = writeln!(
                out,
                "{:<26} {:>14} {:>13.2}x",
                label, run.backend_calls, run.amplification
            );
        }
        for line in summary::sim_sentences(self) {
            let _ = writeln!(out, "{line}");
        }
        out
    }
}

/// Runs both experiments.
pub fn run(config: &HerdConfig) -> HerdReport {
    let contention = Strategy::ALL
        .iter()
        .map(|&strategy| (strategy, run_contention(strategy, &config.contention)))
        .collect();
    HerdReport {
        contention,
        storm: run_storm(&config.storm),
    }
}
