//! The guided tour: `tailguard-demo` with no arguments.
//!
//! It starts everything it needs in this process on free ports of 127.0.0.1 and walks through
//! five patterns, each with a short explanation and a table of what was measured:
//!
//! 1. [timeouts]: a slow request head, a stalled body and a trickled body, each cut at its
//!    limit while an ordinary request is served;
//! 2. [graceful shutdown](shutdown): requests in flight finish, new ones are refused, what
//!    outlives the deadline is cut, and the server is done within the deadline;
//! 3. [retry and the herd](herd): the live [`herd`](crate::herd::live), short;
//! 4. the [circuit breaker](breaker) of one replica tripping during its outage and closing after;
//! 5. [hedging] against stalls: the live [`tail-at-scale`](crate::tail_at_scale::live),
//!    short, in rounds, with fixed and adaptive hedging at one budget.
//!
//! Each section is a module of its own with the same shape: a `section` that prints its
//! explanation, runs, and prints its table and what the table shows.
//!
//! Every conclusion it prints under a table is drawn from that table
//! ([`verdict`](crate::verdict)): the best mode per measure, and whether a simpler one did as
//! well; percentiles follow [the sample rule](crate::percentile).
//!
//! It takes about 20 s (`--quick`: about 10 s) and prints plain text when stdout is not a
//! terminal.

pub mod breaker;
pub mod hedging;
pub mod herd;
pub mod out;
pub mod raw;
pub mod shutdown;
pub mod timeouts;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use tailguard::shutdown::Shutdown;

use self::out::Out;
use crate::experiment::ExperimentError;
use crate::gateway::Gateway;
use crate::rt::{self, Runtime};
use crate::server::{ServeReport, Server, ServerConfig};

/// The tour's options (also accepted with no subcommand: `tailguard-demo --quick`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TourArgs {
    /// A shorter tour (about 10 s instead of 20 s), with fewer samples per table.
    #[arg(long)]
    pub quick: bool,
}

/// The section headings, in order.
pub const HEADINGS: [&str; 5] = [
    "1. Timeouts: every wait has a limit",
    "2. Graceful shutdown: finish what was accepted, within a deadline",
    "3. Retry and the herd: jitter and a budget",
    "4. The circuit breaker: stop calling a dead replica",
    "5. Hedging against stalls: the tail at scale",
];

/// Formats a duration in milliseconds: `503 ms`, `0.4 ms` below 10 ms.
pub fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

/// Formats a duration in seconds, to the hundredth: `1.5s`, `0.25s`, `2s`.
pub fn secs(d: Duration) -> String {
    let text = format!("{:.2}", d.as_secs_f64());
    format!("{}s", text.trim_end_matches('0').trim_end_matches('.'))
}

/// A server started on the tour's runtime; stop it with [`RunningServer::stop`].
pub struct RunningServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Triggers its graceful shutdown.
    pub stop: Shutdown,
    /// Its `serve` task.
    pub task: smol::Task<ServeReport>,
}

impl RunningServer {
    /// Binds `config` (quietly: the tour reports for it) and serves on `rt`.
    pub fn start(
        rt: &Runtime,
        config: ServerConfig,
        gateway: Option<Gateway>,
    ) -> Result<RunningServer, ExperimentError> {
        let server = rt.block_on(Server::bind(config))?.quiet();
        let server = match gateway {
            Some(gateway) => server.with_gateway(gateway),
            None => server,
        };
        let addr = server.local_addr()?;
        let stop = Shutdown::new();
        let task = rt.spawn(server.serve(rt.executor().clone(), stop.signal()));
        Ok(RunningServer { addr, stop, task })
    }

    /// Shuts it down and waits for it.
    pub fn stop(self, rt: &Runtime) -> ServeReport {
        self.stop.trigger();
        rt.block_on(self.task)
    }
}

/// One part of the tour: prints its explanation and its table (`quick`: the shorter tour).
type Section = fn(&Out, &Runtime, bool) -> Result<(), ExperimentError>;

/// Runs the tour, printing as it goes; fails if a section could not run.
pub fn run(args: &TourArgs) -> ExitCode {
    let out = Out::detect();
    let started = Instant::now();
    let rt = Runtime::new(rt::default_threads());
    out.para(&format!(
        "tailguard tour: five resilience patterns, each measured live in this process over \
         real sockets on 127.0.0.1 (free ports picked by the system). About {} s; real timings \
         on a shared machine vary, so read the shapes, not the exact numbers.",
        if args.quick { 10 } else { 20 }
    ));
    let mut failed = Vec::new();
    let sections: [(&str, Section); 5] = [
        (HEADINGS[0], timeouts::section),
        (HEADINGS[1], shutdown::section),
        (HEADINGS[2], herd::section),
        (HEADINGS[3], breaker::section),
        (HEADINGS[4], hedging::section),
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
         (open-loop load), `herd` and `tail-at-scale` (add --sim for the virtual-time \
         versions); `--help` on each says more.",
        started.elapsed().as_secs_f64()
    ));
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_short() {
        assert_eq!(ms(Duration::from_micros(300)), "0.3 ms");
        assert_eq!(ms(Duration::from_millis(501)), "501 ms");
        assert_eq!(secs(Duration::from_millis(250)), "0.25s");
        assert_eq!(secs(Duration::from_millis(1500)), "1.5s");
        assert_eq!(secs(Duration::from_secs(2)), "2s");
        assert_eq!(secs(Duration::ZERO), "0s");
    }
}
