//! Tour section 1: every wait has a limit. Three misbehaving clients and one ordinary one, at
//! once, against a server with short limits.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::out::{Out, Table};
use super::raw::{self, Seen};
use super::RunningServer;
use crate::experiment::ExperimentError;
use crate::ms;
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
    /// That limit's duration (`None` for the ordinary client).
    pub limit_after: Option<Duration>,
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
                format!("header read {}", ms::text(config.header_read)),
                Some(config.header_read),
                join(slow_head),
            ),
            (
                "sends the head and 10 of 100 body bytes",
                format!("body idle {}", ms::text(config.body_idle)),
                Some(config.body_idle),
                join(stalled_body),
            ),
            (
                "trickles the body, a byte every 100 ms",
                format!("body total {}", ms::text(config.body_total)),
                Some(config.body_total),
                join(trickled_body),
            ),
            (
                "an ordinary GET /gophers, meanwhile",
                "-".to_string(),
                None,
                join(ordinary),
            ),
        ]
        .map(|(client, limit, limit_after, (seen, after))| TimeoutCase {
            client,
            limit,
            limit_after,
            seen,
            after,
        })
    });
    server.stop(rt);
    Ok(cases.to_vec())
}

/// Whether a misbehaving client was cut at its limit: closed or answered with an error, no
/// sooner than the limit and no later than half the limit (at least 250 ms) after it.
fn cut_at_limit(case: &TimeoutCase, limit: Duration) -> bool {
    let cut =
        matches!(case.seen, Seen::Closed) || matches!(case.seen, Seen::Response(s, _) if s >= 400);
    let slack = (limit / 2).max(Duration::from_millis(250));
    cut && case.after + Duration::from_millis(5) >= limit && case.after <= limit + slack
}

/// What the table shows, in words: for each misbehaving client whether it was cut at its own
/// limit, and whether the ordinary request was answered.
pub fn summary(cases: &[TimeoutCase]) -> String {
    let mut cut = Vec::new();
    let mut not_cut = Vec::new();
    let mut ordinary = Vec::new();
    for case in cases {
        match case.limit_after {
            Some(limit) if cut_at_limit(case, limit) => cut.push(format!(
                "the client that {} ({} after {}; {})",
                case.client,
                case.seen.brief(),
                ms::text(case.after),
                case.limit
            )),
            Some(_) => not_cut.push(format!(
                "the client that {} was not cut at its limit ({}): it saw {} after {}",
                case.client,
                case.limit,
                case.seen.brief(),
                ms::text(case.after)
            )),
            None => ordinary.push(match &case.seen {
                Seen::Response(200, _) => format!(
                    "The ordinary request was answered meanwhile, after {}.",
                    ms::text(case.after)
                ),
                other => format!(
                    "The ordinary request was not answered: it saw {} after {}.",
                    other.brief(),
                    ms::text(case.after)
                ),
            }),
        }
    }
    let mut text = String::new();
    if !cut.is_empty() {
        text.push_str(&format!("Cut at its own limit: {}. ", cut.join("; ")));
    }
    if !not_cut.is_empty() {
        text.push_str(&format!("Not as expected: {}. ", not_cut.join("; ")));
    }
    text.push_str(&ordinary.join(" "));
    text.trim_end().to_string()
}

/// The section's table.
pub fn table(cases: &[TimeoutCase]) -> Table {
    let mut table = Table::new(["client", "limit", "the client saw", "after"]).left_columns(3);
    for case in cases {
        table.row([
            case.client.to_string(),
            case.limit.clone(),
            case.seen.brief(),
            ms::text(case.after),
        ]);
    }
    table
}

/// The section: what the limits are for, the four clients' table, and what it shows (the same
/// at every length: `_quick` is for the shape every section shares).
pub fn section(out: &Out, rt: &Runtime, _quick: bool) -> Result<(), ExperimentError> {
    let config = config();
    out.para(&format!(
        "A server waits on its clients in several places: for the request head, for each \
         chunk of the body, for the whole body. Without a limit on every wait, a client that \
         is slow or stalls (or an attacker doing it on purpose, as in Slowloris) holds a \
         connection forever. The demo server bounds each wait with tailguard: a read deadline \
         on the connection for the head ({}), a timeout per body chunk ({}) and one deadline \
         for the whole body ({}). Four clients at once, one of them well-behaved:",
        ms::text(config.header_read),
        ms::text(config.body_idle),
        ms::text(config.body_total)
    ));
    let cases = run(rt)?;
    out.table(&table(&cases));
    out.note(&summary(&cases));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(limit_ms: Option<u64>, seen: Seen, after_ms: u64) -> TimeoutCase {
        TimeoutCase {
            client: "stalls",
            limit: limit_ms.map_or("-".into(), |l| format!("limit {l} ms")),
            limit_after: limit_ms.map(Duration::from_millis),
            seen,
            after: Duration::from_millis(after_ms),
        }
    }

    #[test]
    fn the_summary_says_what_the_table_shows() {
        let ok = summary(&[
            case(
                Some(300),
                Seen::Response(408, "slow (body_idle)".into()),
                302,
            ),
            case(None, Seen::Response(200, "hi".into()), 3),
        ]);
        assert_eq!(
            ok,
            "Cut at its own limit: the client that stalls (408 Request Timeout (body_idle) \
             after 302 ms; limit 300 ms). The ordinary request was answered meanwhile, after \
             3.0 ms."
        );
        // Cut far too late, or never, or the ordinary request failing: said so.
        let bad = summary(&[
            case(Some(300), Seen::Response(408, String::new()), 2000),
            case(Some(300), Seen::Nothing, 5000),
            case(None, Seen::Closed, 3),
        ]);
        assert!(!bad.contains("Cut at its own limit"), "{bad}");
        assert!(
            bad.contains(
                "was not cut at its limit (limit 300 ms): it saw 408 Request Timeout after 2000 ms"
            ),
            "{bad}"
        );
        assert!(
            bad.contains("it saw nothing (gave up waiting) after 5000 ms"),
            "{bad}"
        );
        assert!(
            bad.contains("The ordinary request was not answered"),
            "{bad}"
        );
    }

    #[test]
    fn the_settings_are_valid() {
        assert!(config().validate().is_ok());
    }
}
