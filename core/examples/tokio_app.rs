//! tailguard in a tokio program: the core has no tokio dependency, and needs none. Give it
//! tokio's timer through a five-line `Timer` impl, and every policy runs on tokio's clock:
//!
//! 1. a timeout around a tokio future;
//! 2. retry policies running as tokio tasks (`run_owned` owns what the task needs);
//! 3. a circuit breaker shared by tasks (`call_owned`), opening on an outage and closing
//!    again once the dependency is back.
//!
//! It prints what happened and exits 1 if something did not go as planned.
//!
//! Run: `cargo run -p tailguard --example tokio_app`
//!
//! Everything here takes the timer explicitly, so this builds with tailguard's default features
//! off (`default-features = false`): a tokio program need not compile async-io at all. (The
//! default `HeapTimer` does work under tokio, on a thread of its own; tokio's timer also
//! follows `tokio::time::pause` in tests.)

use std::error::Error;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tailguard::backoff::Backoff;
use tailguard::breaker::{CallError, CircuitBreakerBuilder, State};
use tailguard::retry::Retry;
use tailguard::time::Timer;
use tailguard::timeout::FutureExt;

/// Sleeps on tokio's timer; needs a tokio runtime with time enabled.
#[derive(Debug, Clone, Copy, Default)]
struct TokioTimer;

impl Timer for TokioTimer {
    // `Timer::Sleep` must be `Unpin`, and tokio's `Sleep` is not: box it.
    type Sleep = Pin<Box<tokio::time::Sleep>>;

    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn sleep_until(&self, deadline: Instant) -> Self::Sleep {
        Box::pin(tokio::time::sleep_until(deadline.into()))
    }

    fn reset(&self, sleep: &mut Self::Sleep, deadline: Instant) {
        sleep.as_mut().reset(deadline.into()); // reuses the allocation and the registration
    }
}

/// A stand-in for a remote dependency: its first `failures` calls fail, then it answers after
/// 5 ms. Clones share the count.
#[derive(Clone)]
struct Dependency {
    calls: Arc<AtomicU32>,
    failures: u32,
}

impl Dependency {
    fn new(failures: u32) -> Self {
        Dependency {
            calls: Arc::default(),
            failures,
        }
    }

    async fn fetch(self) -> Result<u32, String> {
        let call = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
        if call <= self.failures {
            Err(format!("call {call}: connection refused"))
        } else {
            Ok(call)
        }
    }

    fn calls(&self) -> u32 {
        self.calls.load(Ordering::Relaxed)
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn Error>> {
    // 1. A timeout on tokio's timer, around a tokio future that would take 10 s.
    let slow = tokio::time::sleep(Duration::from_secs(10));
    match slow
        .timeout_with(TokioTimer, Duration::from_millis(20))
        .await
    {
        Err(elapsed) => println!("1. a 10 s sleep under a 20 ms timeout: {elapsed}"),
        Ok(()) => return Err("the timeout did not fire".into()),
    }

    // 2. Three tasks, each calling its own dependency that fails twice, under one policy.
    let policy = Retry::with_timer(TokioTimer)
        .max_attempts(4)
        .backoff(Backoff::exponential(Duration::from_millis(10)).build()?)
        .attempt_timeout(Duration::from_secs(1))
        .on_retry(|event| println!("   retry: {}; next in {:.1?}", event.error, event.delay))
        .build()?;
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            let dependency = Dependency::new(2);
            // `run_owned`: the future owns a clone of the policy, so tokio can spawn it.
            tokio::spawn(policy.run_owned(move || dependency.clone().fetch()))
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let answer = task.await?;
        println!("2. task {i}: {answer:?}");
        answer.map_err(|e| format!("task {i} gave up: {e}"))?;
    }

    // 3. A dependency that is down, behind a breaker that opens after 5 failures in a row.
    // (`CircuitBreaker::builder()` is the same builder, but needs the default timer's feature.)
    let breaker = CircuitBreakerBuilder::new()
        .consecutive_failures(5)
        .open_duration(Duration::from_millis(500))
        .half_open_calls(1)
        .on_transition(|t| println!("   breaker: {t}"))
        .build_with(TokioTimer)?;
    let down = Dependency::new(u32::MAX);
    let mut rejected = 0;
    for _ in 0..20 {
        let call = breaker.call_owned({
            let down = down.clone();
            move || down.fetch()
        });
        if let Err(CallError::Rejected(_)) = tokio::spawn(call).await? {
            rejected += 1;
        }
    }
    let (calls, state) = (down.calls(), breaker.state());
    println!("3. 20 calls: {calls} reached the dependency, {rejected} failed fast; {state}");
    // (5 and 15, unless this machine stalls for the whole open duration in between.)
    if state != State::Open || calls + rejected != 20 || rejected < 10 {
        return Err("the breaker did not open after 5 failures".into());
    }

    // The dependency is back; once the open duration has passed, one probe closes the breaker.
    let back = Dependency::new(0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let probe = breaker.call_owned(move || back.fetch()).await;
    println!("   probe: {probe:?}; breaker {}", breaker.state());
    if breaker.state() != State::Closed {
        return Err("the breaker did not close".into());
    }
    Ok(())
}
