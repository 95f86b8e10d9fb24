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

--sim: deterministic, in virtual time on a ManualTimer, with tailguard's own limiter; under \
a second in a release build. Live (the default): the backend is a real HTTP server on \
127.0.0.1 (default 4 workers at 20 ms: 200 requests/s) with the mode's limit as server-side \
admission (a shed request is answered 503 at once), and an open-loop client sends each \
request with its class and gives up at its deadline; 2 s per load, about 25 s in all. The \
live run has no recovery run, and real timing on a shared machine is noisy.";

/// Examples and exit statuses.
pub const AFTER_HELP: &str = "Examples:
  tailguard-demo overload --sim
  tailguard-demo overload --sim --json
  tailguard-demo overload                      # live over HTTP, about 25 s
  tailguard-demo overload --sim --servers 20 --service 5ms --deadline 50ms --out overload.svg

Ctrl-C (SIGINT) or SIGTERM stops a live run and prints the modes that finished, and which did \
not.

Exit status: 0 when it ran; 1 when it failed; 2 for a refused flag (every flag is checked \
before anything runs); 130 after SIGINT, 143 after SIGTERM.";

/// Command-line arguments of `overload`.
#[derive(Debug, Clone, clap::Args)]
#[command(about = ABOUT, long_about = LONG_ABOUT)]
pub struct Args {
    /// Run in virtual time instead of live over HTTP.
    #[arg(long)]
    pub sim: bool,
    /// Print one JSON object: {mode: {"0.5x": {goodput_rps, p99_ms, rejected_pct,
    /// critical_goodput_pct}, ...}}, with adaptive.recovery.
    #[arg(long)]
    pub json: bool,
    /// Seed of arrivals, classes and service times.
    #[arg(long, default_value_t = SimConfig::default().seed)]
    pub seed: u64,
    /// Requests the backend serves at once [default: 10 with --sim, 4 live].
    #[arg(long)]
    pub servers: Option<u32>,
    /// Mean service time of one request [default: 10ms with --sim, 20ms live].
    #[arg(long, value_parser = parse_duration)]
    pub service: Option<Duration>,
    /// A request's deadline; later answers are not goodput.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub deadline: Duration,
    /// How long each load is offered [default: 10s with --sim, 2s live].
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Executor threads for the live run (default: one per core).
    #[arg(long)]
    pub threads: Option<std::num::NonZeroUsize>,
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
        let (servers, service, duration) = if self.sim {
            (10, Duration::from_millis(10), Duration::from_secs(10))
        } else {
            (4, Duration::from_millis(20), Duration::from_secs(2))
        };
        let config = SimConfig {
            seed: self.seed,
            servers: self.servers.unwrap_or(servers),
            service: self.service.unwrap_or(service),
            deadline: self.deadline,
            duration: self.duration.unwrap_or(duration),
            ..SimConfig::default()
        };
        config.validate().map_err(|e| flag_error(&e, FLAGS))?;
        if !self.sim && config.capacity() * 4.0 > 5000.0 {
            return Err(format!(
                "--servers / --service: a live run offers 4x the capacity, {:.0} requests/s; keep \
                 it at most 5000 (fewer --servers or a longer --service)",
                config.capacity() * 4.0
            ));
        }
        Ok(config)
    }

    /// Where the plot goes.
    pub fn out_path(&self) -> PathBuf {
        self.out
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("tailguard-overload.svg"))
    }
}

/// The live run; on SIGINT or SIGTERM, the modes that finished are printed (and which were
/// not) and the exit status says which signal.
fn live(args: &Args, config: &SimConfig) -> Result<super::Report, ExitCode> {
    let threads = args.threads.unwrap_or_else(crate::rt::default_threads);
    let rt = crate::rt::Runtime::new(threads);
    let interrupted = match crate::signals::interruption() {
        Ok(interrupted) => interrupted,
        Err(error) => {
            eprintln!("overload: cannot listen for SIGINT/SIGTERM: {error}");
            return Err(ExitCode::FAILURE);
        }
    };
    let started = std::time::Instant::now();
    let done = std::sync::Mutex::new(Vec::new());
    let outcome = rt.block_on(futures_lite::future::or(
        async { Ok(super::live::run_recording(config, rt.executor(), &done).await) },
        async { Err(interrupted.await) },
    ));
    match outcome {
        Ok(Ok(report)) => Ok(report),
        Ok(Err(error)) => {
            eprintln!("overload: {error}");
            Err(ExitCode::FAILURE)
        }
        Err(signal) => {
            eprintln!(); // past any ^C the terminal echoed
            let rows = std::mem::take(&mut *done.lock().unwrap_or_else(|e| e.into_inner()));
            let finished = rows.len();
            let report = super::live::report(config, rows);
            if args.json {
                println!("{}", report.json());
            } else {
                print!("{}", report.text());
            }
            let missing: Vec<&str> = super::Mode::ALL[finished..]
                .iter()
                .map(|m| m.name())
                .collect();
            eprintln!(
                "overload: interrupted by {} after {:.1} s: {} not measured",
                crate::signals::signal_name(signal),
                started.elapsed().as_secs_f64(),
                missing.join(", ")
            );
            Err(crate::signals::interrupted_status(signal))
        }
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
    let report = if args.sim {
        super::simulate(&config)
    } else {
        match live(&args, &config) {
            Ok(report) => report,
            Err(status) => return status,
        }
    };
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
            servers: Some(10),
            service: Some(Duration::from_millis(10)),
            deadline: Duration::from_millis(100),
            duration: Some(Duration::from_secs(1)),
            out: None,
            threads: None,
        }
    }

    #[test]
    fn bad_flags_are_refused_naming_the_flag() {
        let refused = |a: Args| a.config().unwrap_err();
        let zero_servers = Args {
            servers: Some(0),
            ..args()
        };
        assert!(refused(zero_servers).contains("--servers"));
        let zero_deadline = Args {
            deadline: Duration::ZERO,
            ..args()
        };
        assert!(refused(zero_deadline).contains("--deadline"));
        let zero = Args {
            service: Some(Duration::ZERO),
            ..args()
        };
        assert!(refused(zero).contains("--service"));
        let long = Args {
            duration: Some(Duration::from_secs(3600)),
            ..args()
        };
        assert!(refused(long).contains("--duration"));
        let live = Args {
            sim: false,
            servers: Some(1000),
            ..args()
        };
        assert!(refused(live).contains("--servers"));
        assert!(args().config().is_ok());
        assert!(Args {
            sim: false,
            servers: None,
            service: None,
            ..args()
        }
        .config()
        .is_ok());
    }
}
