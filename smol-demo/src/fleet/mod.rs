//! The fleet experiment: does sharing breakers through Redis spare the fleet the calls each
//! instance would otherwise make to a dead replica, and does a Redis outage cost anything?
//!
//! N client instances (default 3, in this process, each with its own breaker per replica and,
//! in `shared` mode, its own [`Fleet`](tailguard_fleet::Fleet) on a redis-server the run
//! starts) call backend replicas round robin in an open loop, failing over to the next replica
//! on an error or an open breaker. A third of the way in, replica 0 goes down (refusing
//! connections). Per mode: the calls the fleet sent to the dead replica, the time until every
//! instance's breaker for it rejects, and p99. Then a `shared` run with no replica down in
//! which Redis is killed for the middle third: errors and p99 before, during and after.

pub mod command;
mod run;

use std::sync::Mutex;
use std::time::Duration;

use serde_json::json;
use tailguard::ConfigError;
use tailguard_fleet::local::LocalRedis;

pub use self::run::RunResult;
use crate::rt::Exec;

/// The experiment's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetConfig {
    /// Client instances.
    pub instances: usize,
    /// Backend replicas.
    pub replicas: usize,
    /// User requests per second per instance.
    pub rate: f64,
    /// Each run's length; the replica goes down (or Redis is killed) at a third.
    pub duration: Duration,
    /// The fleet's merge interval.
    pub interval: Duration,
    /// The breakers' count window.
    pub window: u32,
    /// The breakers' minimum calls.
    pub minimum_calls: u32,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            instances: 3,
            replicas: 3,
            rate: 300.0,
            duration: Duration::from_millis(4500),
            interval: Duration::from_millis(50),
            window: 100,
            minimum_calls: 50,
        }
    }
}

impl FleetConfig {
    /// Checks the settings, naming the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=32).contains(&self.instances) {
            return Err(ConfigError::new("instances", "must be between 1 and 32"));
        }
        if !(2..=16).contains(&self.replicas) {
            return Err(ConfigError::new("replicas", "must be between 2 and 16"));
        }
        if !(self.rate.is_finite() && (1.0..=5_000.0).contains(&self.rate)) {
            return Err(ConfigError::new(
                "rate",
                "must be between 1 and 5000 per second",
            ));
        }
        if !(Duration::from_millis(300)..=Duration::from_secs(120)).contains(&self.duration) {
            return Err(ConfigError::new(
                "duration",
                "must be between 300 ms and 120 s",
            ));
        }
        if !(Duration::from_millis(10)..=Duration::from_secs(10)).contains(&self.interval) {
            return Err(ConfigError::new(
                "interval",
                "must be between 10 ms and 10 s",
            ));
        }
        if self.minimum_calls == 0 || self.minimum_calls > self.window {
            return Err(ConfigError::new(
                "minimum_calls",
                "must be between 1 and the window",
            ));
        }
        Ok(())
    }
}

/// The three runs.
#[derive(Debug, Clone)]
pub struct FleetReport {
    /// Breakers alone.
    pub local: RunResult,
    /// Breakers shared.
    pub shared: RunResult,
    /// Shared, no replica down, Redis killed for the middle third.
    pub redis_killed: RunResult,
}

/// Runs the three runs (`on_run` is told each one's name first).
///
/// # Errors
///
/// If the backends or redis-server could not be started (the message says how to install it).
pub async fn run(
    ex: &Exec,
    config: &FleetConfig,
    mut on_run: impl FnMut(&str),
) -> Result<FleetReport, String> {
    config.validate().map_err(|e| e.to_string())?;
    let redis = Mutex::new(LocalRedis::start()?);
    on_run("local");
    let local = run::run(ex, config, None, "local", true, false)
        .await
        .map_err(|e| e.to_string())?;
    on_run("shared");
    let shared = run::run(ex, config, Some(&redis), "shared", true, false)
        .await
        .map_err(|e| e.to_string())?;
    on_run("redis_killed");
    let redis_killed = run::run(ex, config, Some(&redis), "killed", false, true)
        .await
        .map_err(|e| e.to_string())?;
    Ok(FleetReport {
        local,
        shared,
        redis_killed,
    })
}

