//! `tailguard-demo tour` (and `tailguard-demo` with no command): its arguments and help, and
//! [`run`], which runs the sections in turn.

use std::process::ExitCode;
use std::time::Instant;

use super::out::Out;
use super::{breaker, deadline, hedging, herd, overload, shutdown, timeouts, HEADINGS};
use crate::experiment::ExperimentError;
use crate::rt::{self, Runtime};

/// One line of help for `tour`.
pub const ABOUT: &str = "The guided tour (the default with no command): timeouts, graceful \
shutdown, retry and the herd, the circuit breaker, hedging, deadlines, each explained and \
measured live";

/// Examples, after `tour --help`.
pub const AFTER_HELP: &str = "Examples:
  tailguard-demo                  # the whole tour, about 30 s
  tailguard-demo --quick          # a shorter tour, about 10 s";

/// The tour's options (also accepted with no subcommand: `tailguard-demo --quick`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Args {
    /// A shorter tour (about 10 s instead of 20 s), with fewer samples per table.
    #[arg(long)]
    pub quick: bool,
}

/// One part of the tour: prints its explanation and its table (`quick`: the shorter tour).
type Section = fn(&Out, &Runtime, bool) -> Result<(), ExperimentError>;

/// Runs the tour, printing as it goes; fails if a section could not run.
pub fn run(args: Args) -> ExitCode {
    let out = Out::detect();
    let started = Instant::now();
    let rt = Runtime::new(rt::default_threads());
    out.para(&format!(
        "tailguard tour: six resilience patterns, each measured live in this process over \
         real sockets on 127.0.0.1 (free ports picked by the system). About {} s; real timings \
         on a shared machine vary, so read the shapes, not the exact numbers.",
        if args.quick { 10 } else { 20 }
    ));
    let mut failed = Vec::new();
    let sections: [(&str, Section); 7] = [
        (HEADINGS[0], timeouts::section),
        (HEADINGS[1], shutdown::section),
        (HEADINGS[2], herd::section),
        (HEADINGS[3], breaker::section),
        (HEADINGS[4], hedging::section),
        (HEADINGS[5], deadline::section),
        (HEADINGS[6], overload::section),
    ];
    for (heading, section) in sections {
        out.heading(heading);
        if let Err(error) = section(&out, &rt, args.quick) {
            out.para(&format!("This part could not run: {error}"));
            failed.push(heading);
        }
    }
    drop(rt);
    out.heading("Done");
    out.para(&format!(
        "The tour took {:.1} s. Each part also runs on its own, with flags to change it: \
         `tailguard-demo serve` (the server and gateway), `backend` (flaky replicas), `load` \
         (open-loop load), `herd`, `tail-at-scale` and `deadline` (add --sim for the virtual-time \
         versions); `--help` on each says more.",
        started.elapsed().as_secs_f64()
    ));
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
