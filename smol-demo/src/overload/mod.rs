//! `tailguard-demo overload`: what a concurrency limit does for a backend offered more than it
//! can serve. A backend of fixed capacity (servers × mean service time) is offered 0.5×, 1×, 2×
//! and 4× of it, behind no limit (`none`), a fixed limit sized at its servers (`static`, a
//! bulkhead) and tailguard's adaptive limit with priority shedding (`adaptive`). Goodput counts
//! answers that arrived within their deadline; the offered load mixes critical, default and
//! sheddable requests. `--sim` runs it in virtual time ([`sim`]); without, over HTTP ([`live`]).

pub mod command;
pub mod live;
pub mod plot;
pub mod sim;

use serde_json::{json, Map, Value};

use crate::percentile;

/// What stands in front of the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Nothing: every request queues at the backend.
    None,
    /// A fixed limit at the backend's servers, every class alike (a bulkhead).
    Static,
    /// The adaptive limit (Gradient2) with priority shares.
    Adaptive,
}

impl Mode {
    /// Every mode, in report order.
    pub const ALL: [Mode; 3] = [Mode::None, Mode::Static, Mode::Adaptive];

    /// Its name in the table and the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Mode::None => "none",
            Mode::Static => "static",
            Mode::Adaptive => "adaptive",
        }
    }
}

/// The JSON key of a load: `"0.5x"`, `"1x"`.
pub fn load_key(load: f64) -> String {
    format!("{load}x")
}

/// The figures of one mode at one load.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Answers within their deadline per second of offered load.
    pub goodput_rps: f64,
    /// The p99 latency of admitted requests, ms (`None` with too few samples).
    pub p99_ms: Option<f64>,
    /// Requests refused, % of offered.
    pub rejected_pct: f64,
    /// Critical requests answered within their deadline, % of critical offered.
    pub critical_goodput_pct: f64,
    /// Requests offered.
    pub offered: u64,
}

impl Point {
    fn from_tally(
        offered: [u64; 3],
        good: [u64; 3],
        rejected: u64,
        mut latencies: Vec<u64>,
        seconds: f64,
    ) -> Self {
        let total: u64 = offered.iter().sum();
        latencies.sort_unstable();
        let p99 = (percentile::supported(0.99, latencies.len() as u64)).then(|| {
            let i = ((latencies.len() as f64 * 0.99).ceil() as usize).clamp(1, latencies.len()) - 1;
            latencies[i] as f64 / 1e6
        });
        let pct = |a: u64, b: u64| {
            if b == 0 {
                0.0
            } else {
                100.0 * a as f64 / b as f64
            }
        };
        Point {
            goodput_rps: good.iter().sum::<u64>() as f64 / seconds,
            p99_ms: p99,
            rejected_pct: pct(rejected, total),
            critical_goodput_pct: pct(good[2], offered[2]),
            offered: total,
        }
    }

    fn json(&self) -> Value {
        json!({
            "goodput_rps": round(self.goodput_rps, 1),
            "p99_ms": percentile::json_ms(self.p99_ms),
            "rejected_pct": round(self.rejected_pct, 2),
            "critical_goodput_pct": round(self.critical_goodput_pct, 2),
        })
    }
}

fn round(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (x * scale).round() / scale
}

/// How the adaptive limit came back after an overload.
#[derive(Debug, Clone, PartialEq)]
pub struct Recovery {
    /// The limit when the overload began.
    pub limit_before: u32,
    /// Its lowest value during the overload.
    pub limit_during_min: u32,
    /// Seconds after the overload ended until it was back to ≥ 90 % of `limit_before`
    /// (`None`: not within the run).
    pub recovered_after_s: Option<f64>,
}

impl Recovery {
    /// From the limit sampled over a run whose overload ran from `start` to `end` seconds.
    pub fn from_samples(limits: &[(f64, u32)], start: f64, end: f64) -> Option<Self> {
        let before = limits.iter().rev().find(|(t, _)| *t <= start)?.1;
        let during = limits
            .iter()
            .filter(|(t, _)| *t > start && *t <= end)
            .map(|s| s.1)
            .min()?;
        let recovered = limits
            .iter()
            .find(|(t, l)| *t >= end && f64::from(*l) >= 0.9 * f64::from(before))
            .map(|(t, _)| round(t - end, 1));
        Some(Recovery {
            limit_before: before,
            limit_during_min: during,
            recovered_after_s: recovered,
        })
    }
}

/// Every mode at every load, and the adaptive limit's recovery.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Offered loads, multiples of capacity.
    pub loads: Vec<f64>,
    /// The backend's capacity, requests per second.
    pub capacity: f64,
    /// `points[mode][load]`, modes in [`Mode::ALL`] order.
    pub points: Vec<Vec<Point>>,
    /// The adaptive limit after an overload.
    pub recovery: Option<Recovery>,
}

