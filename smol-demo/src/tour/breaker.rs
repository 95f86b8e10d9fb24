//! Tour section 4: the circuit breaker of one replica trips during its outage, keeps traffic
//! away, probes, and closes again when the replica is back; a table over time.

use std::time::{Duration, Instant};

use futures_lite::future;
use tailguard::breaker::State;

use super::out::{Out, Table};
use super::secs;
use crate::backend::{BackendConfig, Backends, LatencyDist, Outage, Profile};
use crate::experiment::ExperimentError;
use crate::gateway::{
    BreakerSettings, FanoutReport, Gateway, GatewayConfig, GatewayStats, HedgeMode, ReplicaView,
};
use crate::load::open_loop::open_loop;
use crate::ms;
use crate::rt::Runtime;

/// The replica that goes down.
pub const DOWN: usize = 1;
/// The replicas of the section.
pub const REPLICAS: usize = 3;
/// Keys per fan-out.
pub const KEYS: usize = 6;

/// The section's timing.
#[derive(Debug, Clone, Copy)]
pub struct BreakerPlan {
    /// Fan-outs per second.
    pub rate: f64,
    /// Healthy time before the outage.
    pub healthy: Duration,
    /// How long replica 1 is down.
    pub down: Duration,
    /// How long to watch after it is back.
    pub back: Duration,
    /// One row of the table per window.
    pub window: Duration,
    /// How long an open breaker waits before probing.
    pub open_duration: Duration,
}

impl BreakerPlan {
    /// The tour's plan (`quick`: a shorter one).
    pub fn new(quick: bool) -> BreakerPlan {
        if quick {
            BreakerPlan {
                rate: 40.0,
                healthy: Duration::from_millis(500),
                down: Duration::from_millis(1000),
                back: Duration::from_millis(1000),
                window: Duration::from_millis(250),
                open_duration: Duration::from_millis(400),
            }
        } else {
            BreakerPlan {
                rate: 40.0,
                healthy: Duration::from_secs(1),
                down: Duration::from_secs(2),
                back: Duration::from_millis(1500),
                window: Duration::from_millis(500),
                open_duration: Duration::from_millis(500),
            }
        }
    }

    fn total(&self) -> Duration {
        self.healthy + self.down + self.back
    }

    fn windows(&self) -> usize {
        (self.total().as_nanos() / self.window.as_nanos().max(1)) as usize
    }
}

/// One row of the table: one window of time.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerWindow {
    /// The window's start, since the start.
    pub from: Duration,
    /// Its end.
    pub to: Duration,
    /// Replica 1 during the window: `up`, `DOWN`, or a change (`up>DOWN`, `DOWN>up`).
    pub replica: &'static str,
    /// Its breaker's state at the window's end.
    pub state: State,
    /// Its breaker's transitions during the window.
    pub transitions: Vec<(State, State, u64)>,
    /// Fan-outs that ended in the window.
    pub fanouts: u64,
    /// ... with every key.
    pub complete: u64,
    /// Keys served by each replica.
    pub served_by: Vec<u64>,
    /// Calls to replica 1 that failed.
    pub failed_calls: u64,
    /// Calls that skipped replica 1 because its breaker was open.
    pub skipped: u64,
}

/// Runs the fan-outs through the outage and reports one row per window.
pub fn run(rt: &Runtime, plan: BreakerPlan) -> Result<Vec<BreakerWindow>, ExperimentError> {
    let ex = rt.executor();
    let profile = Profile {
        latency: LatencyDist::LogNormal {
            median: Duration::from_millis(3),
            sigma: 0.3,
        },
        ..Profile::default()
    };
    let backend_config = BackendConfig {
        outages: vec![Outage {
            replica: DOWN,
            from: plan.healthy,
            to: plan.healthy + plan.down,
        }],
        control: false,
        ..BackendConfig::uniform(REPLICAS, profile)
    };
    rt.block_on(async {
        let backends = Backends::start(backend_config, ex).await?;
        let origin = backends.origin();
        let gateway = Gateway::new(
            GatewayConfig {
                // Hedging off: the breaker alone decides where traffic goes.
                hedge: HedgeMode::Off,
                breaker: BreakerSettings {
                    open_duration: plan.open_duration,
                    ..BreakerSettings::default()
                },
                seed: Some(1),
                ..GatewayConfig::new(backends.addrs().to_vec())
            },
            ex.clone(),
        )?;
        let windows = plan.windows();
        let sampler = async {
            let mut samples = vec![gateway.stats()];
            for k in 1..=windows {
                smol::Timer::at(origin + plan.window * k as u32).await;
                samples.push(gateway.stats());
            }
            samples
        };
        let driver = drive(&gateway, origin, plan);
        let (samples, reports) = future::zip(sampler, driver).await;
        backends.stop().await;
        Ok(rows(plan, &samples, &reports))
    })
}

