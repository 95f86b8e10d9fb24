//! A Rust instance of a fleet driven line by line over stdin, for the Python fleet's interop
//! test (`tests/python/test_fleet_interop.py`): one breaker named `dependency` (a count window
//! of 20, at least 10 calls, a 50% failure rate, open 60 s) shared through the Redis at the
//! URL given.
//!
//! ```text
//! cargo run -p tailguard-fleet --example breaker_peer -- redis://127.0.0.1:6379/ test rust-1
//! ```
//!
//! Arguments: the Redis URL, the namespace, the instance id, and optionally the interval in
//! milliseconds (default 50) and `time` for a time window of 60 s (in 10 buckets) instead of
//! the count window. Commands, one per line, each answered with one line:
//! `fail N` and `ok N` record N failed or successful calls (a refused call records nothing)
//! and `state` reports; both answer `state {state} {mode} {syncs} {fleet_trips}`. `quit` (or
//! the end of stdin) leaves the fleet and exits.

use std::io::{BufRead, Write};
use std::time::Duration;

use tailguard::breaker::{CircuitBreaker, Outcome};
use tailguard_fleet::Fleet;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, namespace, id, rest @ ..] = args.as_slice() else {
        return Err("usage: breaker_peer URL NAMESPACE INSTANCE_ID [INTERVAL_MS [time]]".into());
    };
    let interval = match rest.first() {
        Some(ms) => Duration::from_millis(ms.parse()?),
        None => Duration::from_millis(50),
    };
    let fleet = Fleet::builder(url)
        .namespace(namespace)
        .instance_id(id)
        .interval(interval)
        .io_timeout(interval.min(Duration::from_millis(40)))
        .build()?;
    let builder = CircuitBreaker::builder().name("dependency");
    let builder = match rest.get(1).map(String::as_str) {
        Some("time") => builder.time_window(Duration::from_secs(60), 10),
        Some(other) => return Err(format!("unknown window {other:?}").into()),
        None => builder.count_window(20),
    };
    let breaker = builder
        .minimum_calls(10)
        .failure_rate(0.5)
        .open_duration(Duration::from_secs(60))
        .build()?;
    fleet.share(&breaker)?;
    let stdout = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let mut words = line.split_whitespace();
        let (command, count) = (words.next().unwrap_or(""), words.next());
        let count: usize = count.map_or(Ok(0), str::parse)?;
        match command {
            "fail" | "ok" => {
                let outcome = if command == "fail" {
                    Outcome::Failure
                } else {
                    Outcome::Success
                };
                for _ in 0..count {
                    if let Ok(permit) = breaker.try_acquire() {
                        permit.record(outcome);
                    }
                }
            }
            "state" => {}
            "quit" => break,
            other => return Err(format!("unknown command {other:?}").into()),
        }
        let status = fleet.status();
        let mut out = stdout.lock();
        writeln!(
            out,
            "state {} {} {} {}",
            breaker.state(),
            status.mode,
            status.syncs,
            status.fleet_trips
        )?;
        out.flush()?;
    }
    Ok(())
}
