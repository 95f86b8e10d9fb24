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
    /// The thundering herd: backoff and jitter strategies under contention, and the retry storm
    /// with and without budgets, in virtual time.
    Herd(HerdArgs),
}

#[derive(Debug, clap::Args)]
struct HerdArgs {
    /// Clients contending for the resource.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    clients: u32,
    /// Seed for every random choice: the same seed prints the same numbers.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object keyed by strategy (`calls`, `completion_ms`) plus `storm`.
    #[arg(long)]
    json: bool,
    /// Simulate in virtual time (the only mode for now; a live run over HTTP comes later).
    #[arg(long, default_value_t = true)]
    sim: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None => ExitCode::SUCCESS,
        Some(Command::Herd(args)) => herd(&args),
    }
}

fn herd(args: &HerdArgs) -> ExitCode {
    let _ = args.sim;
    let config = tailguard_demo::herd::HerdConfig::new(args.clients, args.seed);
    let report = tailguard_demo::herd::run(&config);
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_table(&config));
    }
    ExitCode::SUCCESS
}
