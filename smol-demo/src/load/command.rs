//! `tailguard-demo load`: its arguments and help, and [`run`].

use std::process::ExitCode;
use std::time::Duration;

use super::LoadConfig;
use crate::args::{flag_error, parse_duration, USAGE};
use crate::rt;
use crate::signals::{interrupted_status, interruption, signal_name};

/// One line of help for `load`.
pub const ABOUT: &str =
    "Open-loop HTTP load at a fixed rate, latency measured from the scheduled send time";

/// The full `load --help`.
pub const LONG_ABOUT: &str = "Open-loop HTTP load: GET URL at a fixed RATE for DURATION, and a \
summary of what came back.

Request i is due at start + i / RATE whatever the server does, and its latency is measured from \
that due time, not from when it was sent: a server that stalls cannot hide its tail by slowing \
the generator down (coordinated omission). At most CONCURRENCY requests are in flight; a request \
that falls due while that many are in flight is not sent and is counted as dropped (reported \
apart from errors). Each request waits at most TIMEOUT.

The summary: requests due, sent, ok (2xx), errors (other statuses, timeouts, connection \
failures, by kind), dropped; throughput; latency p50 / p90 / p99 / p99.9 / max over responses \
of any status and timeouts (at their timeout). --json prints it as one JSON object. A progress \
bar is drawn on stderr when it is a terminal.";

/// Examples and exit statuses, after `load --help`.
pub const AFTER_HELP: &str = "Examples (start `tailguard-demo serve` in another terminal first):
  tailguard-demo load --url http://127.0.0.1:8080/gophers --rate 1000 --duration 20s
  tailguard-demo load --url 'http://127.0.0.1:8080/fanout?keys=16' --rate 200 --duration 10s
  tailguard-demo load --rate 500 --duration 5s --json | jq .latency

Ctrl-C (SIGINT) or SIGTERM stops sending, waits at most 1 s for the answers in flight, and prints \
the summary of what was measured so far, marked as interrupted (\"interrupted\": true in JSON).

Exit status: 0 when at least one request succeeded; 1 when none did (nothing was measured); 2 \
for a refused flag; 130 after SIGINT, 143 after SIGTERM (the partial summary is printed).";

/// Command-line arguments of `load`.
#[derive(Debug, Clone, clap::Args)]
#[command(about = ABOUT, long_about = LONG_ABOUT)]
pub struct Args {
    /// The URL to GET, e.g. http://127.0.0.1:8080/fanout?keys=16.
    #[arg(long, default_value = "http://127.0.0.1:8080/gophers")]
    pub url: String,
    /// Requests per second.
    #[arg(long, default_value_t = 100.0, allow_negative_numbers = true)]
    pub rate: f64,
    /// How long to send for.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Most requests in flight; more are dropped (not sent) and counted.
    #[arg(long, default_value_t = 256, allow_negative_numbers = true)]
    pub concurrency: usize,
    /// Longest wait for one response.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Executor threads [default: 1]. One thread sends thousands of requests per second with
    /// CPU to spare, and costs about 40% less CPU per request than two, which wake each other
    /// (see BENCHMARKS.md); more help only far above that.
    #[arg(long)]
    pub threads: Option<std::num::NonZeroUsize>,
}

impl Args {
    /// The run these arguments describe (with a progress bar, drawn only on a terminal).
    pub fn config(&self) -> LoadConfig {
        LoadConfig {
            url: self.url.clone(),
            rate: self.rate,
            duration: self.duration,
            concurrency: self.concurrency,
            timeout: self.timeout,
            progress: !self.json,
        }
    }
}

/// Runs `tailguard-demo load`: the load, then the summary (or JSON).
///
/// Exit status: 0 when some request succeeded; 1 when none did (the summary says so); 2 for a
/// usage error; after SIGINT (Ctrl-C) or SIGTERM, the partial summary is printed and the
/// status is 130 or 143 (128 + the signal's number).
pub fn run(args: Args) -> ExitCode {
    let config = args.config();
    if let Err(error) = config.validate() {
        eprintln!("load: {}", flag_error(&error, FLAGS));
        return ExitCode::from(USAGE);
    }
    // One thread by default: an open loop wakes for every request, and a second thread only
    // adds cross-thread wake-ups (BENCHMARKS.md, "The load generator's own cost").
    let threads = args.threads.unwrap_or(std::num::NonZeroUsize::MIN);
    let json = args.json;
    rt::run(threads, |ex| async move {
        let interrupted = match interruption() {
            Ok(interrupted) => interrupted,
            Err(error) => {
                eprintln!("load: cannot listen for SIGINT/SIGTERM: {error}");
                return ExitCode::FAILURE;
            }
        };
        let signal = std::sync::Mutex::new(None);
        let stop = async {
            let received = interrupted.await;
            *signal.lock().unwrap_or_else(|e| e.into_inner()) = Some(received);
        };
        let report = match crate::load::run_until(&ex, &config, stop).await {
            Ok(report) => report,
            Err(error) => {
                eprintln!("load: {}", flag_error(&error, FLAGS));
                return ExitCode::from(USAGE);
            }
        };
        if json {
            println!("{}", report.to_json());
        } else {
            println!("{report}");
        }
        let signal = *signal.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(signal) = signal {
            eprintln!(
                "load: interrupted by {}: the summary covers the {:.2} s that ran",
                signal_name(signal),
                report.elapsed_s
            );
            return interrupted_status(signal);
        }
        if report.total_failure() {
            eprintln!(
                "load: no request succeeded ({} sent, {} errors): nothing was measured",
                report.sent, report.errors
            );
            return ExitCode::FAILURE;
        }
        ExitCode::SUCCESS
    })
}

/// The flags of `load`, by the field their errors name.
const FLAGS: &[(&str, &str)] = &[
    ("url", "--url"),
    ("rate", "--rate"),
    ("duration", "--duration"),
    ("concurrency", "--concurrency"),
    ("timeout", "--timeout"),
];
