//! Tour section 1: every wait has a limit. Three misbehaving clients and one ordinary one, at
//! once, against a server with short limits.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::out::Table;
use super::raw::{self, Seen};
use super::{ms, RunningServer};
use crate::experiment::ExperimentError;
use crate::rt::Runtime;
use crate::server::ServerConfig;

/// The limits of this section's server.
pub fn config() -> ServerConfig {
    ServerConfig {
        addr: ([127, 0, 0, 1], 0).into(),
        header_read: Duration::from_millis(500),
        body_idle: Duration::from_millis(300),
        body_total: Duration::from_secs(1),
        shutdown_deadline: Duration::from_secs(1),
        ..ServerConfig::default()
    }
}

/// One client of the section: what it did, the limit that applies, what it saw and when.
#[derive(Debug, Clone)]
pub struct TimeoutCase {
    /// What the client did.
    pub client: &'static str,
    /// The server's limit that applies.
    pub limit: String,
    /// What it saw.
    pub seen: Seen,
    /// After how long (from the client's last byte of the head).
    pub after: Duration,
}

/// Runs the four clients at once and reports them.
pub fn run(rt: &Runtime) -> Result<Vec<TimeoutCase>, ExperimentError> {
    let config = config();
    let server = RunningServer::start(rt, config.clone(), None)?;
    let addr = server.addr;
    let patience = Duration::from_secs(5);
    let cases = thread::scope(|scope| {
        let slow_head = scope.spawn(move || {
            let Some(mut c) = raw::connect(addr, patience) else {
                return (Seen::Refused, Duration::ZERO);
            };
            let _ = c.write_all(b"GET /gophers HTTP/1.1\r\nHost: tour\r\nX-Half: ");
            let start = Instant::now();
            (raw::read_response(&mut c), start.elapsed())
        });
        let stalled_body = scope.spawn(move || {
            raw::exchange(
                addr,
                b"POST /echo HTTP/1.1\r\nHost: tour\r\nContent-Length: 100\r\n\r\n0123456789",
                patience,
            )
        });
        let trickled_body = scope.spawn(move || {
            let Some(mut c) = raw::connect(addr, patience) else {
                return (Seen::Refused, Duration::ZERO);
            };
            let _ =
                c.write_all(b"POST /echo HTTP/1.1\r\nHost: tour\r\nContent-Length: 1000\r\n\r\n");
            let start = Instant::now();
            let done = AtomicBool::new(false);
            let mut writer = c.try_clone().ok();
            thread::scope(|inner| {
                inner.spawn(|| {
                    // One byte every 100 ms: never idle for 300 ms, but far past 1 s in all.
                    while let Some(w) = writer.as_mut() {
                        if done.load(Ordering::Relaxed)
                            || start.elapsed() > patience
                            || w.write_all(b"x").is_err()
                        {
                            break;
                        }
                        thread::sleep(Duration::from_millis(100));
                    }
                });
                let seen = raw::read_response(&mut c);
                done.store(true, Ordering::Relaxed);
                (seen, start.elapsed())
            })
        });
        let ordinary = scope.spawn(move || {
            thread::sleep(Duration::from_millis(100));
            raw::get(addr, "/gophers", patience)
        });
        let join = |h: thread::ScopedJoinHandle<'_, (Seen, Duration)>| {
            h.join().unwrap_or((Seen::Nothing, Duration::ZERO))
        };
        [
            (
                "sends half a request head, then nothing",
                format!("header read {}", ms(config.header_read)),
                join(slow_head),
            ),
            (
                "sends the head and 10 of 100 body bytes",
                format!("body idle {}", ms(config.body_idle)),
                join(stalled_body),
            ),
            (
                "trickles the body, a byte every 100 ms",
                format!("body total {}", ms(config.body_total)),
                join(trickled_body),
            ),
            (
                "an ordinary GET /gophers, meanwhile",
                "-".to_string(),
                join(ordinary),
            ),
        ]
        .map(|(client, limit, (seen, after))| TimeoutCase {
            client,
            limit,
            seen,
            after,
        })
    });
    server.stop(rt);
    Ok(cases.to_vec())
}

/// The section's table.
pub fn table(cases: &[TimeoutCase]) -> Table {
    let mut table = Table::new(["client", "limit", "the client saw", "after"]).left_columns(3);
    for case in cases {
        table.row([
            case.client.to_string(),
            case.limit.clone(),
            case.seen.brief(),
            ms(case.after),
        ]);
    }
    table
}
