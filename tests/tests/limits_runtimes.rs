//! The overload limits (bulkhead, rate limiter) under several executors — smol,
//! `futures::executor` (block_on and a thread pool) and tokio (current-thread and multi-thread)
//! — with every real timer: waiters are woken by whichever executor polls them, deadlines fire
//! on the real clock, and dropped waiters give everything back.
//!
//! Real clocks on purpose (the point is that the real timers and wakers work under each
//! executor), with short limits and generous bounds; only shapes are judged.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tailguard::bulkhead::{Bulkhead, QueueOrder, Reason};
use tailguard::rate::RateLimiter;
use tailguard::time::{AsyncIoTimer, FuturesTimer, HeapTimer, Timer};
use tailguard::timeout::FutureExt;

#[macro_use]
mod executors;

const SHORT: Duration = Duration::from_millis(20);
const GENEROUS: Duration = Duration::from_secs(10);

async fn bulkhead_scenarios<T: Timer>(timer: T) {
    for order in [QueueOrder::Fifo, QueueOrder::Lifo] {
        let bulkhead = Bulkhead::builder()
            .max_concurrent(2)
            .max_queue(8)
            .queue_order(order)
            .build_with(timer.clone())
            .unwrap();
        // Six callers, two at a time: the four who wait are woken as slots free up.
        let inside = AtomicU32::new(0);
        let deadline = timer.now() + GENEROUS;
        let call = |_| async {
            let _permit = bulkhead
                .acquire_until(deadline)
                .await
                .expect("a slot in time");
            assert!(inside.fetch_add(1, Ordering::SeqCst) < 2);
            timer.sleep(Duration::from_millis(5)).await;
            inside.fetch_sub(1, Ordering::SeqCst);
        };
        futures::future::join_all((0..6).map(call)).await;

        // With both slots held, a waiter gives up at its deadline, not much later.
        let held = (
            bulkhead.try_acquire().unwrap(),
            bulkhead.try_acquire().unwrap(),
        );
        let start = Instant::now();
        let refused = bulkhead
            .acquire_until(timer.now() + SHORT)
            .await
            .unwrap_err();
        assert_eq!(refused.reason(), Reason::Deadline);
        let took = start.elapsed();
        assert!(took >= SHORT && took < GENEROUS, "{took:?}");

        // A waiter dropped by an outer timeout leaves the queue.
        let waiting = bulkhead.acquire_until(timer.now() + GENEROUS);
        assert!(waiting.timeout_with(timer.clone(), SHORT).await.is_err());
        assert_eq!(bulkhead.metrics().queued, 0);
        drop(held);
        assert_eq!(bulkhead.metrics().in_flight, 0);
    }
}

async fn rate_scenarios<T: Timer>(timer: T) {
    // 200 a second, evenly spaced: five calls take at least four intervals (20 ms).
    let limiter = RateLimiter::builder()
        .rate(200, Duration::from_secs(1))
        .build_with(timer.clone())
        .unwrap();
    let start = Instant::now();
    for _ in 0..5 {
        limiter
            .acquire_until(timer.now() + GENEROUS)
            .await
            .expect("a token in time");
    }
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(20) && took < GENEROUS,
        "{took:?}"
    );
    // A deadline shorter than the next interval is refused at once.
    limiter.try_acquire().ok();
    let refused = limiter
        .acquire_until(timer.now() + Duration::from_micros(100))
        .await
        .unwrap_err();
    assert_eq!(refused.reason(), tailguard::rate::Reason::Deadline);
}

async fn scenarios<T: Timer>(timer: T) {
    bulkhead_scenarios(timer.clone()).await;
    rate_scenarios(timer).await;
}

every_executor!(3);
