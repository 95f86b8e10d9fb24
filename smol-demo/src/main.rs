//! `tailguard-demo`: tailguard's patterns at work on smol and hyper.
//!
//! Every subcommand is a `command` module of the library with the same shape: its `Args`
//! (clap), its help text, and `run(args) -> ExitCode`. This file only dispatches.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tailguard_demo::{backend, deadline, fleet, herd, load, overload, server, tail_at_scale, tour};

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
  tailguard-demo deadline --sim
  tailguard-demo overload --sim
  tailguard-demo fleet

Every command has --help, with its model, examples and exit statuses."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    tour: tour::command::Args,
}

#[derive(Debug, Subcommand)]
enum Command {
    #[command(
        about = tour::command::ABOUT,
        long_about = None,
        after_help = tour::command::AFTER_HELP
    )]
    Tour(tour::command::Args),
    #[command(
        about = server::command::ABOUT,
        long_about = server::command::LONG_ABOUT,
        after_help = server::command::AFTER_HELP
    )]
    Serve(server::command::Args),
    #[command(
        about = herd::command::ABOUT,
        long_about = herd::command::LONG_ABOUT,
        after_help = herd::command::AFTER_HELP
    )]
    Herd(herd::command::Args),
    #[command(
        about = tail_at_scale::command::ABOUT,
        long_about = tail_at_scale::command::LONG_ABOUT,
        after_help = tail_at_scale::command::AFTER_HELP
    )]
    TailAtScale(tail_at_scale::command::Args),
    #[command(
        about = deadline::command::ABOUT,
        long_about = deadline::command::LONG_ABOUT,
        after_help = deadline::command::AFTER_HELP
    )]
    Deadline(deadline::command::Args),
    #[command(
        about = backend::command::ABOUT,
        long_about = backend::command::LONG_ABOUT,
        after_help = backend::command::AFTER_HELP
    )]
    Backend(backend::command::Args),
    #[command(
        about = load::command::ABOUT,
        long_about = load::command::LONG_ABOUT,
        after_help = load::command::AFTER_HELP
    )]
    Load(load::command::Args),
    #[command(
        about = overload::command::ABOUT,
        long_about = overload::command::LONG_ABOUT,
        after_help = overload::command::AFTER_HELP
    )]
    Overload(overload::command::Args),
    #[command(
        about = fleet::command::ABOUT,
        long_about = fleet::command::LONG_ABOUT,
        after_help = fleet::command::AFTER_HELP
    )]
    Fleet(fleet::command::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Tour(args)) => tour::command::run(args),
        Some(Command::Serve(args)) => server::command::run(args),
        Some(Command::Herd(args)) => herd::command::run(args),
        Some(Command::TailAtScale(args)) => tail_at_scale::command::run(args),
        Some(Command::Deadline(args)) => deadline::command::run(args),
        Some(Command::Backend(args)) => backend::command::run(args),
        Some(Command::Load(args)) => load::command::run(args),
        Some(Command::Overload(args)) => overload::command::run(args),
        Some(Command::Fleet(args)) => fleet::command::run(args),
        None => tour::command::run(cli.tour),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap's own check of the command line: every subcommand's `Args`, flattened or not, fits
    /// together (no clashing flags or ids, every default parses).
    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
