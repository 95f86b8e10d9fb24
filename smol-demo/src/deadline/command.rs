//! `tailguard-demo deadline`: its arguments and help, and [`run`], which checks every flag before
//! any work.

use std::num::NonZeroUsize;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use futures_lite::future;

use super::live::{self, LiveConfig};
use super::sim::{self, SimConfig};
use super::{table, to_json, Mode, ModeReport, Scenario, TimeoutChoice};
use crate::args::{flag_error, parse_duration, USAGE};
use crate::load::tidy;
use crate::rt::{self, Runtime};
use crate::signals::{interrupted_status, interruption, signal_name};

/// One line of help for `deadline`.
pub const ABOUT: &str = "Callers with a deadline against a backend with a heavy latency tail, \
through a retry + hedge pipeline blind to the deadline vs aware of it (live, or simulated with \
--sim)";

/// The full `deadline --help`: the model, stated.
pub const LONG_ABOUT: &str = "Callers with a deadline against a backend with a heavy latency \
tail, through one retry + hedge pipeline (tailguard::pipeline) configured for the backend, not \
for any one caller: each attempt limited to 100 ms, 3 tries with exponential backoff from 5 ms \
(full jitter), a backup attempt after 40 ms. Callers wait --deadline on average (100 ms), each \
its own deadline drawn uniformly from 20% to 180% of it; the backend serves in a log-normal time, \
median 12 ms, sigma 1.2 (p90 about 56 ms, p99 about 195 ms).

Two modes, the same pipeline: blind, the pipeline never hears of the caller's deadline, so it \
retries and hedges on its own schedule after the caller has given up, and the backend is told \
nothing; aware, the call is made with the deadline (Pipeline::call_until): no retry or hedge is \
started when less time is left than the pipeline's own latency window predicts an attempt takes \
(its p50; 12 ms until it has 20 samples), everything is cut at the deadline, and each attempt \
sends its remaining time in the tailguard-timeout header.

