//! `tailguard-demo tail-at-scale`: the experiment of "The Tail at Scale" (Dean & Barroso, 2013).
//!
//! [`sim`] runs it in virtual time (`--sim`); [`live`] runs it over real sockets, and [`plot`]
//! draws the live run's latency CDF; [`command`] is the command-line front end.

pub mod command;
pub mod interleave;
pub mod live;
pub mod measured;
pub mod plot;
pub mod repeat;
pub mod sim;
mod sim_events;
mod sim_loop;
pub mod sim_p2c;
mod sim_world;
mod single;
pub mod sweep;
mod tied_sim;

use std::fmt::Write as _;

use tailguard::latency::LatencyHistogram;

use self::command::Args;
use self::live::{LiveConfig, LiveModeReport};
use self::measured::{row_json, text_table, Measured};
use self::sim::{ModeReport, SimConfig};
use crate::rt::{self, Runtime};
use crate::verdict::Noise;

/// Runs `--sweep` or `--repeat N`, live or `--sim`; returns what to print, or an error message.
/// (A single run goes through [`command::run`], which keeps what was measured on Ctrl-C.)
pub fn run_many(args: &Args) -> Result<String, String> {
    if args.sweep {
        return sweep::run(args);
    }
    if !args.sim {
        return run_live(args);
    }
    let config = args.config()?;
    let repeat = args.repeat.get();
    let mut runs = Vec::with_capacity(repeat);
    for i in 0..repeat {
        let config = SimConfig {
            seed: config.seed.wrapping_add(i as u64),
            ..config.clone()
        };
        if repeat > 1 {
            eprintln!(
                "tail-at-scale --sim: run {} of {repeat} (seed {})...",
                i + 1,
                config.seed
            );
        }
        runs.push(sim::run_all(&config).map_err(|e| e.to_string())?);
    }
    if repeat > 1 {
        let measured: Vec<Measured> = runs.iter().map(|r| Measured::sim(r)).collect();
        let repeated = repeat::aggregate(&measured).expect("at least one run");
        return Ok(if args.json {
            let mut json = repeated.to_json();
            json["each"] = runs.iter().map(|r| to_json(r)).collect();
            json.to_string()
        } else {
            repeated_text(&sim_heading(&config), &repeated)
        });
    }
    let reports = runs.pop().expect("one run");
    Ok(if args.json {
        to_json(&reports).to_string()
    } else {
        table(&config, &reports)
    })
}

/// Within 5 %: the simulation is deterministic, but another seed moves its numbers by that much.
pub const SIM_NOISE: Noise = Noise {
    relative: 0.05,
    absolute: 0.0,
};

/// One JSON object keyed by mode: every percentile (`null` without at least 10 requests beyond
/// it), `samples`, `max_ms`, `extra_pct` and the policy's counters.
pub fn to_json(reports: &[ModeReport]) -> serde_json::Value {
    let measured = Measured::sim(reports);
    let mut object = serde_json::Map::new();
    for (r, row) in reports.iter().zip(&measured.rows) {
        let mut mode = row_json(&measured, row);
        mode.insert("policy".into(), r.setting.clone().into());
        for (key, value) in [
            ("requests", r.requests as u64),
            ("primaries", r.stats.primaries),
            ("hedges_sent", r.stats.hedges_sent),
            ("hedges_won", r.stats.hedges_won),
            ("budget_refusals", r.stats.budget_refusals),
            ("timed_out_keys", r.timed_out_keys),
        ] {
            mode.insert(key.into(), value.into());
        }
        if r.mode == sim::Mode::Tied {
            // The policy's counters hold second copies and backups together.
            for (key, value) in [
                ("seconds_sent", r.stats.hedges_sent - r.backups.sent),
                ("won_by_second", r.stats.hedges_won - r.backups.won),
                ("backups_sent", r.backups.sent),
                ("backups_won", r.backups.won),
                ("backups_refused", r.backups.refused),
            ] {
                mode.insert(key.into(), value.into());
            }
        }
        object.insert(r.mode.name().to_owned(), serde_json::Value::Object(mode));
    }
    serde_json::Value::Object(object)
}

pub(crate) fn sim_heading(config: &SimConfig) -> String {
    format!(
        "The Tail at Scale, simulated: {} requests x {} keys over {} replicas (seed {}), each \
         replica stalled {:.3}% of the time",
        config.requests,
        config.keys_per_request,
        config.replicas,
        config.seed,
        config.stall_fraction() * 100.0
    )
}

