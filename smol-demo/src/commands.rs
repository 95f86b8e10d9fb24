//! The `backend`, `load` and `herd` subcommands, as functions the binary calls.

use std::future::Future;
use std::io;
use std::process::ExitCode;

use futures_lite::StreamExt;

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
            log(format_args!("received {signal:?}"));
        }
    })
}

/// `tailguard-demo backend`: starts the replicas and serves until SIGINT or SIGTERM.
pub fn backend(args: &BackendArgs) -> ExitCode {
    let config = args.config();
    if let Err(error) = config.validate() {
        eprintln!("backend: {error}");
        return ExitCode::from(2);
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

/// `tailguard-demo load`: runs the load and prints the summary (or JSON).
pub fn load(args: &LoadArgs) -> ExitCode {
    let config = args.config();
    if let Err(error) = config.validate() {
        eprintln!("load: {error}");
        return ExitCode::from(2);
    }
    let threads = args.threads.unwrap_or_else(rt::default_threads);
    let json = args.json;
    rt::run(threads, |ex| async move {
        match crate::load::run(&ex, &config).await {
            Ok(report) if json => {
                println!("{}", report.to_json());
                ExitCode::SUCCESS
            }
            Ok(report) => {
                println!("{report}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("load: {error}");
                ExitCode::from(2)
            }
        }
    })
}

/// `tailguard-demo herd`: the live run (or with `--sim` the virtual-time studies), printed as
/// tables or JSON.
pub fn herd(args: &HerdArgs) -> ExitCode {
    if args.sim {
        let config = crate::herd::HerdConfig::new(args.clients, args.seed);
        let report = crate::herd::run(&config);
        if args.json {
            println!("{}", report.to_json());
        } else {
            print!("{}", report.to_table(&config));
        }
        return ExitCode::SUCCESS;
    }
    let config = args.live_config();
    if let Err(error) = config.validate() {
        eprintln!("herd: {error}");
        return ExitCode::from(2);
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
            println!("{}", report.to_json());
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
