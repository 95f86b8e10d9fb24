//! `tailguard-demo serve`: its arguments and help, and [`run`], which serves until SIGINT or
//! SIGTERM.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::process::ExitCode;
use std::time::Duration;

use super::admission::AdmissionConfig;
use super::{log, Server, ServerConfig};
use crate::args::{flag_error, parse_duration, USAGE};
use crate::gateway::args::GatewayArgs;
use crate::gateway::Gateway;
use crate::metrics::PolicyMetrics;
use crate::rt;
use crate::signals::termination;

/// One line of help for `serve`.
pub const ABOUT: &str =
    "Serve HTTP with every wait bounded; SIGINT or SIGTERM shuts down gracefully";

/// The full `serve --help`: the routes and the exit statuses.
pub const LONG_ABOUT: &str = "Serve HTTP with every wait bounded; SIGINT or SIGTERM shuts down \
gracefully.

Routes: GET /{name} answers \"Hi there, I love {name}!\"; POST /echo reads the body within the \
body limits and answers its length; GET /slow?ms=N answers after N ms; GET /healthz; \
GET /metrics (Prometheus text); with --admission on, an adaptive concurrency limit sheds \
what the server cannot do without queueing (503 with Retry-After), sheddable requests first, \
then default ones, critical ones last (request header tailguard-criticality: \
critical|default|sheddable; any other value is 400); with --backend, GET /fanout?keys=N reads N keys from the \
backends with per-call timeouts, retries, per-replica circuit breakers and hedging (with \
--replica-limit and --throttle-k, a per-replica adaptive limit in the caller's \
tailguard-criticality class and client-side throttling), and answers \
the values and how they were obtained (JSON). Exit status: 0 when every connection drained \
before the shutdown deadline, 1 when some had to be closed by force or a listener could not be \
bound (the message names the port), 2 for a refused flag.";

/// Examples, after `serve --help` (as in the README).
pub const AFTER_HELP: &str =
    "Examples (the server runs until Ctrl-C: use another terminal for curl):
  tailguard-demo serve --addr 127.0.0.1:8080
  curl 127.0.0.1:8080/gophers                    # Hi there, I love gophers!
  curl -X POST --data-binary @README.md 127.0.0.1:8080/echo
  curl '127.0.0.1:8080/slow?ms=3000'             # then SIGTERM: it finishes, the server exits 0

The gateway, each command in its own terminal:
  tailguard-demo backend --replicas 3 --stall-every 2s --stall-for 100ms
  tailguard-demo serve --backend 127.0.0.1:9001,127.0.0.1:9002,127.0.0.1:9003
  curl '127.0.0.1:8080/fanout?keys=16'
  tailguard-demo load --url 'http://127.0.0.1:8080/fanout?keys=16' --rate 200 --duration 10s";

/// Command-line arguments of `serve`.
#[derive(Debug, Clone, clap::Args)]
#[command(about = ABOUT, long_about = LONG_ABOUT)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Longest time to receive a request head (from accept, or from the first byte of a later
    /// request on a kept-alive connection).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub header_read: Duration,
    /// Longest gap between two chunks of a request body.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub body_idle: Duration,
    /// Longest time to receive a whole request body.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub body_total: Duration,
    /// Longest time a response write may wait for the client.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub write: Duration,
    /// Longest time an idle kept-alive connection stays open.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub keep_alive_idle: Duration,
    /// How long shutdown waits for requests in flight before closing them.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub shutdown_deadline: Duration,
    /// Most connections served at once.
    #[arg(long, default_value_t = 1024)]
    pub max_connections: usize,
    /// Largest request body POST /echo accepts, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// Executor threads (default: one per core).
    #[arg(long)]
    pub threads: Option<NonZeroUsize>,
    /// Serve without the TimeoutIo limits (header read, keep-alive idle, write): only to
    /// measure what they cost.
    #[arg(long, hide = true)]
    pub no_io_timeouts: bool,
    /// Admission control: `off`, `on` (an adaptive concurrency limit with priority from the
    /// tailguard-criticality header; what it sheds is answered 503 with Retry-After) or
    /// `monitor` (admit everything, count in /metrics what would have been shed).
    #[arg(long, default_value = "off", value_parser = ["off", "on", "monitor"])]
    pub admission: String,
    /// The admission limit to start from (it adapts to latency from there).
    #[arg(long, default_value_t = AdmissionConfig::default().initial_limit)]
    pub admission_initial_limit: u32,
    /// The most the admission limit may grow to.
    #[arg(long, default_value_t = AdmissionConfig::default().max_limit)]
    pub admission_max_limit: u32,
    #[command(flatten)]
    pub gateway: GatewayArgs,
}

