//! The `backend`, `load` and `herd` subcommands, as functions the binary calls.

use std::future::Future;
use std::io;
use std::process::ExitCode;

use futures_lite::StreamExt;

use crate::args::{flag_error, USAGE};
use crate::backend::args::BackendArgs;
use crate::backend::Backends;
use crate::herd::args::HerdArgs;
use crate::load::args::LoadArgs;
use crate::rt;
use crate::server::log;

/// A future that ends at the first SIGINT or SIGTERM (logging which), for the serving commands.
/// Listening starts now, so a signal that arrives before the future is polled is not lost.
pub fn termination() -> io::Result<impl Future<Output = ()>> {
    let mut signals =
        async_signal::Signals::new([async_signal::Signal::Int, async_signal::Signal::Term])?;
    Ok(async move {
        if let Some(Ok(signal)) = signals.next().await {
            log(format_args!("received {}", signal_name(signal)));
        }
    })
}

/// A future that ends at the first SIGINT or SIGTERM with the signal, for the measuring
/// commands, which stop and report what they measured. Listening starts now.
pub fn interruption() -> io::Result<impl Future<Output = async_signal::Signal>> {
    let mut signals =
        async_signal::Signals::new([async_signal::Signal::Int, async_signal::Signal::Term])?;
    Ok(async move {
        while let Some(next) = signals.next().await {
            if let Ok(signal) = next {
                return signal;
            }
        }
        std::future::pending().await
    })
}

/// `SIGINT`, `SIGTERM`: a signal as a shell user knows it.
pub fn signal_name(signal: async_signal::Signal) -> &'static str {
    match signal {
        async_signal::Signal::Int => "SIGINT",
        async_signal::Signal::Term => "SIGTERM",
        _ => "a signal",
    }
}

/// The exit status of a run stopped by `signal` after printing what it measured: 128 plus the
/// signal's number, as a shell reports a process killed by it (130 for SIGINT, 143 for
/// SIGTERM).
pub fn interrupted_status(signal: async_signal::Signal) -> ExitCode {
    match signal {
        async_signal::Signal::Term => ExitCode::from(143),
        _ => ExitCode::from(130),
    }
}

/// `tailguard-demo backend`: starts the replicas and serves until SIGINT or SIGTERM.
pub fn backend(args: &BackendArgs) -> ExitCode {
    let config = args.config();
    if let Err(error) = config.validate() {
        eprintln!("backend: {}", flag_error(&error, BACKEND_FLAGS));
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
const BACKEND_FLAGS: &[(&str, &str)] = &[
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

/// The flags of `herd`, by the field their errors name.
const HERD_FLAGS: &[(&str, &str)] = &[
    ("rate", "--rate"),
    ("capacity", "--capacity"),
    ("outage", "--outage"),
    ("after", "--after"),
];

/// `tailguard-demo load`: runs the load and prints the summary (or JSON).
///
/// Exit status: 0 when some request succeeded; 1 when none did (the summary says so); 2 for a
/// usage error; after SIGINT (Ctrl-C) or SIGTERM, the partial summary is printed and the
/// status is 130 or 143 (128 + the signal's number).
pub fn load(args: &LoadArgs) -> ExitCode {
    let config = args.config();
    if let Err(error) = config.validate() {
        eprintln!("load: {}", flag_error(&error, LOAD_FLAGS));
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
                eprintln!("load: {}", flag_error(&error, LOAD_FLAGS));
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
const LOAD_FLAGS: &[(&str, &str)] = &[
    ("url", "--url"),
    ("rate", "--rate"),
    ("duration", "--duration"),
    ("concurrency", "--concurrency"),
    ("timeout", "--timeout"),
];

/// `tailguard-demo herd`: the live run (or with `--sim` the virtual-time studies), printed as
/// tables or JSON.
pub fn herd(args: &HerdArgs) -> ExitCode {
    if args.sim {
        let config = crate::herd::HerdConfig::new(args.clients, args.seed);
        let report = crate::herd::run(&config);
        if args.json {
            println!("{}", tidy(report.to_json()));
        } else {
            print!("{}", report.to_table(&config));
        }
        return ExitCode::SUCCESS;
    }
    let config = args.live_config();
    if let Err(error) = config.validate() {
        eprintln!("herd: {}", flag_error(&error, HERD_FLAGS));
        return ExitCode::from(USAGE);
    }
    let runtime = rt::Runtime::new(args.threads.unwrap_or_else(rt::default_threads));
    let report = runtime.block_on(crate::herd::live::run(
        runtime.executor(),
        &config,
        |mode| {
            eprintln!("herd: {} ...", mode.describe(&config));
        },
    ));
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

/// `value` with its numbers rounded for printing (see [`round_floats`](crate::load::round_floats)).
pub fn tidy(mut value: serde_json::Value) -> serde_json::Value {
    crate::load::round_floats(&mut value);
    value
}