/// Sends fan-outs at `plan.rate` (open loop) until the end; returns each with its end time.
async fn drive(
    gateway: &Gateway,
    origin: Instant,
    plan: BreakerPlan,
) -> Vec<(Duration, FanoutReport)> {
    let total = (plan.rate * plan.total().as_secs_f64()).floor() as u64;
    open_loop(origin, plan.rate, total, None, |_| async {
        let report = gateway.fanout(KEYS).await;
        (origin.elapsed(), report)
    })
    .await
    .outputs
}

fn rows(
    plan: BreakerPlan,
    samples: &[GatewayStats],
    reports: &[(Duration, FanoutReport)],
) -> Vec<BreakerWindow> {
    samples
        .windows(2)
        .enumerate()
        .map(|(k, pair)| {
            let (before, after) = (&pair[0], &pair[1]);
            let from = plan.window * k as u32;
            let to = from + plan.window;
            let (down_from, down_to) = (plan.healthy, plan.healthy + plan.down);
            let replica = match (
                from < down_from,
                to > down_from,
                from < down_to,
                to > down_to,
            ) {
                (true, true, _, _) => "up>DOWN",
                (_, _, true, true) => "DOWN>up",
                _ if from >= down_from && to <= down_to => "DOWN",
                _ => "up",
            };
            let in_window = reports.iter().filter(|(at, _)| *at >= from && *at < to);
            let mut served_by = vec![0; REPLICAS];
            let (mut fanouts, mut complete) = (0, 0);
            for (_, report) in in_window {
                fanouts += 1;
                if report.ok == report.keys {
                    complete += 1;
                }
                for (sum, n) in served_by.iter_mut().zip(&report.served_by) {
                    *sum += n;
                }
            }
            let (b, a) = (&before.replicas[DOWN], &after.replicas[DOWN]);
            BreakerWindow {
                from,
                to,
                replica,
                state: a.state,
                transitions: transitions(b, a),
                fanouts,
                complete,
                served_by,
                failed_calls: (a.failed + a.timed_out) - (b.failed + b.timed_out),
                skipped: a.rejected - b.rejected,
            }
        })
        .collect()
}

/// The transitions between two snapshots, in the order a breaker goes through them.
fn transitions(before: &ReplicaView, after: &ReplicaView) -> Vec<(State, State, u64)> {
    let rank = |from: State, to: State| match (from, to) {
        (State::Closed, State::Open) => 0,
        (State::Open, State::HalfOpen) => 1,
        (State::HalfOpen, State::Open) => 2,
        (State::HalfOpen, State::Closed) => 3,
        _ => 4,
    };
    let mut list: Vec<(State, State, u64)> = after
        .transitions
        .iter()
        .map(|&(from, to, n)| (from, to, n - before.transitions(from, to)))
        .filter(|&(_, _, n)| n > 0)
        .collect();
    list.sort_by_key(|&(from, to, _)| rank(from, to));
    list
}

fn state_name(state: State) -> &'static str {
    match state {
        State::HalfOpen => "half-open",
        other => other.as_str(),
    }
}

/// A transition in one word.
fn transition_name(from: State, to: State) -> String {
    match (from, to) {
        (State::Closed, State::Open) => "tripped".into(),
        (State::Open, State::HalfOpen) => "probing".into(),
        (State::HalfOpen, State::Open) => "reopened".into(),
        (State::HalfOpen, State::Closed) => "closed".into(),
        (from, to) => format!("{}>{}", state_name(from), state_name(to)),
    }
}

/// What the table shows, in words: when replica 1's breaker opened and after how many failed
/// calls, how many probes found it still down, whether and when it closed again, and how many
/// fan-outs were whole.
pub fn summary(rows: &[BreakerWindow]) -> String {
    let window = |row: &BreakerWindow| format!("{}-{}", secs(row.from), secs(row.to));
    let has = |row: &BreakerWindow, from: State, to: State| {
        row.transitions
            .iter()
            .filter(|&&(f, t, _)| f == from && t == to)
            .map(|&(_, _, n)| n)
            .sum::<u64>()
    };
    let mut parts = Vec::new();
    let tripped = rows
        .iter()
        .position(|r| has(r, State::Closed, State::Open) > 0);
    match tripped {
        Some(i) => {
            let failed: u64 = rows[..=i].iter().map(|r| r.failed_calls).sum();
            parts.push(format!(
                "replica 1's breaker opened in {} after {failed} failed calls",
                window(&rows[i])
            ));
            let reopened: u64 = rows
                .iter()
                .map(|r| has(r, State::HalfOpen, State::Open))
                .sum();
            parts.push(format!("{reopened} probes found it still down"));
            match rows[i..]
                .iter()
                .find(|r| has(r, State::HalfOpen, State::Closed) > 0)
            {
                Some(closed) => parts.push(format!(
                    "a probe succeeded and it closed in {}",
                    window(closed)
                )),
                None => parts.push("it had not closed again by the end".into()),
            }
            let skipped: u64 = rows.iter().map(|r| r.skipped).sum();
            parts.push(format!(
                "{skipped} calls went elsewhere at once while it was open"
            ));
        }
        None => {
            let failed: u64 = rows.iter().map(|r| r.failed_calls).sum();
            parts.push(format!(
                "replica 1's breaker never opened ({failed} failed calls)"
            ));
        }
    }
    let whole: u64 = rows.iter().map(|r| r.complete).sum();
    let fanouts: u64 = rows.iter().map(|r| r.fanouts).sum();
    let mut text = parts.join("; ");
    if let Some(first) = text.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    format!("{text}. {whole} of {fanouts} fan-outs had every key.")
}

