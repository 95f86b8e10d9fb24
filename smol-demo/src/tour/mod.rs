//! The guided tour: `tailguard-demo` with no arguments.
//!
//! It starts everything it needs in this process on free ports of 127.0.0.1 and walks through
//! six patterns, each with a short explanation and a table of what was measured:
//!
//! 1. [timeouts]: a slow request head, a stalled body and a trickled body, each cut at its
//!    limit while an ordinary request is served;
//! 2. [graceful shutdown](shutdown): requests in flight finish, new ones are refused, what
//!    outlives the deadline is cut, and the server is done within the deadline;
//! 3. [retry and the herd](herd): the live [`herd`](crate::herd::live), short;
//! 4. the [circuit breaker](breaker) of one replica tripping during its outage and closing after;
//! 5. [hedging] against stalls: the live [`tail-at-scale`](crate::tail_at_scale::live),
//!    short, in rounds, with fixed and adaptive hedging at one budget;
//! 6. [deadlines](deadline): the live [`deadline`](crate::deadline::live) experiment, short, a
//!    retry + hedge pipeline blind to its callers' deadlines or aware of them.
//! 7. [overload]: the [`overload`](crate::overload) experiment in virtual time, no limit
//!    against a fixed and the adaptive limit with priority shedding.
//!
//! Each section is a module of its own with the same shape: a `section` that prints its
//! explanation, runs, and prints its table and what the table shows; [`command`] runs them in
//! turn.
//!
//! Every conclusion it prints under a table is drawn from that table
//! ([`verdict`](crate::verdict)): the best mode per measure, and whether a simpler one did as
//! well; percentiles follow [the sample rule](crate::percentile).
//!
//! It takes about 20 s (`--quick`: about 10 s) and prints plain text when stdout is not a
//! terminal.

pub mod breaker;
pub mod command;
pub mod deadline;
pub mod hedging;
pub mod herd;
pub mod out;
pub mod overload;
pub mod raw;
pub mod shutdown;
pub mod timeouts;

use std::net::SocketAddr;
use std::time::Duration;

use tailguard::shutdown::Shutdown;

use crate::experiment::ExperimentError;
use crate::gateway::Gateway;
use crate::rt::Runtime;
use crate::server::{ServeReport, Server, ServerConfig};

/// The section headings, in order.
pub const HEADINGS: [&str; 7] = [
    "1. Timeouts: every wait has a limit",
    "2. Graceful shutdown: finish what was accepted, within a deadline",
    "3. Retry and the herd: jitter and a budget",
    "4. The circuit breaker: stop calling a dead replica",
    "5. Hedging against stalls: the tail at scale",
    "6. Deadlines: never start work that cannot finish in time",
    "7. Overload: shed what cannot be served in time, least critical first",
];

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_short() {
        assert_eq!(secs(Duration::from_millis(250)), "0.25s");
        assert_eq!(secs(Duration::from_millis(1500)), "1.5s");
        assert_eq!(secs(Duration::from_secs(2)), "2s");
        assert_eq!(secs(Duration::ZERO), "0s");
    }
}
