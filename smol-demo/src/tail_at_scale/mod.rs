//! `tailguard-demo tail-at-scale`: the experiment of "The Tail at Scale" (Dean & Barroso, 2013).
//!
//! [`sim`] runs it in virtual time; [`run`] is the command-line front end.

pub mod sim;

use std::fmt::Write as _;
use std::time::Duration;

use self::sim::{ModeReport, SimConfig};

/// One line of help for `tail-at-scale`.
pub const ABOUT: &str =
    "The Tail at Scale experiment: 1,000-key reads over 100 replicas that stall, \
             unhedged vs fixed-delay vs adaptive hedging";

/// The full `tail-at-scale --help`: the model, stated.
pub const LONG_ABOUT: &str = "The Tail at Scale experiment (Dean & Barroso, 2013), as a deterministic \
virtual-time simulation running tailguard's own scatter-gather and hedging code.

Model: 100 replicas serve a key read in 0.2 ms + Exp(mean 1 ms). Each replica stalls like a \
stop-the-world GC: pauses start at exponential intervals (mean 2,000 s per replica) and last \
uniformly 200 ms to 2 s; a paused replica serves nothing (reads wait, reads in service freeze). \
A replica is paused 0.055% of the time, so a request reading 1,000 keys, which touches nearly \
every replica, meets a pause about 5% of the time. Requests arrive as a Poisson process (mean \
every 2 s, the first 20 not measured) and read their keys by scatter-gather; attempt n of a key read goes to the key's \
n-th copy on another replica. Every mode sees the same stalls and service times.

Modes: none (no hedging); fixed (hedge each read after 10 ms, no budget, as in the paper); \
adaptive (hedge at the p99 of recent primary latency, within a 2% budget of extra reads).

Prints p50 / p99 / p99.9 of whole-request latency and the extra reads per mode.";

/// Command-line arguments of `tail-at-scale`.
#[derive(Debug, Clone, clap::Args)]
#[command(about = ABOUT, long_about = LONG_ABOUT)]
pub struct TailAtScaleArgs {
    /// Run the virtual-time simulation (the only variant so far).
    #[arg(long)]
    pub sim: bool,
    /// Print one JSON object keyed by mode (p50_ms, p99_ms, p999_ms, extra_pct, ...).
    #[arg(long)]
    pub json: bool,
    /// Seed for stalls, key placement, arrivals and service times.
    #[arg(long, default_value_t = SimConfig::default().seed)]
    pub seed: u64,
    /// Number of requests.
    #[arg(long, default_value_t = SimConfig::default().requests)]
    pub requests: usize,
    /// Keys read by each request.
    #[arg(long, default_value_t = SimConfig::default().keys_per_request)]
    pub keys: usize,
    /// Number of replicas.
    #[arg(long, default_value_t = SimConfig::default().replicas)]
    pub replicas: usize,
    /// Extra-load budget of the adaptive mode, as a ratio (0.02 = 2%).
    #[arg(long, default_value_t = SimConfig::default().budget_ratio)]
    pub budget: f64,
    /// Percentile of recent latency the adaptive mode hedges at.
    #[arg(long, default_value_t = SimConfig::default().adaptive_percentile)]
    pub percentile: f64,
    /// Delay of the fixed mode, in milliseconds.
    #[arg(long, default_value_t = 10.0)]
    pub fixed_delay_ms: f64,
}

impl TailAtScaleArgs {
    /// The simulation these arguments ask for.
    pub fn config(&self) -> Result<SimConfig, String> {
        let fixed_delay =
            Duration::try_from_secs_f64(self.fixed_delay_ms / 1000.0).map_err(|_| {
                format!(
                    "invalid `--fixed-delay-ms`: must be a finite number ≥ 0, got {}",
                    self.fixed_delay_ms
                )
            })?;
        Ok(SimConfig {
            seed: self.seed,
            requests: self.requests,
            keys_per_request: self.keys,
            replicas: self.replicas,
            budget_ratio: self.budget,
            adaptive_percentile: self.percentile,
            fixed_delay,
            ..SimConfig::default()
        })
    }
}

/// Runs the command; returns what to print, or an error message.
pub fn run(args: &TailAtScaleArgs) -> Result<String, String> {
    if !args.sim {
        return Err(
            "only the simulation exists so far: run `tailguard-demo tail-at-scale --sim`".into(),
        );
    }
    let config = args.config()?;
    let reports = sim::run_all(&config).map_err(|e| e.to_string())?;
    Ok(if args.json {
        to_json(&reports).to_string()
    } else {
        table(&config, &reports)
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One JSON object keyed by mode.
pub fn to_json(reports: &[ModeReport]) -> serde_json::Value {
    let mut object = serde_json::Map::new();
    for r in reports {
        object.insert(
            r.mode.name().to_owned(),
            serde_json::json!({
                "p50_ms": ms(r.p50),
                "p99_ms": ms(r.p99),
                "p999_ms": ms(r.p999),
                "max_ms": ms(r.max),
                "extra_pct": r.extra_pct,
                "requests": r.requests,
                "primaries": r.stats.primaries,
                "hedges_sent": r.stats.hedges_sent,
                "hedges_won": r.stats.hedges_won,
                "budget_refusals": r.stats.budget_refusals,
                "timed_out_keys": r.timed_out_keys,
            }),
        );
    }
    serde_json::Value::Object(object)
}

/// A plain-text table of the reports.
pub fn table(config: &SimConfig, reports: &[ModeReport]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "The Tail at Scale, simulated: {} requests x {} keys over {} replicas (seed {}), \
         each replica stalled {:.3}% of the time",
        config.requests,
        config.keys_per_request,
        config.replicas,
        config.seed,
        config.stall_fraction() * 100.0
    );
    let _ = writeln!(
        out,
        "{:<10} {:>10} {:>10} {:>10} {:>10} {:>8} {:>9}",
        "mode", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "extra %", "refusals"
    );
    for r in reports {
        let _ = writeln!(
            out,
            "{:<10} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>8.2} {:>9}",
            r.mode.name(),
            ms(r.p50),
            ms(r.p99),
            ms(r.p999),
            ms(r.max),
            r.extra_pct,
            r.stats.budget_refusals
        );
    }
    if let (Some(none), Some(adaptive)) = (reports.first(), reports.last()) {
        let _ = writeln!(
            out,
            "adaptive hedging cut p99.9 by {:.0}x for {:.2}% extra reads",
            ms(none.p999) / ms(adaptive.p999),
            adaptive.extra_pct
        );
    }
    out
}
