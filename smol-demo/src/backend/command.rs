//! `tailguard-demo backend`: its arguments and help, and [`run`].

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::process::ExitCode;
use std::time::Duration;

use super::{
    BackendConfig, Backends, LatencyDist, Outage, OutageMode, Profile, Stalls, MAX_REPLICAS,
};
use crate::args::{flag_error, parse_duration, USAGE};
use crate::rt;
use crate::server::log;
use crate::signals::termination;

/// One line of help for `backend`.
pub const ABOUT: &str =
    "Simulated backend replicas: seeded latency, stalls, errors and outages over real HTTP";

/// The full `backend --help`: the model, stated.
pub const LONG_ABOUT: &str = "Simulated backend replicas for the gateway, over real HTTP/1 on \
one process.

Replica i listens on PORT + i (with --port 0, on any free port; the addresses are printed). \
Every GET (any path but /healthz) is answered after a service time:

  1. a base latency drawn from --latency: fixed:20ms, exp:5ms (exponential, that mean) or \
lognormal:5ms,0.5 (log-normal, that median and sigma; p99 is about 3.2x the median at sigma 0.5);
  2. stretched by stalls, if --stall-every and --stall-for are set: about every STALL_EVERY a \
replica pauses for about STALL_FOR like a garbage collector (stall k starts at a random point \
of its period's first half and lasts 0.5x to 1.5x STALL_FOR); during a pause it does no work, \
so requests arriving in it wait for its end and requests in service are held until it ends. \
Replicas stall at different times;
  3. then answered 200 with the body \"{path} from replica {i}\" and an x-replica header, or, \
with probability --error-rate, 500.

With --capacity, a replica already serving that many requests answers 503 at once.

Everything random is seeded (--seed): each replica draws its latencies and errors from its own \
seeded generator, and its stall schedule is a function of the seed, its index and the time \
since start.

Outages: --outage 1@5s..10s takes replica 1 down from 5 s to 10 s after start (repeatable). \
With --outage-mode refuse (the default) a down replica behaves like a crashed process: its \
listener is closed, so connections are refused, its open connections are dropped (calls in \
flight on them fail), and it listens on the same port again when it comes back. With \
--outage-mode 503 it keeps its connections and answers every request 503 at once.

Control endpoint (on PORT + N, or any free port with --port 0): GET /replicas (state and \
counters as JSON), POST /replicas/{i}/down, POST /replicas/{i}/up.

Runs until SIGINT or SIGTERM.";

/// Examples, after `backend --help`.
pub const AFTER_HELP: &str = "Examples (each runs until Ctrl-C: start the gateway and load in \
other terminals):
  tailguard-demo backend --replicas 3 --stall-every 2s --stall-for 100ms   # replicas on 9001-9003
  tailguard-demo backend --latency exp:5ms --error-rate 0.01 --capacity 50
  tailguard-demo backend --outage 1@5s..10s --outage-mode 503
  curl -X POST 127.0.0.1:9004/replicas/1/down                # then: .../replicas/1/up

Exit status: 0 after SIGINT or SIGTERM; 1 when a listener cannot be bound (the message names \
the replica and port); 2 for a refused flag.";

/// Command-line arguments of `backend`.
#[derive(Debug, Clone, clap::Args)]
#[command(about = ABOUT, long_about = LONG_ABOUT)]
pub struct Args {
    /// Number of replicas.
    #[arg(long, default_value_t = 3,
          value_parser = clap::value_parser!(u16).range(1..=MAX_REPLICAS as i64))]
    pub replicas: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port of replica 0; replica i gets PORT + i, the control endpoint PORT + N. 0: any free.
    #[arg(long, default_value_t = 9001)]
    pub port: u16,
    /// Base latency: fixed:20ms, exp:5ms or lognormal:5ms,0.5.
    #[arg(long, default_value = "lognormal:5ms,0.5")]
    pub latency: LatencyDist,
    /// Average time between two stalls of a replica (needs --stall-for).
    #[arg(long, value_parser = parse_duration, requires = "stall_for")]
    pub stall_every: Option<Duration>,
    /// Average length of a stall, at most a third of --stall-every (needs --stall-every).
    #[arg(long, value_parser = parse_duration, requires = "stall_every")]
    pub stall_for: Option<Duration>,
    /// Fraction of requests answered 500, in [0, 1].
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub error_rate: f64,
    /// Most requests a replica serves at once; more get 503.
    #[arg(long)]
    pub capacity: Option<NonZeroUsize>,
    /// Workers per replica: the most requests in service at once; more wait in its queue,
    /// where a tied request's twin can cancel them (default: a worker per request).
    #[arg(long)]
    pub workers: Option<NonZeroUsize>,
    /// A scheduled outage, REPLICA@FROM..TO after start (repeatable), e.g. 1@5s..10s.
    #[arg(long = "outage")]
    pub outages: Vec<Outage>,
    /// What a down replica does: refuse (close the listener) or 503.
    #[arg(long, default_value = "refuse")]
    pub outage_mode: OutageMode,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Executor threads (default: one per core).
    #[arg(long)]
    pub threads: Option<NonZeroUsize>,
}