impl FleetReport {
    /// The goal for `shared`: at most 1/N of `local`'s dead-replica calls plus one interval's
    /// worth (the calls the fleet sends the dead replica in one interval).
    pub fn dead_calls_goal(&self, config: &FleetConfig) -> f64 {
        let per_interval = config.rate * config.instances as f64 / config.replicas as f64
            * config.interval.as_secs_f64();
        self.local.dead_replica_calls as f64 / config.instances as f64 + per_interval
    }

    /// Everything as one JSON object.
    pub fn to_json(&self, config: &FleetConfig) -> serde_json::Value {
        let mode = |r: &RunResult| {
            json!({
                "dead_replica_calls": r.dead_replica_calls,
                "open_all_ms": r.open_all_ms,
                "open_spread_ms": r.spread_ms,
                "p99_ms": r.p99_all_ms,
                "errors": r.errors.iter().sum::<u64>(),
            })
        };
        let k = &self.redis_killed;
        let phases = ["before", "during", "after"];
        let killed: serde_json::Map<String, serde_json::Value> = phases
            .iter()
            .enumerate()
            .map(|(i, name)| {
                (
                    (*name).to_owned(),
                    json!({"requests": k.requests[i], "errors": k.errors[i], "p99_ms": k.p99_ms[i]}),
                )
            })
            .collect();
        json!({
            "instances": config.instances,
            "replicas": config.replicas,
            "interval_ms": config.interval.as_secs_f64() * 1e3,
            "local": mode(&self.local),
            "shared": mode(&self.shared),
            "redis_killed": {
                "phases": killed,
                "syncs_failed": k.syncs_failed,
                "local_while_down": k.local_during,
                "shared_after": k.shared_after,
            },
            "goals": {
                "shared_dead_calls_at_most": self.dead_calls_goal(config),
                "shared_dead_calls_met": (self.shared.dead_replica_calls as f64) <= self.dead_calls_goal(config),
                "open_all_within_ms": 2.0 * config.interval.as_secs_f64() * 1e3,
                "redis_killed_errors": k.errors.iter().sum::<u64>(),
            },
        })
    }

    /// A short table.
    pub fn to_table(&self, config: &FleetConfig) -> String {
        let opt = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
        let mut out = format!(
            "{} instances, {} replicas, {} req/s each, merge interval {:?}; replica 0 down at {:?}\n\n",
            config.instances,
            config.replicas,
            config.rate,
            config.interval,
            config.duration / 3
        );
        out += "mode     dead_replica_calls  open_all_ms  open_spread_ms  p99_ms  errors\n";
        for (name, r) in [("local", &self.local), ("shared", &self.shared)] {
            out += &format!(
                "{name:<8} {:>18}  {:>11}  {:>14}  {:>6}  {:>6}\n",
                r.dead_replica_calls,
                opt(r.open_all_ms),
                opt(r.spread_ms),
                opt(r.p99_all_ms),
                r.errors.iter().sum::<u64>()
            );
        }
        out += &format!(
            "goal: shared dead_replica_calls <= {:.1} (local/N + one interval's worth)\n\n",
            self.dead_calls_goal(config)
        );
        let k = &self.redis_killed;
        out += "redis killed for the middle third (shared, no replica down):\n";
        out += "phase    requests  errors  p99_ms\n";
        for (i, name) in ["before", "during", "after"].iter().enumerate() {
            out += &format!(
                "{name:<8} {:>8}  {:>6}  {:>6}\n",
                k.requests[i],
                k.errors[i],
                opt(k.p99_ms[i])
            );
        }
        out += &format!(
            "syncs failed: {}; every fleet local while down: {}; shared again after: {}\n",
            k.syncs_failed, k.local_during, k.shared_after
        );
        out
    }
}