impl Report {
    /// `{mode: {"0.5x": {goodput_rps, p99_ms, rejected_pct, critical_goodput_pct}, ...}}`, and
    /// `adaptive.recovery`.
    pub fn json(&self) -> Value {
        let mut top = Map::new();
        for (mode, row) in Mode::ALL.iter().zip(&self.points) {
            let mut m = Map::new();
            for (load, point) in self.loads.iter().zip(row) {
                m.insert(load_key(*load), point.json());
            }
            if *mode == Mode::Adaptive {
                if let Some(r) = &self.recovery {
                    m.insert(
                        "recovery".into(),
                        json!({
                            "limit_before": r.limit_before,
                            "limit_during_min": r.limit_during_min,
                            "recovered_after_s": r.recovered_after_s,
                        }),
                    );
                }
            }
            top.insert(mode.name().into(), Value::Object(m));
        }
        Value::Object(top)
    }

    fn point(&self, mode: Mode, load: f64) -> Option<&Point> {
        let m = Mode::ALL.iter().position(|x| *x == mode)?;
        let l = self.loads.iter().position(|x| *x == load)?;
        self.points.get(m)?.get(l)
    }

    /// The goals of issue 12, each as a sentence with its figures, and whether it was met.
    pub fn goals(&self) -> Vec<(bool, String)> {
        let mut out = Vec::new();
        let (base, two, four) = (
            self.point(Mode::Adaptive, 0.5),
            self.point(Mode::Adaptive, 2.0),
            self.point(Mode::Adaptive, 4.0),
        );
        if let (Some(base), Some(two)) = (base, two) {
            if let (Some(b), Some(t)) = (base.p99_ms, two.p99_ms) {
                out.push((t <= 1.5 * b, format!("adaptive p99 at 2x is {:.2}x its 0.5x p99 ({t:.1} vs {b:.1} ms; goal ≤ 1.5x)", t / b)));
            }
            let share = two.goodput_rps / self.capacity;
            out.push((
                share >= 0.9,
                format!(
                    "adaptive goodput at 2x is {:.0}% of capacity (goal ≥ 90%)",
                    share * 100.0
                ),
            ));
            if let Some(none) = self.point(Mode::None, 2.0) {
                out.push((
                    none.goodput_rps < two.goodput_rps,
                    format!(
                        "without a limit, goodput at 2x is {:.0}% of capacity",
                        100.0 * none.goodput_rps / self.capacity
                    ),
                ));
            }
        }
        if let Some(four) = four {
            out.push((four.critical_goodput_pct >= 99.0, format!("adaptive at 4x keeps {:.2}% of critical requests within their deadline (goal ≥ 99%)", four.critical_goodput_pct)));
        }
        if let Some(r) = &self.recovery {
            let ok = r.recovered_after_s.is_some_and(|s| s <= 10.0);
            let when = r
                .recovered_after_s
                .map_or("not within the run".to_string(), |s| {
                    format!("{s:.1} s after")
                });
            out.push((ok, format!("after 10 s at 4x the limit (from {} down to {}) was back to ≥ 90% {when} (goal ≤ 10 s)", r.limit_before, r.limit_during_min)));
        }
        out
    }

    /// The table and the goals, as text.
    pub fn text(&self) -> String {
        let mut s = format!(
            "backend capacity {:.0} requests/s; goodput = answers within their deadline\n\n{:<9} {:>5} {:>12} {:>9} {:>10} {:>12}\n",
            self.capacity, "mode", "load", "goodput/s", "p99 ms", "rejected", "critical ok"
        );
        for (mode, row) in Mode::ALL.iter().zip(&self.points) {
            for (load, p) in self.loads.iter().zip(row) {
                let p99 = p.p99_ms.map_or_else(
                    || percentile::not_available(p.offered),
                    |v| format!("{v:.1}"),
                );
                s += &format!(
                    "{:<9} {:>5} {:>12.0} {:>9} {:>9.1}% {:>11.2}%\n",
                    mode.name(),
                    load_key(*load),
                    p.goodput_rps,
                    p99,
                    p.rejected_pct,
                    p.critical_goodput_pct
                );
            }
        }
        s += "\n";
        for (ok, sentence) in self.goals() {
            s += &format!("{} {sentence}\n", if ok { "met:   " } else { "MISSED:" });
        }
        s
    }
}

/// Runs every mode at every load, and the recovery run, in virtual time.
pub fn simulate(config: &sim::SimConfig) -> Report {
    let points = Mode::ALL
        .iter()
        .map(|&mode| {
            config
                .loads
                .iter()
                .map(|&load| {
                    sim::run(
                        config,
                        mode,
                        &[sim::Phase {
                            load,
                            duration: config.duration,
                        }],
                    )
                    .point
                })
                .collect()
        })
        .collect();
    let phase = |load, secs| sim::Phase {
        load,
        duration: std::time::Duration::from_secs(secs),
    };
    let recovery_run = sim::run(
        config,
        Mode::Adaptive,
        &[phase(1.0, 10), phase(4.0, 10), phase(1.0, 20)],
    );
    Report {
        loads: config.loads.clone(),
        capacity: config.capacity(),
        points,
        recovery: Recovery::from_samples(&recovery_run.limits, 10.0, 20.0),
    }
}
