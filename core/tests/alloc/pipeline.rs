//! A pipeline call whose first attempt succeeds allocates nothing, with every layer present,
//! counted by the allocator in `support`.

use std::future::{ready, Ready};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use crate::support::{allocations_and_output, poll_once};
use tailguard::breaker::CircuitBreaker;
use tailguard::hedge::Hedge;
use tailguard::pipeline::{Limiter, LimiterPermit, LimiterRejected, Outcome, Pipeline};
use tailguard::retry::RetryBudget;
use tailguard::time::{ManualTimer, Timer};

/// A concurrency limit of `n` slots, allocation-free.
#[derive(Clone)]
struct Slots(Arc<AtomicUsize>);

struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

impl LimiterPermit for Slot {
    fn finish(self, _: Outcome, _: Duration) {}
}

impl Limiter for Slots {
    type Permit = Slot;
    type Acquire<'a> = Ready<Result<Slot, LimiterRejected>>;

    fn acquire_at(&self, _: Instant, _: Option<Instant>) -> Self::Acquire<'_> {
        let taken = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        ready(match taken {
            Ok(_) => Ok(Slot(self.0.clone())),
            Err(_) => Err(LimiterRejected::new("full")),
        })
    }
}

#[test]
fn a_ready_call_through_every_layer_allocates_nothing() {
    let timer = ManualTimer::new();
    let slots = Slots(Arc::new(AtomicUsize::new(4)));
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
