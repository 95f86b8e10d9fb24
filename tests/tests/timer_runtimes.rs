//! The `Timer` contract of every real timer (`AsyncIoTimer`, `FuturesTimer`, `HeapTimer`) under
//! several executors — smol (`block_on` and spawned on its async-executor), `futures::executor`
//! (block_on and a thread pool), tokio (current-thread and multi-thread): a sleep completes no
//! earlier than its deadline, an earlier deadline registered after later ones still fires on
//! time, a sleep whose earlier neighbour was dropped still fires, `reset` moves a registered
//! sleep, and timeouts whose futures wait and then are ready are not cut.
//!
//! Real clocks on purpose (the point is the timers' drivers under each executor), with short
//! sleeps and generous bounds; only shapes are judged.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use tailguard::time::{AsyncIoTimer, FuturesTimer, HeapTimer, Timer};
use tailguard::timeout::timeout_with;

#[macro_use]
mod executors;

const GENEROUS: Duration = Duration::from_secs(10);
const HOUR: Duration = Duration::from_secs(3600);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Polls `sleep` once, so that it registers; it must not be ready.
async fn register<S: Future + Unpin>(sleep: &mut S) {
    let mut sleep = Pin::new(sleep);
    futures::future::poll_fn(|cx| {
        assert!(sleep.as_mut().poll(cx).is_pending(), "not due yet");
        Poll::Ready(())
    })
    .await;
}

async fn scenarios<T: Timer>(timer: T) {
    let start = Instant::now();

    // Many sleeps at once, in mixed order: none completes before its deadline.
    let sleeps = (0..100u64).map(|i| {
        let deadline = start + Duration::from_micros((i * 7_919) % 10_000);
        let timer = timer.clone();
        async move {
            timer.sleep_until(deadline).await;
            assert!(Instant::now() >= deadline);
        }
    });
    futures::future::join_all(sleeps).await;

    // An earlier deadline registered after later ones still fires on time.
    let mut later: Vec<_> = (1..=20).map(|i| timer.sleep(HOUR + ms(i))).collect();
    for sleep in &mut later {
        register(sleep).await;
    }
    let soon = Instant::now() + ms(5);
    timer.sleep_until(soon).await;
    assert!(Instant::now() >= soon);
    assert!(Instant::now() - soon < GENEROUS);
    drop(later);

    // A sleep whose earlier neighbour was dropped still fires.
    let mut first = timer.sleep(ms(3));
    register(&mut first).await;
    let second = Instant::now() + ms(10);
    let mut then = timer.sleep_until(second);
    register(&mut then).await;
    drop(first);
    then.await;
    assert!(Instant::now() >= second);

    // `reset` moves a registered sleep, earlier.
    let mut sleep = timer.sleep(HOUR);
    register(&mut sleep).await;
    let moved = Instant::now() + ms(5);
    timer.reset(&mut sleep, moved);
    sleep.await;
    assert!(Instant::now() >= moved);
    assert!(Instant::now() - moved < GENEROUS);

    // Timeouts whose futures wait, then are ready: none is cut.
    let calls = (0..50u64).map(|i| {
        let timer = timer.clone();
        async move {
            let waits = async { timer.sleep(ms(i % 4)).await };
            assert!(timeout_with(timer.clone(), HOUR, waits).await.is_ok());
        }
    });
    futures::future::join_all(calls).await;

    // And one that fires among them.
    let long = timer.sleep(HOUR);
    let started = Instant::now();
    assert!(timeout_with(timer.clone(), ms(5), long).await.is_err());
    assert!(started.elapsed() >= ms(5));
    assert!(start.elapsed() < GENEROUS);
}

every_executor!(4);