/// The section's table.
pub fn table(rows: &[BreakerWindow]) -> Table {
    let mut table = Table::new([
        "time",
        "replica 1",
        "breaker 1",
        "its transitions",
        "whole fan-outs",
        "keys by replica 0/1/2",
        "failed calls to 1",
        "calls skipping 1",
    ])
    .left_columns(4);
    for row in rows {
        let transitions: Vec<String> = row
            .transitions
            .iter()
            .map(|&(from, to, n)| {
                let name = transition_name(from, to);
                if n > 1 {
                    format!("{name} x{n}")
                } else {
                    name
                }
            })
            .collect();
        let served: Vec<String> = row.served_by.iter().map(u64::to_string).collect();
        // `rows` are in time order, so the table reads top to bottom.
        table.row([
            format!("{}-{}", secs(row.from), secs(row.to)),
            row.replica.to_string(),
            state_name(row.state).to_string(),
            if transitions.is_empty() {
                "-".to_string()
            } else {
                transitions.join(", ")
            },
            format!("{}/{}", row.complete, row.fanouts),
            served.join(" / "),
            row.failed_calls.to_string(),
            row.skipped.to_string(),
        ]);
    }
    table
}

/// The section: what the breaker does, the table over time, and what it shows.
pub fn section(out: &Out, rt: &Runtime, quick: bool) -> Result<(), ExperimentError> {
    let plan = BreakerPlan::new(quick);
    let settings = crate::gateway::BreakerSettings::default();
    out.para(&format!(
        "A circuit breaker stops calling a replica that keeps failing, so calls go elsewhere \
         at once instead of failing first, and it lets a probe through now and then to notice \
         the replica's return. The gateway keeps one breaker per replica: it opens at {:.0}% \
         failures over the last {} calls, stays open {}, then lets {} probe calls through. \
         Fan-outs of {} keys over {} replicas at {}/s; replica {} is down from {} to {}. \
         Hedging is off here, so the breaker alone steers traffic (a failed call is retried \
         on the next replica):",
        settings.failure_rate * 100.0,
        settings.window,
        ms::text(plan.open_duration),
        settings.half_open_calls,
        KEYS,
        REPLICAS,
        plan.rate,
        DOWN,
        secs(plan.healthy),
        secs(plan.healthy + plan.down)
    ));
    let rows = run(rt, plan)?;
    out.table(&table(&rows));
    out.note(&summary(&rows));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(from_ms: u64, transitions: Vec<(State, State, u64)>, failed: u64) -> BreakerWindow {
        BreakerWindow {
            from: Duration::from_millis(from_ms),
            to: Duration::from_millis(from_ms + 500),
            replica: "up",
            state: State::Closed,
            transitions,
            fanouts: 10,
            complete: 10,
            served_by: vec![20, 20, 20],
            failed_calls: failed,
            skipped: 5,
        }
    }

    #[test]
    fn the_summary_follows_the_rows() {
        let rows = vec![
            row(0, vec![], 0),
            row(500, vec![(State::Closed, State::Open, 1)], 10),
            row(
                1000,
                vec![
                    (State::Open, State::HalfOpen, 1),
                    (State::HalfOpen, State::Open, 1),
                ],
                2,
            ),
            row(
                1500,
                vec![
                    (State::Open, State::HalfOpen, 1),
                    (State::HalfOpen, State::Closed, 1),
                ],
                0,
            ),
        ];
        assert_eq!(
            summary(&rows),
            "Replica 1's breaker opened in 0.5s-1s after 10 failed calls; 1 probes found it \
             still down; a probe succeeded and it closed in 1.5s-2s; 20 calls went elsewhere at \
             once while it was open. 40 of 40 fan-outs had every key."
        );
        // A breaker that never closes again, or never opens, is described as such.
        assert!(summary(&rows[..3]).contains("it had not closed again by the end"));
        let mut quiet = rows[..1].to_vec();
        quiet[0].complete = 9;
        assert_eq!(
            summary(&quiet),
            "Replica 1's breaker never opened (0 failed calls). 9 of 10 fan-outs had every key."
        );
    }
}
