//! The fleet experiment: does sharing breakers through Redis spare the fleet the calls each
//! instance would otherwise make to a dead replica, and does a Redis outage cost anything?
//!
//! N client instances (default 3, in this process, each with its own breaker per replica and,
//! in `shared` mode, its own [`Fleet`](tailguard_fleet::Fleet) on a redis-server the run
//! starts) call backend replicas round robin in an open loop, failing over to the next replica
//! on an error or an open breaker. A third of the way in, replica 0 goes down (refusing
//! connections). Per mode: the calls the fleet sent to the dead replica, the time until every
//! instance's breaker for it rejects, and p99. Then a `shared` run with no replica down in
//! which Redis is killed for the middle third: errors and p99 before, during and after; and
//! the same run with Redis left up, the control: how much p99 moves between thirds of a run
//! on this machine anyway.
//!
//! ## The JSON report (`--json`)
//!
//! | key | meaning |
//! |---|---|
//! | `instances`, `replicas`, `interval_ms` | the settings |
//! | `local`, `shared` | per mode: `dead_replica_calls` (calls the fleet sent to the dead replica after it went down), `open_all_ms` (from it going down until every instance's breaker rejects it; `null` if not all did), `open_spread_ms` (from the first instance opening to the last), `p99_ms` (the whole run's), `errors` (requests that failed on every replica tried) |
//! | `redis_killed.phases.{before,during,after}` | `requests`, `errors`, `p99_ms` of the requests that began in each third; Redis is down for `during` |
//! | `redis_killed.p99_spike_pct` | `during`'s p99 over `before`'s, less 1, in percent (`after_p99_change_pct`: `after`'s) |
//! | `redis_killed.syncs_failed`, `local_while_down`, `shared_after` | the fleets' failed syncs; whether every fleet said `local` while Redis was down, and `shared` at the end |
//! | `redis_up` | the control: the same run with Redis up throughout, same keys as `redis_killed` but for the syncs |
//! | `goals` | `shared_dead_calls_at_most` and `_met` (≤ local / N + one interval's worth), `open_all_within_ms` (2 intervals), `redis_killed_errors` (goal 0), `redis_killed_p99_spike_pct` and `_met` (goal ≤ 10), `control_p99_spike_pct` (the control's: the noise to judge the spike against) |

pub mod command;
mod run;

use std::sync::{Arc, Mutex};
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
    /// The control: shared, no replica down, Redis up throughout.
    pub redis_up: RunResult,
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
    let redis = Arc::new(Mutex::new(LocalRedis::start()?));
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
    on_run("redis_up");
    let redis_up = run::run(ex, config, Some(&redis), "control", false, false)
        .await
        .map_err(|e| e.to_string())?;
    Ok(FleetReport {
        local,
        shared,
        redis_killed,
        redis_up,
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

    /// The p99 spike of a run's middle third over its first, in percent, if both were
    /// measured.
    pub fn p99_spike_pct(run: &RunResult) -> Option<f64> {
        change_pct(run.p99_ms[0], run.p99_ms[1])
    }

    /// Everything as one JSON object (the keys are described in the module's docs).
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
        let phases = |k: &RunResult| -> serde_json::Map<String, serde_json::Value> {
            ["before", "during", "after"]
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    (
                        (*name).to_owned(),
                        json!({"requests": k.requests[i], "errors": k.errors[i], "p99_ms": k.p99_ms[i]}),
                    )
                })
                .collect()
        };
        let spike = Self::p99_spike_pct(k);
        let control = Self::p99_spike_pct(&self.redis_up);
        json!({
            "instances": config.instances,
            "replicas": config.replicas,
            "interval_ms": config.interval.as_secs_f64() * 1e3,
            "local": mode(&self.local),
            "shared": mode(&self.shared),
            "redis_killed": {
                "phases": phases(k),
                "p99_spike_pct": spike,
                "after_p99_change_pct": change_pct(k.p99_ms[0], k.p99_ms[2]),
                "syncs_failed": k.syncs_failed,
                "local_while_down": k.local_during,
                "shared_after": k.shared_after,
            },
            "redis_up": {
                "phases": phases(&self.redis_up),
                "p99_spike_pct": control,
                "after_p99_change_pct": change_pct(self.redis_up.p99_ms[0], self.redis_up.p99_ms[2]),
            },
            "goals": {
                "shared_dead_calls_at_most": self.dead_calls_goal(config),
                "shared_dead_calls_met": (self.shared.dead_replica_calls as f64) <= self.dead_calls_goal(config),
                "open_all_within_ms": 2.0 * config.interval.as_secs_f64() * 1e3,
                "redis_killed_errors": k.errors.iter().sum::<u64>(),
                "redis_killed_p99_spike_pct": spike,
                "redis_killed_p99_spike_met": spike.map(|s| s <= 10.0),
                "control_p99_spike_pct": control,
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
        let c = &self.redis_up;
        out += "redis killed for the middle third (shared, no replica down), and the control with redis up:\n";
        out += "phase    requests  errors  p99_ms | control: requests  errors  p99_ms\n";
        for (i, name) in ["before", "during", "after"].iter().enumerate() {
            out += &format!(
                "{name:<8} {:>8}  {:>6}  {:>6} |          {:>8}  {:>6}  {:>6}\n",
                k.requests[i],
                k.errors[i],
                opt(k.p99_ms[i]),
                c.requests[i],
                c.errors[i],
                opt(c.p99_ms[i])
            );
        }
        out += &format!(
            "p99 during vs before: {}% (goal <= 10%); the control's: {}%\n",
            opt(Self::p99_spike_pct(k)),
            opt(Self::p99_spike_pct(c))
        );
        out += &format!(
            "syncs failed: {}; every fleet local while down: {}; shared again after: {}\n",
            k.syncs_failed, k.local_during, k.shared_after
        );
        out
    }
}

/// `to` over `from`, less 1, in percent.
fn change_pct(from: Option<f64>, to: Option<f64>) -> Option<f64> {
    let (from, to) = (from?, to?);
    (from > 0.0).then(|| (to / from - 1.0) * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spike_is_the_middle_thirds_p99_over_the_first() {
        let run = RunResult {
            p99_ms: [Some(20.0), Some(22.0), Some(19.0)],
            ..RunResult::default()
        };
        let spike = FleetReport::p99_spike_pct(&run).unwrap();
        assert!((spike - 10.0).abs() < 1e-9, "{spike}");
        let after = change_pct(Some(20.0), Some(19.0)).unwrap();
        assert!((after + 5.0).abs() < 1e-9, "{after}");
        assert_eq!(change_pct(None, Some(19.0)), None);
        assert_eq!(change_pct(Some(0.0), Some(19.0)), None);
    }
}