impl Args {
    /// The configuration these arguments describe.
    pub fn config(&self) -> BackendConfig {
        let stalls = match (self.stall_every, self.stall_for) {
            (Some(every), Some(length)) => Some(Stalls { every, length }),
            _ => None,
        };
        let profile = Profile {
            latency: self.latency,
            stalls,
            error_rate: self.error_rate,
            capacity: self.capacity.map(NonZeroUsize::get),
            workers: self.workers.map(NonZeroUsize::get),
        };
        BackendConfig {
            host: self.host,
            base_port: self.port,
            profiles: vec![profile; usize::from(self.replicas)],
            seed: self.seed,
            outages: self.outages.clone(),
            outage_mode: self.outage_mode,
            control: true,
        }
    }
}

/// Runs `tailguard-demo backend`: starts the replicas and serves until SIGINT or SIGTERM.
/// The exit status is in [`AFTER_HELP`].
pub fn run(args: Args) -> ExitCode {
    let config = args.config();
    if let Err(error) = config.validate() {
        eprintln!("backend: {}", flag_error(&error, FLAGS));
        return ExitCode::from(USAGE);
    }
    let threads = args.threads.unwrap_or_else(rt::default_threads);
    rt::run(threads, |ex| async move {
        let terminated = match termination() {
            Ok(terminated) => terminated,
            Err(error) => {
                log(format_args!("cannot listen for SIGINT/SIGTERM: {error}"));
                return ExitCode::FAILURE;
            }
        };
        let backends = match Backends::start(config.clone(), &ex).await {
            Ok(backends) => backends,
            Err(error) => {
                log(format_args!("cannot start the replicas: {error}"));
                return ExitCode::FAILURE;
            }
        };
        for (i, addr) in backends.addrs().iter().enumerate() {
            log(format_args!("replica {i} listening on http://{addr}"));
        }
        if let Some(addr) = backends.control_addr() {
            log(format_args!(
                "control on http://{addr}/replicas (POST /replicas/{{i}}/down or /up)"
            ));
        }
        let list: Vec<String> = backends.addrs().iter().map(|a| a.to_string()).collect();
        println!("backends: {}", list.join(","));
        log(format_args!(
            "start the gateway with: tailguard-demo serve --backend {}",
            list.join(",")
        ));
        terminated.await;
        backends.stop().await;
        ExitCode::SUCCESS
    })
}

/// The flags of `backend`, by the field their errors name.
const FLAGS: &[(&str, &str)] = &[
    ("replicas", "--replicas"),
    ("port", "--port"),
    ("latency", "--latency"),
    ("stall_every", "--stall-every"),
    ("stall_for", "--stall-for"),
    ("error_rate", "--error-rate"),
    ("capacity", "--capacity"),
    ("outage", "--outage"),
    ("overlap", "--outage"),
];