impl Args {
    /// The server's configuration (the gateway's is [`GatewayArgs::config`]).
    pub fn config(&self) -> ServerConfig {
        ServerConfig {
            addr: self.addr,
            header_read: self.header_read,
            body_idle: self.body_idle,
            body_total: self.body_total,
            write: self.write,
            keep_alive_idle: self.keep_alive_idle,
            shutdown_deadline: self.shutdown_deadline,
            max_connections: self.max_connections,
            max_body_bytes: self.max_body_bytes,
            io_timeouts: !self.no_io_timeouts,
            admission: (self.admission != "off").then_some(AdmissionConfig {
                initial_limit: self.admission_initial_limit,
                max_limit: self.admission_max_limit,
                monitor_only: self.admission == "monitor",
            }),
        }
    }
}

/// The flags of `serve`, by the field their errors name.
const FLAGS: &[(&str, &str)] = &[
    ("header_read", "--header-read"),
    ("body_idle", "--body-idle"),
    ("body_total", "--body-total"),
    ("write", "--write"),
    ("keep_alive_idle", "--keep-alive-idle"),
    ("shutdown_deadline", "--shutdown-deadline"),
    ("max_connections", "--max-connections"),
    ("max_body_bytes", "--max-body-bytes"),
    ("initial_limit", "--admission-initial-limit"),
    ("max_limit", "--admission-max-limit"),
    ("min_limit", "--admission-max-limit"),
    ("replicas", "--backend"),
    ("call_timeout", "--call-timeout"),
    ("connect_timeout", "--connect-timeout"),
    ("fanout_deadline", "--fanout-deadline"),
    ("retry_attempts", "--retry-attempts"),
    ("ratio", "--retry-budget"),
    ("fixed_delay", "--hedge"),
    ("adaptive_delay", "--hedge"),
    ("budget_ratio", "--hedge-budget"),
    ("failure_rate", "--breaker-failure-rate"),
    ("replica_limit_initial", "--replica-limit-initial"),
    ("replica_limit_max", "--replica-limit-max"),
    ("throttle_k", "--throttle-k"),
    ("open_duration", "--breaker-open"),
];

/// Runs `tailguard-demo serve`: serves until SIGINT or SIGTERM, then shuts down gracefully. The
/// exit status is in [`LONG_ABOUT`].
pub fn run(args: Args) -> ExitCode {
    if let Err(error) = args.config().validate() {
        eprintln!("serve: {}", flag_error(&error, FLAGS));
        return ExitCode::from(USAGE);
    }
    let threads = args.threads.unwrap_or_else(rt::default_threads);
    // Before any policy is built: they register their series when built (docs/metrics.md).
    if PolicyMetrics::install().is_none() {
        log(format_args!(
            "another metrics recorder is installed: the policies' series are not in /metrics"
        ));
    }
    rt::run(threads, |ex| async move {
        let gateway = match args.gateway.config() {
            None => None,
            Some(config) => match Gateway::new(config, ex.clone()) {
                Ok(gateway) => Some(gateway),
                Err(error) => {
                    eprintln!("serve: {}", flag_error(&error, FLAGS));
                    return ExitCode::from(USAGE);
                }
            },
        };
        let terminated = match termination() {
            Ok(terminated) => terminated,
            Err(error) => {
                log(format_args!("cannot listen for SIGINT/SIGTERM: {error}"));
                return ExitCode::FAILURE;
            }
        };
        let server = match Server::bind(args.config()).await {
            Ok(server) => server,
            Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => {
                log(format_args!(
                    "cannot serve: port {} is already in use (the HTTP server's listener, \
                     --addr {}): stop what listens there or choose another --addr",
                    args.addr.port(),
                    args.addr
                ));
                return ExitCode::FAILURE;
            }
            Err(error) => {
                log(format_args!(
                    "cannot serve on {} (--addr): {error}",
                    args.addr
                ));
                return ExitCode::FAILURE;
            }
        };
        let server = match gateway {
            None => server,
            Some(gateway) => server.with_gateway(gateway),
        };
        match server.local_addr() {
            Ok(addr) => log(format_args!("listening on http://{addr}")),
            Err(error) => log(format_args!("listening (address unknown: {error})")),
        }
        let report = server.serve(ex, terminated).await;
        if report.drained() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    })
}
