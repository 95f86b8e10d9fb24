//! The core's time, timeout, IO-timeout and shutdown pieces under several executors — smol,
//! `futures::executor` (block_on and a thread pool) and tokio (current-thread and multi-thread) —
//! with both real timers. Futures are spawned onto multi-threaded executors, so they must be
//! `Send`.
//!
//! These use real clocks on purpose (the point is that the real timers work under each
//! executor), with short limits and generous bounds.

use std::future::Future;
use std::time::{Duration, Instant};

use futures::io::AsyncReadExt;
use tailguard::io::TimeoutIo;
use tailguard::shutdown::{Shutdown, TaskTracker};
use tailguard::time::{AsyncIoTimer, FuturesTimer, HeapTimer, Timer};
use tailguard::timeout::{timeout_with, Deadline, FutureExt};

#[macro_use]
mod executors;

const SHORT: Duration = Duration::from_millis(20);
const GENEROUS: Duration = Duration::from_secs(5);

/// Every scenario, on one timer; panics on the first failure.
async fn scenarios<T: Timer>(timer: T) {
    // A ready future wins.
    assert_eq!(timeout_with(timer.clone(), SHORT, async { 5 }).await, Ok(5));

    // A slow future is cut at its limit, not much later.
    let start = Instant::now();
    let slow = timer.sleep(Duration::from_secs(30));
    assert!(slow.timeout_with(timer.clone(), SHORT).await.is_err());
    let took = start.elapsed();
    assert!(took >= SHORT && took < GENEROUS, "{took:?}");

    // A future that finishes after a few polls is not cut.
    let inner = timer.sleep(Duration::from_millis(5));
    assert!(inner.timeout_with(timer.clone(), GENEROUS).await.is_ok());

    // Nested deadlines share one budget.
    let request = Deadline::after_with(timer.clone(), Duration::from_millis(60));
    let mut steps = 0;
    while request
        .child_with(timer.clone(), GENEROUS)
        .run_with(timer.clone(), timer.sleep(SHORT))
        .await
        .is_ok()
    {
        steps += 1;
        assert!(steps < 10);
    }
    assert!((1..=3).contains(&steps), "{steps}");

    // IO limits trip on a silent peer.
    let (reader, _writer) = piper::pipe(16);
    let mut io = TimeoutIo::with_timer(reader, timer.clone()).read_idle(SHORT);
    let mut buf = [0u8; 4];
    let err = io.read(&mut buf).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);

    // Shutdown reaches a worker that waits on the signal, and the tracker drains.
    let shutdown = Shutdown::new();
    let tracker = TaskTracker::new();
    let signal = shutdown.signal();
    let worker = tracker.track_future(async move {
        signal.await;
        "stopped"
    });
    let drain = tracker.graceful_with(timer.clone(), GENEROUS);
    shutdown.trigger();
    let (stopped, drained) = futures::join!(worker, drain);
    assert_eq!(stopped, "stopped");
    assert_eq!(drained, Ok(()));

    // A stuck task makes the drain report it.
    let _stuck = tracker.track();
    let err = tracker
        .graceful_with(timer.clone(), SHORT)
        .await
        .unwrap_err();
    assert_eq!(err.remaining, 1);
}

every_executor!(4);