/// A plain-text table of the reports, and the conclusions drawn from it (the best mode at
/// each percentile, against no hedging and against fixed hedging, with the extra reads).
pub fn table(config: &SimConfig, reports: &[ModeReport]) -> String {
    let mut out = sim_heading(config);
    out.push('\n');
    let refusals: Vec<String> = reports
        .iter()
        .map(|r| r.stats.budget_refusals.to_string())
        .collect();
    let measured = Measured::sim(reports);
    out.push_str(&text_table(&measured, &[("refusals", refusals)]));
    for line in measured.sentences(SIM_NOISE, "within 5%") {
        let _ = writeln!(out, "{line}");
    }
    out
}

/// The text of repeated runs: heading, table, conclusions.
fn repeated_text(heading: &str, repeated: &repeat::Repeated) -> String {
    let mut out = format!("{heading}; {} runs\n", repeated.runs);
    out.push_str(&repeated.table());
    for line in repeated.sentences() {
        let _ = writeln!(out, "{line}");
    }
    out
}

/// The live experiment: runs every mode (`--repeat` times), writes the plot, returns the
/// table (or JSON).
fn run_live(args: &Args) -> Result<String, String> {
    let config = args.live_config()?;
    let path = args.out_path();
    let repeat = args.repeat.get();
    let runtime = Runtime::new(args.threads.unwrap_or_else(rt::default_threads));
    let mut runs = Vec::with_capacity(repeat);
    for i in 0..repeat {
        let config = LiveConfig {
            seed: config.seed.wrapping_add(i as u64),
            ..config.clone()
        };
        let run = if repeat > 1 {
            format!("run {} of {repeat}, ", i + 1)
        } else {
            String::new()
        };
        let reports = runtime
            .block_on(live::run(runtime.executor(), &config, |mode| {
                eprintln!(
                    "tail-at-scale: {run}{} ({} fan-outs/s for {:?})...",
                    mode.name(),
                    config.rate,
                    config.duration
                );
            }))
            .map_err(|e| e.to_string())?;
        runs.push(reports);
    }
    drop(runtime);
    let pooled = pool(&runs);
    write_plot(&config, &pooled, &path)?;
    if repeat == 1 {
        let reports = &runs[0];
        return Ok(if args.json {
            let mut json = live::to_json(reports);
            json["svg"] = serde_json::Value::String(path.display().to_string());
            json.to_string()
        } else {
            let mut text = live::table(&config, reports);
            let _ = writeln!(text, "latency CDF of every mode: {}", path.display());
            text
        });
    }
    let measured: Vec<Measured> = runs.iter().map(|r| Measured::live(r)).collect();
    let repeated = repeat::aggregate(&measured).expect("at least one run");
    Ok(if args.json {
        let mut json = repeated.to_json();
        json["each"] = runs.iter().map(|r| live::to_json(r)).collect();
        json["svg"] = serde_json::Value::String(path.display().to_string());
        json.to_string()
    } else {
        let mut text = repeated_text(&live::heading(&config), &repeated);
        let _ = writeln!(
            text,
            "latency CDF of every mode, all {repeat} runs pooled: {}",
            path.display()
        );
        text
    })
}

/// The runs' reports with each mode's latencies pooled into one histogram (for the plot).
pub fn pool(runs: &[Vec<LiveModeReport>]) -> Vec<LiveModeReport> {
    let Some(first) = runs.first() else {
        return Vec::new();
    };
    first
        .iter()
        .enumerate()
        .map(|(m, report)| {
            let histogram = LatencyHistogram::new();
            for run in runs {
                histogram.merge(&run[m].load.histogram);
            }
            let mut pooled = report.clone();
            pooled.load.histogram = std::sync::Arc::new(histogram);
            pooled
        })
        .collect()
}

/// Writes the CDF of the modes' whole-fan-out latency to `path`.
pub fn write_plot(
    config: &LiveConfig,
    reports: &[LiveModeReport],
    path: &std::path::Path,
) -> Result<(), String> {
    let names: Vec<String> = reports
        .iter()
        .map(|r| {
            format!(
                "{} ({}), {} samples",
                r.mode.name(),
                r.hedge,
                r.load.histogram.count()
            )
        })
        .collect();
    let series: Vec<plot::Series<'_>> = reports
        .iter()
        .zip(&names)
        .map(|(r, name)| plot::Series {
            name,
            histogram: &r.load.histogram,
        })
        .collect();
    let title = format!(
        "Tail at Scale, live: {} keys over {} stalling replicas, {}/s for {:?}",
        config.keys, config.replicas, config.rate, config.duration
    );
    let svg = plot::cdf_svg(&title, &series, (900, 540)).map_err(|e| e.to_string())?;
    std::fs::write(path, svg)
        .map_err(|e| format!("cannot write the plot to {}: {e}", path.display()))
}
