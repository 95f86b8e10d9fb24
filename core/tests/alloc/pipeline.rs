//! A pipeline call whose first attempt succeeds allocates nothing, with every layer present
//! (and with an adaptive attempt timeout: nothing more than with a fixed one),
//! counted by the allocator in `support`.

use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Duration;

use crate::support::{allocations_and_output, poll_once};
use tailguard::adaptive_timeout::AdaptiveTimeout;
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
fn an_adaptive_attempt_timeout_allocates_nothing_more_than_a_fixed_one() {
    let timer = ManualTimer::new();
    let adaptive = AdaptiveTimeout::builder()
        .min_samples(10)
        .floor(Duration::from_millis(5))
        .build()
        .unwrap();
    let build = |adaptive: Option<&AdaptiveTimeout>| {
        let builder = Pipeline::with_timer(timer.clone())
            .total_timeout(Duration::from_secs(1))
            .max_attempts(3)
            .breaker(CircuitBreaker::builder().build_with(timer.clone()).unwrap());
        match adaptive {
            Some(adaptive) => builder.attempt_timeout_adaptive(adaptive.clone()),
            None => builder.attempt_timeout(Duration::from_millis(100)),
        }
        .build()
        .unwrap()
    };
    let learning = build(Some(&adaptive));
    let fixed = build(None);
    // One call ready at once, then one that waits 3 ms (timed, on its second poll): the
    // allocations of each poll.
    let round = |pipeline: &Pipeline<ManualTimer>| {
        let (ready, out) = allocations_and_output(|| {
            poll_once(pipeline.call(|a| async move { Ok::<_, std::io::Error>(a.number()) }))
        });
        assert!(matches!(out, Poll::Ready(Ok(1))));
        let t = timer.clone();
        let mut call = Box::pin(pipeline.call(move |_| {
            let sleep = t.sleep(Duration::from_millis(3));
            async move {
                sleep.await;
                Ok::<_, std::io::Error>(2)
            }
        }));
        let (first, out) = allocations_and_output(|| poll_once(call.as_mut()));
        assert!(out.is_pending());
        timer.advance(Duration::from_millis(3));
        let (second, out) = allocations_and_output(|| poll_once(call.as_mut()));
        assert!(matches!(out, Poll::Ready(Ok(2))));
        (ready, first, second)
    };
    // Warm up: the breaker's stripe, the windows' first slices, the timer's registry.
    for pipeline in [&learning, &fixed] {
        round(pipeline);
    }
    // The adaptive pipeline records every attempt, learns its limit and re-reads it every
    // slice of its window (1 s: every 20 rounds).
    for i in 0..200 {
        let adaptive_costs = round(&learning);
        let fixed_costs = round(&fixed);
        // Nothing on the ready path; on the waiting path, only what the fixed timeout costs
        // too (the timer's registrations of the sleeps).
        assert_eq!(adaptive_costs.0, 0);
        assert_eq!(adaptive_costs, fixed_costs, "round {i}");
        timer.advance(Duration::from_millis(50));
    }
    let stats = adaptive.stats();
    assert_eq!((stats.completed, stats.timed_out), (402, 0));
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
