//! A pipeline call whose first attempt succeeds allocates nothing, with every layer present,
//! counted by the allocator in `support`.

use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Duration;

use crate::support::{allocations_and_output, poll_once};
use tailguard::breaker::CircuitBreaker;
use tailguard::hedge::Hedge;
use tailguard::pipeline::Pipeline;
use tailguard::retry::RetryBudget;
use tailguard::time::{ManualTimer, Timer};

#[path = "../common/slots.rs"]
mod slots;
use slots::Slots;

#[test]
fn a_ready_call_through_every_layer_allocates_nothing() {
    let timer = ManualTimer::new();
    let slots = Slots::new(4);
    let pipeline = Pipeline::with_timer(timer.clone())
        .total_timeout(Duration::from_secs(1))
        .retry_budget(RetryBudget::builder().build_with(timer.clone()).unwrap())
        .max_attempts(3)
        .hedge(Hedge::builder().build().unwrap())
        .breaker(CircuitBreaker::builder().build_with(timer.clone()).unwrap())
        .limiter(slots.clone())
        .attempt_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    // Warm up: the breaker's per-thread stripe, the budget's and the window's first slices.
    for _ in 0..3 {
        let _ = poll_once(pipeline.call(|_| async { Ok::<_, std::io::Error>(1) }));
    }
    for _ in 0..100 {
        let (allocs, out) = allocations_and_output(|| {
            poll_once(pipeline.call(|a| async move { Ok::<_, std::io::Error>(a.number()) }))
        });
        assert!(matches!(out, Poll::Ready(Ok(1))));
        assert_eq!(allocs, 0);
        timer.advance(Duration::from_millis(7));
    }
    assert_eq!(slots.0.load(Ordering::Acquire), 4);
    assert_eq!(timer.pending_sleeps(), 0);
}

#[test]
fn a_ready_call_through_no_layer_allocates_nothing() {
    let timer = ManualTimer::new();
    let pipeline = Pipeline::with_timer(timer.clone()).build().unwrap();
    let (allocs, out) = allocations_and_output(|| {
        poll_once(pipeline.call(|_| async { Ok::<_, std::io::Error>(1) }))
    });
    assert!(matches!(out, Poll::Ready(Ok(1))));
    assert_eq!(allocs, 0);
    let _ = timer.now();
}
