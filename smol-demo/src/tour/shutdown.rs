//! Tour section 2: graceful shutdown. Requests in flight finish, new connections are refused,
//! what outlives the deadline is cut, and the server is done within the deadline.

use std::thread;
use std::time::{Duration, Instant};

use super::out::{Out, Table};
use super::raw::{self, Seen};
use super::RunningServer;
use crate::experiment::ExperimentError;
use crate::ms;
use crate::rt::Runtime;
use crate::server::{ServeReport, ServerConfig};

/// How long the short requests take.
const SHORT: Duration = Duration::from_millis(600);
/// How long the long request would take.
const LONG: Duration = Duration::from_secs(5);
/// How many short requests are in flight.
const IN_FLIGHT: usize = 3;

/// What the section measured.
#[derive(Debug, Clone)]
pub struct ShutdownRun {
    /// The server's shutdown deadline.
    pub deadline: Duration,
    /// What each short request saw, and when it ended after shutdown began.
    pub short: Vec<(Seen, Duration)>,
    /// What the long request saw, and when.
    pub long: (Seen, Duration),
    /// What a new connection saw just after shutdown began, and when it tried.
    pub late: (Seen, Duration),
    /// How the server's shutdown ended, and when (after it began).
    pub report: ServeReport,
    /// When `serve` returned, after shutdown began.
    pub stopped_after: Duration,
}

/// Starts the requests, shuts the server down while they run, and measures.
pub fn run(rt: &Runtime) -> Result<ShutdownRun, ExperimentError> {
    let config = ServerConfig {
        addr: ([127, 0, 0, 1], 0).into(),
        shutdown_deadline: Duration::from_secs(1),
        ..ServerConfig::default()
    };
    let deadline = config.shutdown_deadline;
    let server = RunningServer::start(rt, config, None)?;
    let addr = server.addr;
    let patience = Duration::from_secs(10);
    let began = thread::scope(|scope| {
        let spawn_get = |path: String| {
            scope.spawn(move || {
                let (seen, _) = raw::get(addr, &path, patience);
                (seen, Instant::now())
            })
        };
        let short: Vec<_> = (0..IN_FLIGHT)
            .map(|_| spawn_get(format!("/slow?ms={}", SHORT.as_millis())))
            .collect();
        let long = spawn_get(format!("/slow?ms={}", LONG.as_millis()));
        // Let every request start, then begin the shutdown.
        thread::sleep(Duration::from_millis(150));
        let began = Instant::now();
        server.stop.trigger();
        thread::sleep(Duration::from_millis(50));
        let late_at = began.elapsed();
        let (late, _) = raw::get(addr, "/gophers", patience);
        let join = |h: thread::ScopedJoinHandle<'_, (Seen, Instant)>| {
            h.join()
                .map(|(seen, at)| (seen, at.saturating_duration_since(began)))
                .unwrap_or((Seen::Nothing, Duration::ZERO))
        };
        (
            began,
            short.into_iter().map(join).collect::<Vec<_>>(),
            join(long),
            (late, late_at),
        )
    });
    let (began, short, long, late) = began;
    let report = rt.block_on(server.task);
    let stopped_after = began.elapsed();
    Ok(ShutdownRun {
        deadline,
        short,
        long,
        late,
        report,
        stopped_after,
    })
}

/// The section's table.
pub fn table(run: &ShutdownRun) -> Table {
    let mut table = Table::new(["what", "outcome", "when (after shutdown began)"]).left_columns(2);
    for (i, (seen, at)) in run.short.iter().enumerate() {
        table.row([
            format!("request {} in flight ({})", i + 1, ms::text(SHORT)),
            seen.describe(),
            ms::text(*at),
        ]);
    }
    table.row([
        format!("a request that needs {}", ms::text(LONG)),
        run.long.0.describe(),
        ms::text(run.long.1),
    ]);
    table.row([
        "a new connection".to_string(),
        run.late.0.describe(),
        ms::text(run.late.1),
    ]);
    table.row([
        format!("the server (deadline {})", ms::text(run.deadline)),
        format!(
            "stopped: {} answered, {} closed by force",
            run.report.requests, run.report.forced
        ),
        ms::text(run.stopped_after),
    ]);
    table
}

/// The section: what a graceful shutdown promises, the table of what each client saw, and what
/// it shows (the same at every length: `_quick` is for the shape every section shares).
pub fn section(out: &Out, rt: &Runtime, _quick: bool) -> Result<(), ExperimentError> {
    out.para(
        "Stopping a server should lose no request it accepted, and still end in bounded time. \
         On shutdown the demo server stops accepting at once, lets the requests in flight \
         finish, and closes what is left at its deadline (tailguard's Shutdown and \
         TaskTracker). Here three 600 ms requests and one 5 s request are in flight when the \
         shutdown begins, and a new client arrives 50 ms later:",
    );
    let run = run(rt)?;
    out.table(&table(&run));
    out.note(&format!(
        "{} of {} requests in flight finished normally; the new connection was {}; the one \
         that needed 5 s {}; the server was done {} after the shutdown began (deadline {}{}).",
        run.short
            .iter()
            .filter(|(seen, _)| matches!(seen, Seen::Response(200, _)))
            .count(),
        run.short.len(),
        if run.late.0 == Seen::Refused {
            "refused"
        } else {
            "not refused (unexpected)"
        },
        match &run.long.0 {
            Seen::Response(200, _) => format!("finished (after {})", ms::text(run.long.1)),
            seen if run.long.1 + Duration::from_millis(250) >= run.deadline => format!(
                "was cut at the deadline ({} after {})",
                seen.brief(),
                ms::text(run.long.1)
            ),
            seen => format!(
                "ended before the deadline ({} after {})",
                seen.brief(),
                ms::text(run.long.1)
            ),
        },
        ms::text(run.stopped_after),
        ms::text(run.deadline),
        if run.stopped_after <= run.deadline + Duration::from_millis(250) {
            ""
        } else {
            ": later than it"
        }
    ));
    Ok(())
}
