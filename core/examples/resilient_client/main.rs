//! An HTTP client call through three layers, against two local replicas that misbehave on cue:
//!
//! ```text
//! Retry            a failed call is tried again, after a backoff; a rejection is final
//!  └ CircuitBreaker  after 3 failures in a row, calls fail fast for a while
//!     └ Hedge          slow after 50 ms, or failed: send the call to the other replica too
//!        └ HTTP GET      hyper on smol, a fresh connection per attempt
//! ```
//!
//! Each step of the script sets the replicas' behaviour, makes one call and prints what every
//! layer did; the program exits 1 if a layer did not do what the step expects.
//!
//! Run: `cargo run -p tailguard --example resilient_client`

use std::error::Error;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Empty;
use hyper::client::conn::http1;
use hyper::Request;
use smol::net::TcpStream;
use smol_hyper::rt::FuturesIo;
use tailguard::backoff::Backoff;
use tailguard::breaker::{CallError, CircuitBreaker, State};
use tailguard::hedge::{Hedge, HedgeError};
use tailguard::retry::{AttemptError, Decision, Retry};
use tailguard::time::{AsyncIoTimer, Timer};

mod replicas;
use replicas::{Mode, Replica};

/// One GET to a replica: its status if 2xx, else an error naming the replica. The connection
/// is driven by a task dropped with this future, so an attempt the hedge abandons (or the
/// retry policy times out) closes its connection at once.
async fn get(replica: &Replica) -> Result<String, String> {
    let name = replica.name;
    let exchange = async {
        let stream = TcpStream::connect(replica.addr).await?;
        let (mut sender, conn) = http1::handshake(FuturesIo::new(stream)).await?;
        let _conn = smol::spawn(conn);
        let request = Request::get("/")
            .header("host", name)
            .body(Empty::<Bytes>::new())?;
        Ok::<_, Box<dyn Error>>(sender.send_request(request).await?.status())
    };
    match exchange.await {
        Ok(status) if status.is_success() => Ok(format!("{name}: {status}")),
        Ok(status) => Err(format!("{name}: {status}")),
        Err(e) => Err(format!("{name}: {e}")),
    }
}

/// How one attempt through the breaker and the hedge fails.
type CallFailure = CallError<HedgeError<String>>;

/// An attempt's failure in a line: the breaker's refusal, each hedged request's error, or the
/// retry policy's time limit.
fn describe(error: &AttemptError<CallFailure>) -> String {
    match error.inner() {
        Some(CallError::Rejected(rejected)) => format!("rejected: {rejected}"),
        Some(CallError::Inner(hedged)) => hedged.errors().join(", "),
        None => error.to_string(), // timed out
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    smol::block_on(async {
        let replicas = [
            Replica::start("replica 0").await?,
            Replica::start("replica 1").await?,
        ];

        let hedge = Hedge::builder()
            .fixed_delay(Duration::from_millis(50))
            .build()?;
        let breaker = CircuitBreaker::builder()
            .consecutive_failures(3)
            .open_duration(Duration::from_millis(300))
            .half_open_calls(1)
            .on_transition(|t| println!("    breaker: {} -> {} ({:?})", t.from, t.to, t.reason))
            .build()?;
        let retry = Retry::builder()
            .max_attempts(3)
            .attempt_timeout(Duration::from_secs(2)) // bounds each attempt, hedges included
            .backoff(Backoff::exponential(Duration::from_millis(20)).build()?)
            // The replicas' errors are worth another try; the breaker's refusal is not.
            .classify(|e: &CallFailure| match e {
                CallError::Rejected(_) => Decision::Stop,
                CallError::Inner(_) => Decision::Retry,
            })
            .on_retry(|event| {
                let (attempt, delay) = (event.attempt, event.delay);
                println!(
                    "    retry: attempt {attempt} failed: {}; next in {delay:.1?}",
                    describe(event.error)
                );
            })
            .build()?;

        // One call through every layer: retry(breaker(hedge(GET))). The hedge sends its first
        // attempt to replica 0 and the next, if any, to replica 1.
        let replicas = &replicas;
        let call = || {
            retry.run(|| {
                breaker.call(|| {
                    let mut turn = 0;
                    hedge.run(move |_| {
                        turn += 1;
                        get(&replicas[(turn - 1) % replicas.len()])
                    })
                })
            })
        };

        use Mode::*;
        #[rustfmt::skip] // a table: one step a line
        let script = [
            ("1. both replicas up", [Up, Up], 0, "ok: replica 0"),
            ("2. replica 0 stalls: the hedge answers", [Stall, Up], 0, "ok: replica 1"),
            ("3. both fail once: the hedge fails over, then a retry", [FailOnce, FailOnce], 0, "ok: replica 0"),
            ("4. both down: retries give up, the breaker opens", [Down, Down], 0, "gave up after 3"),
            ("5. still down: the breaker fails fast, sends nothing", [Down, Down], 0, "rejected"),
            ("6. both up, 300 ms later: a probe closes the breaker", [Up, Up], 300, "ok: replica 0"),
        ];
        let mut surprises = Vec::new();
        for (what, modes, pause_ms, expected) in script {
            println!("{what}");
            AsyncIoTimer.sleep(Duration::from_millis(pause_ms)).await;
            for (replica, mode) in replicas.iter().zip(modes) {
                replica.set(mode);
            }
            let (before, start) = (replicas.each_ref().map(Replica::requests), Instant::now());
            let outcome = match call().await {
                Ok(reply) => format!("ok: {reply}"),
                Err(e) => {
                    let (n, why, last) = (e.attempts(), e.reason(), describe(e.last_error()));
                    format!("gave up after {n} attempt(s), {why}: {last}")
                }
            };
            println!("    {outcome}, in {:.0?}", start.elapsed());
            let after = replicas.each_ref().map(Replica::requests);
            let sent = [after[0] - before[0], after[1] - before[1]];
            let (state, hedges) = (breaker.state(), hedge.stats());
            let (hedged, won) = (hedges.hedges_sent, hedges.hedges_won);
            println!("    requests to replicas 0, 1: {sent:?}; breaker {state}; hedges so far: {hedged} sent, {won} won");
            if !outcome.contains(expected) {
                surprises.push(what);
            }
        }
        if surprises.is_empty() && breaker.state() == State::Closed {
            Ok(())
        } else {
            Err(format!("unexpected outcomes: {surprises:?}").into())
        }
    })
}
