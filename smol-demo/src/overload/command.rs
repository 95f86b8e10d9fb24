//! `tailguard-demo overload`: its arguments and help, and [`run`], which checks every flag
//! before any work.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::sim::SimConfig;
use crate::args::{flag_error, parse_duration, USAGE};

/// One line of help for `overload`.
pub const ABOUT: &str = "The overload experiment: a backend of fixed capacity offered 0.5x to 4x \
of it, behind no limit, a fixed limit or the adaptive limit with priority shedding (--sim)";

/// The full `overload --help`.
pub const LONG_ABOUT: &str = "The overload experiment. A backend with a fixed capacity (--servers \
requests at once, each taking --service on average: half of it fixed, half exponential) is \
offered 0.5x, 1x, 2x and 4x of its capacity as Poisson arrivals, each load for --duration, in \
three modes: none (every request queues at the backend), static (a fixed limit of --servers \
in flight, every class alike: a bulkhead) and adaptive (tailguard's AdaptiveLimiter, \
Gradient2, with priority shares: sheddable requests may fill half the limit, default ones \
90%, critical ones all of it). The load mixes 10% critical, 60% default and 30% sheddable \
requests. A request's answer is goodput when it arrives within --deadline of its arrival. \
Prints, per mode and load, goodput per second, the p99 latency of admitted requests, the \
refused share and the share of critical requests answered in time, then the goals: at 2x the \
adaptive p99 within 1.5x of its 0.5x p99 and goodput at least 90% of capacity, at 4x at least \
99% of critical requests in time, and, after 10 s at 1x, 10 s at 4x and 20 s at 1x, the \
limit back to 90% of its value before the overload within 10 s. Writes goodput and p99 \
against offered load to an SVG file (--out, default tailguard-overload.svg in the temporary \
directory).

--sim (required for now): deterministic, in virtual time on a ManualTimer, with tailguard's \
own limiter; a few seconds of CPU in a release build.";

/// Examples and exit statuses.
pub const AFTER_HELP: &str = "Examples:
  tailguard-demo overload --sim
  tailguard-demo overload --sim --json
  tailguard-demo overload --sim --servers 20 --service 5ms --deadline 50ms --out overload.svg

Exit status: 0 when it ran; 1 when it failed; 2 for a refused flag (every flag is checked \
before anything runs).";

/// Command-line arguments of `overload`.
#[derive(Debug, Clone, clap::Args)]
#[command(about = ABOUT, long_about = LONG_ABOUT)]
pub struct Args {
    /// Run in virtual time (the live run over HTTP is not built yet).
    #[arg(long)]
    pub sim: bool,
    /// Print one JSON object: {mode: {"0.5x": {goodput_rps, p99_ms, rejected_pct,
    /// critical_goodput_pct}, ...}}, with adaptive.recovery.
    #[arg(long)]
    pub json: bool,
    /// Seed of arrivals, classes and service times.
    #[arg(long, default_value_t = SimConfig::default().seed)]
    pub seed: u64,
    /// Requests the backend serves at once.
    #[arg(long, default_value_t = SimConfig::default().servers)]
    pub servers: u32,
    /// Mean service time of one request.
    #[arg(long, default_value = "10ms", value_parser = parse_duration)]
    pub service: Duration,
    /// A request's deadline; later answers are not goodput.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub deadline: Duration,
    /// How long each load is offered.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Where to write the plot [default: tailguard-overload.svg in the temporary directory].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

const FLAGS: &[(&str, &str)] = &[
    ("servers", "--servers"),
    ("service", "--service"),
    ("deadline", "--deadline"),
    ("duration", "--duration"),
];

impl Args {
    /// The simulation these arguments ask for, every value checked (an error names the flag).
    pub fn config(&self) -> Result<SimConfig, String> {
        if !self.sim {
            return Err("only --sim is built so far: run `tailguard-demo overload --sim`".into());
        }
        let config = SimConfig {
            seed: self.seed,
            servers: self.servers,
            service: self.service,
            deadline: self.deadline,
            duration: self.duration,
            ..SimConfig::default()
        };
        config.validate().map_err(|e| flag_error(&e, FLAGS))?;
        Ok(config)
    }

    /// Where the plot goes.
    pub fn out_path(&self) -> PathBuf {
        self.out
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("tailguard-overload.svg"))
    }
}

/// Runs `tailguard-demo overload`: the table (or JSON) on stdout, the plot's path on stderr.
pub fn run(args: Args) -> ExitCode {
    let config = match args.config() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("overload: {message}");
            return ExitCode::from(USAGE);
        }
    };
    let report = super::simulate(&config);
    let svg = match super::plot::svg(&report, (900, 420)) {
        Ok(svg) => svg,
        Err(e) => {
            eprintln!("overload: {e}");
            return ExitCode::FAILURE;
        }
    };
    let path = args.out_path();
    if let Err(e) = std::fs::write(&path, svg) {
        eprintln!("overload: cannot write {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.text());
        println!("plot: {}", path.display());
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> Args {
        Args {
            sim: true,
            json: false,
            seed: 1,
            servers: 10,
            service: Duration::from_millis(10),
            deadline: Duration::from_millis(100),
            duration: Duration::from_secs(1),
            out: None,
        }
    }

    #[test]
    fn bad_flags_are_refused_naming_the_flag() {
        let refused = |a: Args| a.config().unwrap_err();
        assert!(refused(Args {
            servers: 0,
            ..args()
        })
        .contains("--servers"));
        assert!(refused(Args {
            deadline: Duration::ZERO,
            ..args()
        })
        .contains("--deadline"));
        assert!(refused(Args {
            service: Duration::ZERO,
            ..args()
        })
        .contains("--service"));
        let long = Args {
            duration: Duration::from_secs(3600),
            ..args()
        };
        assert!(refused(long).contains("--duration"));
        assert!(refused(Args {
            sim: false,
            ..args()
        })
        .contains("--sim"));
        assert!(args().config().is_ok());
    }
}
