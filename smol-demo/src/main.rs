//! `tailguard-demo`: tailguard's patterns at work on smol and hyper.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tailguard_demo::args::{flag_error, parse_duration, USAGE};
use tailguard_demo::rt;
use tailguard_demo::server::{log, Server, ServerConfig};

/// tailguard at work: timeouts, graceful shutdown, retry, circuit breakers and hedging on a real
/// smol + hyper server. With no command: the guided tour (about 30 s), which starts everything
/// on free loopback ports and measures each pattern live.
#[derive(Debug, Parser)]
#[command(
    name = "tailguard-demo",
    version,
    about,
    long_about = None,
    args_conflicts_with_subcommands = true,
    after_help = "Examples:
  tailguard-demo                          # the guided tour, about 30 s
  tailguard-demo serve --addr 127.0.0.1:8080
  tailguard-demo load --url http://127.0.0.1:8080/gophers --rate 1000 --duration 20s
  tailguard-demo tail-at-scale --sim
  tailguard-demo herd

Every command has --help, with its model, examples and exit statuses."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    tour: tailguard_demo::tour::TourArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The guided tour (the default with no command): timeouts, graceful shutdown, retry and
    /// the herd, the circuit breaker, hedging, each explained and measured live.
    #[command(after_help = TOUR_EXAMPLES)]
    Tour(tailguard_demo::tour::TourArgs),
    /// Serve HTTP with every wait bounded; SIGINT or SIGTERM shuts down gracefully.
    ///
    /// Routes: GET /{name} answers "Hi there, I love {name}!"; POST /echo reads the body within
    /// the body limits and answers its length; GET /slow?ms=N answers after N ms; GET /healthz;
    /// GET /metrics (Prometheus text); with --backend, GET /fanout?keys=N reads N keys from the
    /// backends with per-call timeouts, retries, per-replica circuit breakers and hedging, and
    /// answers the values and how they were obtained (JSON).
    /// Exit status: 0 when every connection drained before the shutdown deadline, 1 when some
    /// had to be closed by force or a listener could not be bound (the message names the port),
    /// 2 for a refused flag.
    #[command(after_help = SERVE_EXAMPLES)]
    Serve(ServeArgs),
    #[command(
        about = tailguard_demo::herd::args::ABOUT,
        long_about = tailguard_demo::herd::args::LONG_ABOUT,
        after_help = tailguard_demo::herd::args::AFTER_HELP
    )]
    Herd(tailguard_demo::herd::args::HerdArgs),
    /// The Tail at Scale experiment: unhedged vs fixed vs adaptive hedging.
    #[command(
        about = tailguard_demo::tail_at_scale::ABOUT,
        long_about = tailguard_demo::tail_at_scale::LONG_ABOUT,
        after_help = tailguard_demo::tail_at_scale::AFTER_HELP
    )]
    TailAtScale(tailguard_demo::tail_at_scale::TailAtScaleArgs),
    #[command(
        about = tailguard_demo::backend::args::ABOUT,
        long_about = tailguard_demo::backend::args::LONG_ABOUT,
        after_help = tailguard_demo::backend::args::AFTER_HELP
    )]
    Backend(tailguard_demo::backend::args::BackendArgs),
    #[command(
        about = tailguard_demo::load::args::ABOUT,
        long_about = tailguard_demo::load::args::LONG_ABOUT,
        after_help = tailguard_demo::load::args::AFTER_HELP
    )]
    Load(tailguard_demo::load::args::LoadArgs),
}

/// Examples after `serve --help`, as in the README.
const SERVE_EXAMPLES: &str =
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

/// Examples after `tour --help`.
const TOUR_EXAMPLES: &str = "Examples:
  tailguard-demo                  # the whole tour, about 30 s
  tailguard-demo --quick          # a shorter tour, about 10 s";

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Longest time to receive a request head (from accept, or from the first byte of a later
    /// request on a kept-alive connection).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    header_read: Duration,
    /// Longest gap between two chunks of a request body.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    body_idle: Duration,
    /// Longest time to receive a whole request body.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    body_total: Duration,
    /// Longest time a response write may wait for the client.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    write: Duration,
    /// Longest time an idle kept-alive connection stays open.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    keep_alive_idle: Duration,
    /// How long shutdown waits for requests in flight before closing them.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    shutdown_deadline: Duration,
    /// Most connections served at once.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// Largest request body POST /echo accepts, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    max_body_bytes: usize,
    /// Executor threads (default: one per core).
    #[arg(long)]
    threads: Option<NonZeroUsize>,
    /// Serve without the TimeoutIo limits (header read, keep-alive idle, write): only to
    /// measure what they cost.
    #[arg(long, hide = true)]
    no_io_timeouts: bool,
    #[command(flatten)]
    gateway: tailguard_demo::gateway::args::GatewayArgs,
}

impl ServeArgs {
    fn config(&self) -> ServerConfig {
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
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Serve(args)) => serve(args),
        Some(Command::Herd(args)) => tailguard_demo::commands::herd(&args),
        Some(Command::Backend(args)) => tailguard_demo::commands::backend(&args),
        Some(Command::Load(args)) => tailguard_demo::commands::load(&args),
        Some(Command::TailAtScale(args)) => tailguard_demo::tail_at_scale::command(&args),
        Some(Command::Tour(args)) => tailguard_demo::tour::run(&args),
        None => tailguard_demo::tour::run(&cli.tour),
    }
}

/// The flags of `serve`, by the field their errors name.
const SERVE_FLAGS: &[(&str, &str)] = &[
    ("header_read", "--header-read"),
    ("body_idle", "--body-idle"),
    ("body_total", "--body-total"),
    ("write", "--write"),
    ("keep_alive_idle", "--keep-alive-idle"),
    ("shutdown_deadline", "--shutdown-deadline"),
    ("max_connections", "--max-connections"),
    ("max_body_bytes", "--max-body-bytes"),
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
    ("open_duration", "--breaker-open"),
];

fn serve(args: ServeArgs) -> ExitCode {
    if let Err(error) = args.config().validate() {
        eprintln!("serve: {}", flag_error(&error, SERVE_FLAGS));
        return ExitCode::from(USAGE);
    }
    let threads = args.threads.unwrap_or_else(rt::default_threads);
    rt::run(threads, |ex| async move {
        let gateway = match args.gateway.config() {
            None => None,
            Some(config) => match tailguard_demo::gateway::Gateway::new(config, ex.clone()) {
                Ok(gateway) => Some(gateway),
                Err(error) => {
                    eprintln!("serve: {}", flag_error(&error, SERVE_FLAGS));
                    return ExitCode::from(USAGE);
                }
            },
        };
        let terminated = match tailguard_demo::commands::termination() {
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
