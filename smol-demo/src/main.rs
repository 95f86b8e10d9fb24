//! `tailguard-demo`: tailguard's patterns at work on smol and hyper.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// tailguard at work: timeouts, graceful shutdown, retry, circuit breakers and hedging on a real
/// smol + hyper server.
#[derive(Debug, Parser)]
#[command(name = "tailguard-demo", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The Tail at Scale experiment: unhedged vs fixed vs adaptive hedging.
    #[command(
        about = tailguard_demo::tail_at_scale::ABOUT,
        long_about = tailguard_demo::tail_at_scale::LONG_ABOUT
    )]
    TailAtScale(tailguard_demo::tail_at_scale::TailAtScaleArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None => ExitCode::SUCCESS,
        Some(Command::TailAtScale(args)) => match tailguard_demo::tail_at_scale::run(&args) {
            Ok(report) => {
                print!("{report}");
                if !report.ends_with('\n') {
                    println!();
                }
                ExitCode::SUCCESS
            }
            Err(message) => {
                eprintln!("tail-at-scale: {message}");
                ExitCode::FAILURE
            }
        },
    }
}
