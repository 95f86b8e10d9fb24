//! A Rust instance of a fleet sharing one retry budget, driven line by line over stdin, for
//! the Python fleet's interop test (`tests/python/test_fleet_interop.py`): a budget of ratio
//! 0.1 with no floor (`min_per_second(0)`), shared as `payments` through the Redis at the URL
//! given.
//!
//! ```text
//! cargo run -p tailguard-fleet --example budget_peer -- redis://127.0.0.1:6379/ test rust-1
//! ```
//!
//! Arguments: the Redis URL, the namespace, the instance id, and optionally the interval in
//! milliseconds (default 50). Commands, one per line, each answered with one line:
//! `deposit N` records N calls, `withdraw N` asks for N retries, `state` reports; each answers
//! `budget {granted} {available} {mode} {syncs}` (`granted`: retries the command got).
//! `quit` (or the end of stdin) leaves the fleet and exits.

use std::io::{BufRead, Write};
use std::time::Duration;

use tailguard::retry::RetryBudget;
use tailguard_fleet::Fleet;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, namespace, id, rest @ ..] = args.as_slice() else {
        return Err("usage: budget_peer URL NAMESPACE INSTANCE_ID [INTERVAL_MS]".into());
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
    let budget = RetryBudget::builder()
        .ratio(0.1)
        .min_per_second(0)
        .window(Duration::from_secs(60))
        .build()?;
    fleet.share_budget("payments", &budget)?;
    let stdout = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let mut words = line.split_whitespace();
        let (command, count) = (words.next().unwrap_or(""), words.next());
        let count: usize = count.map_or(Ok(0), str::parse)?;
        let mut granted = 0;
        match command {
            "deposit" => (0..count).for_each(|_| budget.deposit()),
            "withdraw" => granted = (0..count).filter(|_| budget.try_withdraw()).count(),
            "state" => {}
            "quit" => break,
            other => return Err(format!("unknown command {other:?}").into()),
        }
        let status = fleet.status();
        let mut out = stdout.lock();
        writeln!(
            out,
            "budget {granted} {} {} {}",
            budget.available_at(std::time::Instant::now()),
            status.mode,
            status.syncs
        )?;
        out.flush()?;
    }
    Ok(())
}
