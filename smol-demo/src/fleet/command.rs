//! `tailguard-demo fleet`: its arguments and help, and [`run`].

use std::num::NonZeroUsize;
use std::process::ExitCode;
use std::time::Duration;

use super::FleetConfig;
use crate::args::{flag_error, parse_duration, USAGE};
use crate::load::tidy;
use crate::rt;

/// One line of help for `fleet`.
pub const ABOUT: &str = "Breakers shared across a fleet through Redis: calls to a dead replica \
with breakers local vs shared, and what killing Redis costs (starts its own redis-server)";

/// The full `fleet --help`.
pub const LONG_ABOUT: &str = "Breakers shared across a fleet through Redis (tailguard-fleet).

--instances client instances (3) run in this process, each with its own circuit breaker per \
backend replica (window 100 calls, opening at 50% failures over at least --minimum-calls), \
calling --replicas replicas (3) round robin at --rate requests per second each, failing over \
to the next replica on an error or an open breaker. A third of the way in, replica 0 goes down \
(refusing connections). Mode local: each instance learns alone. Mode shared: each instance \
also has a Fleet that publishes its breakers' counts to a redis-server every --interval and \
opens its breaker when the fleet's failure rate crosses the threshold or another instance \
opened. Reported per mode: dead_replica_calls (calls the fleet sent to the dead replica), \
open_all_ms (until every instance's breaker for it rejects), p99_ms. Then a shared run with no \
replica down in which Redis is killed for the middle third and restarted: errors and p99 \
before, during and after, and the p99 spike (during over before; goal <= 10%); and the same \
run with Redis up throughout, the control, whose p99 moves between thirds only by the \
machine's noise. The JSON keys are described in the crate docs of smol-demo's fleet module.

Needs redis-server (Debian/Ubuntu: apt-get install redis-server); the run starts its own on a \
free port of 127.0.0.1 and stops it. Real timing on a shared machine: expect the shape.";

/// Examples, after `fleet --help`.
pub const AFTER_HELP: &str = "Examples:
  tailguard-demo fleet                    # about 20 s
  tailguard-demo fleet --instances 5 --interval 100ms --json

Exit status: 0 when the runs completed; 1 when they failed (no redis-server, say); 2 for a \
refused flag.";

/// Command-line arguments of `fleet`.
#[derive(Debug, Clone, clap::Args)]
#[command(about = ABOUT, long_about = LONG_ABOUT)]
pub struct Args {
    /// Client instances.
    #[arg(long, default_value_t = FleetConfig::default().instances)]
    pub instances: usize,
    /// Backend replicas.
    #[arg(long, default_value_t = FleetConfig::default().replicas)]
    pub replicas: usize,
    /// Requests per second per instance.
    #[arg(long, default_value_t = FleetConfig::default().rate, allow_negative_numbers = true)]
    pub rate: f64,
    /// Each run's length.
    #[arg(long, default_value = "4.5s", value_parser = parse_duration)]
    pub duration: Duration,
    /// The fleet's merge interval.
    #[arg(long, default_value = "50ms", value_parser = parse_duration)]
    pub interval: Duration,
    /// The breakers' minimum calls before they may open.
    #[arg(long, default_value_t = FleetConfig::default().minimum_calls)]
    pub minimum_calls: u32,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Executor threads (default: one per core).
    #[arg(long)]
    pub threads: Option<NonZeroUsize>,
}

impl Args {
    /// The configuration these arguments describe.
    pub fn config(&self) -> FleetConfig {
        FleetConfig {
            instances: self.instances,
            replicas: self.replicas,
            rate: self.rate,
            duration: self.duration,
            interval: self.interval,
            minimum_calls: self.minimum_calls,
            ..FleetConfig::default()
        }
    }
}

/// The flags of `fleet`, by the field their errors name.
const FLAGS: &[(&str, &str)] = &[
    ("instances", "--instances"),
    ("replicas", "--replicas"),
    ("rate", "--rate"),
    ("duration", "--duration"),
    ("interval", "--interval"),
    ("minimum_calls", "--minimum-calls"),
];

/// Runs `tailguard-demo fleet`.
pub fn run(args: Args) -> ExitCode {
    let config = args.config();
    if let Err(error) = config.validate() {
        eprintln!("fleet: {}", flag_error(&error, FLAGS));
        return ExitCode::from(USAGE);
    }
    let runtime = rt::Runtime::new(args.threads.unwrap_or_else(rt::default_threads));
    let report = runtime.block_on(super::run(runtime.executor(), &config, |name| {
        eprintln!("fleet: {name} ...");
    }));
    match report {
        Ok(report) if args.json => {
            println!("{}", tidy(report.to_json(&config)));
            ExitCode::SUCCESS
        }
        Ok(report) => {
            print!("{}", report.to_table(&config));
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("fleet: {error}");
            ExitCode::FAILURE
        }
    }
}
