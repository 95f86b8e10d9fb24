//! `tailguard-demo herd`: its arguments and help, and [`run`].

use std::num::NonZeroUsize;
use std::process::ExitCode;
use std::time::Duration;

use super::live::LiveHerdConfig;
use crate::args::{flag_error, parse_duration, USAGE};
use crate::load::tidy;
use crate::rt;

/// One line of help for `herd`.
pub const ABOUT: &str = "The thundering herd: clients retrying against a backend that comes \
back from an outage, without jitter vs with full jitter and a retry budget (live; --sim for \
the virtual-time studies)";

/// The full `herd --help`: both experiments, stated.
pub const LONG_ABOUT: &str = "The thundering herd: what retries do to a backend that is \
coming back, and what jitter and budgets do about it.

Live (the default, about 10 s): in this process, one backend replica serving each call in \
20 ms with at most --capacity calls at once (10: 500 calls/s; more are answered 503 at once), \
and user requests arriving at --rate per second (250) whatever happens (open loop). After \
0.5 s the backend goes down for --outage (1 s), refusing connections like a crashed process, \
then comes back. Each request retries failed calls: up to 8 attempts within 3 s, exponential \
backoff from 50 ms doubling to 800 ms. Two kinds of clients are compared, each against a fresh \
backend: no jitter and no budget (every request that arrived during the outage is still \
retrying when the backend returns, so it meets several times its capacity; the calls turned \
away come back on the same schedule), versus full jitter plus a shared retry budget of 20% of \
first tries, +10/s (during the outage most requests fail fast instead of piling up, and the \
few retries are spread out). Prints the recovery time (from the backend coming back until \
every 100 ms window has at least 90% of its calls succeeding, to the end of the run) and the \
wasted calls (calls that got 503, were refused or failed otherwise). Real timing on a shared \
machine is noisy: expect the shape, not the exact numbers.

--sim: two deterministic virtual-time studies. Contention (after the AWS Architecture Blog's \
\"Exponential Backoff and Jitter\"): --clients clients each write once to a resource under \
optimistic concurrency, with no backoff, exponential backoff, and full, equal and decorrelated \
jitter; prints the calls made and the time until the last client is done. Retry storm: five \
layers of services, three attempts each, in front of a dead backend, with and without a 10% \
retry budget per layer; prints the calls that reach the backend.";

/// Examples, after `herd --help`.
pub const AFTER_HELP: &str = "Examples:
  tailguard-demo herd                     # about 10 s: recovery time and wasted calls
  tailguard-demo herd --outage 2s --rate 400
  tailguard-demo herd --sim               # backoff strategies under contention, the retry storm
  tailguard-demo herd --sim --clients 500 --json

Exit status: 0 when the run completed; 1 when it failed; 2 for a refused flag.";

/// Command-line arguments of `herd`.
#[derive(Debug, Clone, clap::Args)]
#[command(about = ABOUT, long_about = LONG_ABOUT)]
pub struct Args {
    /// Run the virtual-time studies (contention and the retry storm) instead of the live run.
    #[arg(long)]
    pub sim: bool,
    /// --sim: clients contending for the resource.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub clients: u32,
    /// Seed for every random choice (with --sim, the same seed prints the same numbers).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print one JSON object: keyed by client kind (live: recovery_ms, wasted_calls, ...), or
    /// with --sim by strategy (calls, completion_ms) plus storm.
    #[arg(long)]
    pub json: bool,
    /// Live: user requests per second.
    #[arg(long, default_value_t = LiveHerdConfig::default().rate, allow_negative_numbers = true)]
    pub rate: f64,
    /// Live: the most calls the backend serves at once.
    #[arg(long, default_value_t = LiveHerdConfig::default().capacity)]
    pub capacity: usize,
    /// Live: how long the backend is down.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub outage: Duration,
    /// Live: how long to watch after the backend is back.
    #[arg(long, default_value = "2.5s", value_parser = parse_duration)]
    pub after: Duration,
    /// Live: executor threads (default: one per core).
    #[arg(long)]
    pub threads: Option<NonZeroUsize>,
}

impl Args {
    /// The live run these arguments describe.
    pub fn live_config(&self) -> LiveHerdConfig {
        LiveHerdConfig {
            rate: self.rate,
            capacity: self.capacity,
            outage: self.outage,
            after: self.after,
            seed: self.seed,
            ..LiveHerdConfig::default()
        }
    }
}

/// The flags of `herd`, by the field their errors name.
const FLAGS: &[(&str, &str)] = &[
    ("rate", "--rate"),
    ("capacity", "--capacity"),
    ("outage", "--outage"),
    ("after", "--after"),
];

/// Runs `tailguard-demo herd`: the live run (or with `--sim` the virtual-time studies), printed as
/// tables or JSON.
pub fn run(args: Args) -> ExitCode {
    if args.sim {
        let config = super::HerdConfig::new(args.clients, args.seed);
        let report = super::run(&config);
        if args.json {
            println!("{}", tidy(report.to_json()));
        } else {
            print!("{}", report.to_table(&config));
        }
        return ExitCode::SUCCESS;
    }
    let config = args.live_config();
    if let Err(error) = config.validate() {
        eprintln!("herd: {}", flag_error(&error, FLAGS));
        return ExitCode::from(USAGE);
    }
    let runtime = rt::Runtime::new(args.threads.unwrap_or_else(rt::default_threads));
    let report = runtime.block_on(super::live::run(runtime.executor(), &config, |mode| {
        eprintln!("herd: {} ...", mode.describe(&config));
    }));
    match report {
        Ok(report) if args.json => {
            println!("{}", tidy(report.to_json()));
            ExitCode::SUCCESS
        }
        Ok(report) => {
            print!("{}", report.to_table(&config));
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("herd: {error}");
            ExitCode::FAILURE
        }
    }
}