Prints, per mode: late % (attempts that delivered a response after their caller's deadline, of \
all attempts), wasted % (backend work whose result nobody could use: lost hedges, cut \
attempts, late ones; of all backend work), success % (calls answered successfully by their \
deadline), the p99 of how long a call kept the pipeline busy (until it returned, whether or not \
its caller still waited), and the attempts made. An attempt cut by the client stops the \
backend's work (its connection closes).

Live (the default, about 7 s): a demo backend replica on 127.0.0.1 and callers arriving at \
--rate per second (100) for --duration (3 s) in each mode. The replica honours the header as \
every demo replica does: it refuses at once work it knows (its drawn service time) would pass \
the deadline, which frees the aware caller's time for another try, so live the aware mode also \
succeeds more often. Real timing on a shared machine is noisy: expect the shape, not the exact \
numbers.

--sim: the same in virtual time (tailguard's ManualTimer), deterministic for a --seed: --calls \
callers (20,000) arriving as a Poisson process at --rate per second (200), 0.5 ms of network \
each way, a backend with no queue that cannot foresee its service time (it stops at the \
deadline it is told, and refuses only a request whose deadline has passed); attempt n of call \
c is served in the same drawn time in both modes. Takes half a second in a release build \
(about 2 s in a debug build).

--sim also reports cut % (attempts cut by their own attempt timeout, of all attempts) and false % \
(of those, the ones whose answer would have reached the caller by its deadline: false \
timeouts), and the attempt timeout the run ended with. --attempt-timeout adaptive (or both, \
side by side with the fixed one) gives the pipeline an adaptive attempt timeout instead \
(tailguard::adaptive_timeout): the p95 of its own recent attempt latencies × 2, within 20 ms to \
1 s, 20 ms until it has 100 of them; its rows are blind_adaptive and aware_adaptive.";

/// Examples and exit statuses, after `deadline --help`.
pub const AFTER_HELP: &str = "Examples:
  tailguard-demo deadline                  # about 7 s, live
  tailguard-demo deadline --sim            # deterministic, half a second (release)
  tailguard-demo deadline --sim --seed 7 --calls 50000 --json
  tailguard-demo deadline --sim --attempt-timeout both
  tailguard-demo deadline --deadline 150ms --rate 200

Ctrl-C (SIGINT) or SIGTERM stops a live run and prints the modes that finished.

Exit status: 0 when every mode ran; 1 when the run failed; 2 for a refused flag (every flag is \
checked before anything runs); 130 after SIGINT, 143 after SIGTERM.";

/// Command-line arguments of `deadline`.
#[derive(Debug, Clone, clap::Args)]
#[command(about = ABOUT, long_about = LONG_ABOUT)]
pub struct Args {
    /// Run the virtual-time simulation instead of the live experiment.
    #[arg(long)]
    pub sim: bool,
    /// Print one JSON object keyed by mode (blind, aware): late_pct, wasted_pct, success_pct,
    /// p99_ms, attempts, ...
    #[arg(long)]
    pub json: bool,
    /// Seed for service times, arrivals and backoff jitter.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// How long callers wait for their answer, on average (each draws its own from 20% to
    /// 180% of it).
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub deadline: Duration,
    /// Calls per second [default: 100 live, 200 with --sim].
    #[arg(long, allow_negative_numbers = true)]
    pub rate: Option<f64>,
    /// --sim: calls per mode.
    #[arg(long, default_value_t = SimConfig::default().calls)]
    pub calls: usize,
    /// Live: how long callers arrive, in each mode.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Live: executor threads (default: one per core).
    #[arg(long)]
    pub threads: Option<NonZeroUsize>,
    /// --sim: the pipeline's attempt timeout: fixed (100 ms), adaptive (learnt from its own
    /// attempts), or both side by side.
    #[arg(long, value_enum, default_value_t = TimeoutChoice::Fixed)]
    pub attempt_timeout: TimeoutChoice,
}

impl Args {
    fn scenario(&self) -> Scenario {
        Scenario {
            deadline: self.deadline,
            ..Scenario::default()
        }
    }

    /// The simulation these arguments describe.
    pub fn sim_config(&self) -> SimConfig {
        let default = SimConfig::default();
        SimConfig {
            scenario: self.scenario(),
            calls: self.calls,
            rate: self.rate.unwrap_or(default.rate),
            seed: self.seed,
            timeouts: self.attempt_timeout,
            ..default
        }
    }

    /// The live run these arguments describe.
    pub fn live_config(&self) -> LiveConfig {
        let default = LiveConfig::default();
        let mut scenario = self.scenario();
        if self.attempt_timeout != TimeoutChoice::Fixed {
            // Refused by `LiveConfig::validate`, naming the flag.
            scenario.timeout_kind = super::TimeoutKind::Adaptive;
        }
        LiveConfig {
            scenario,
            rate: self.rate.unwrap_or(default.rate),
            duration: self.duration,
            seed: self.seed,
        }
    }
}

/// The flags of `deadline`, by the field their errors name.
const FLAGS: &[(&str, &str)] = &[
    ("deadline", "--deadline"),
    ("rate", "--rate"),
    ("calls", "--calls"),
    ("duration", "--duration"),
    ("attempt_timeout", "--attempt-timeout"),
];

/// Runs `tailguard-demo deadline`: both modes, live or with `--sim`, printed as a table or JSON.
pub fn run(args: Args) -> ExitCode {
    if args.sim {
        let config = args.sim_config();
        let reports = match config.validate().and_then(|()| sim::run(&config)) {
            Ok(reports) => reports,
            Err(error) => {
                eprintln!("deadline: {}", flag_error(&error, FLAGS));
                return ExitCode::from(USAGE);
            }
        };
        print_reports(
            &args,
            &format!(
                "deadline --sim: {}{}",
                describe(&config.scenario),
                match config.timeouts {
                    TimeoutChoice::Fixed => "",
                    TimeoutChoice::Adaptive => " (adaptive instead: p95 × 2, within 20 ms..1 s)",
                    TimeoutChoice::Both => "; adaptive rows: p95 × 2, within 20 ms..1 s",
                }
            ),
            &reports,
            None,
        );
        return ExitCode::SUCCESS;
    }
    let config = args.live_config();
    if let Err(error) = config.validate() {
        eprintln!("deadline: {}", flag_error(&error, FLAGS));
        return ExitCode::from(USAGE);
    }
    let interrupted = match interruption() {
        Ok(interrupted) => interrupted,
        Err(error) => {
            eprintln!("deadline: cannot listen for SIGINT/SIGTERM: {error}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = Runtime::new(args.threads.unwrap_or_else(rt::default_threads));
    let started = Instant::now();
    let outcome = runtime.block_on(async {
        let mut interrupted = std::pin::pin!(interrupted);
        let mut reports = Vec::with_capacity(Mode::ALL.len());
        for mode in Mode::ALL {
            eprintln!(
                "deadline: {} ({} calls/s for {:?})...",
                mode.name(),
                config.rate,
                config.duration
            );
            let measured = async { Ok(live::run_mode(runtime.executor(), &config, mode).await) };
            let stopped = async { Err(interrupted.as_mut().await) };
            match future::or(measured, stopped).await {
                Ok(Ok(report)) => reports.push(report),
                Ok(Err(error)) => return Err(error.to_string()),
                Err(signal) => return Ok((reports, Some((signal, mode)))),
            }
        }
        Ok((reports, None))
    });
    drop(runtime);
    let (reports, signal) = match outcome {
        Ok(outcome) => outcome,
        Err(message) => {
            eprintln!("deadline: {message}");
            return ExitCode::FAILURE;
        }
    };
    let note = signal.map(|(signal, during)| {
        let finished: Vec<&str> = reports.iter().map(|r| r.mode).collect();
        // Every mode that did not finish: the one running, and the ones after it.
        let unfinished: Vec<&str> = Mode::ALL
            .iter()
            .map(|mode| mode.name())
            .filter(|name| !finished.contains(name))
            .collect();
        format!(
            "interrupted by {} after {:.1} s during {}: {} not measured{}",
            signal_name(signal),
            started.elapsed().as_secs_f64(),
            during.name(),
            unfinished.join(", "),
            if finished.is_empty() {
                String::new()
            } else {
                format!(" (finished: {})", finished.join(", "))
            }
        )
    });
    print_reports(
        &args,
        &format!("deadline (live): {}", describe(&config.scenario)),
        &reports,
        note.as_deref(),
    );
    match signal {
        Some((signal, _)) => {
            if let (true, Some(note)) = (args.json, &note) {
                eprintln!("deadline: {note}");
            }
            interrupted_status(signal)
        }
        None => ExitCode::SUCCESS,
    }
}

/// The scenario in one line.
fn describe(scenario: &Scenario) -> String {
    format!(
        "callers wait {} to {}; service time {}; attempts of {}, {} tries, a hedge after {}",
        crate::ms::text(scenario.caller_deadline(0.0)),
        crate::ms::text(scenario.caller_deadline(1.0)),
        scenario.latency,
        crate::ms::text(scenario.attempt_timeout),
        scenario.max_attempts,
        crate::ms::text(scenario.hedge_delay),
    )
}

fn print_reports(args: &Args, title: &str, reports: &[ModeReport], note: Option<&str>) {
    if args.json {
        let mut json = to_json(reports);
        if let Some(note) = note {
            json["interrupted"] = serde_json::Value::String(note.to_string());
        }
        println!("{}", tidy(json));
    } else {
        if !reports.is_empty() {
            print!("{}", table(title, reports));
        }
        if let Some(note) = note {
            println!("{note}");
        }
    }
}
