//! A first-try success allocates nothing: proved with a counting global allocator.
//!
//! Allocations are counted by the allocator in `support`.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use std::time::Duration;

use crate::support::{allocations, allocations_and_output, poll_once};
use tailguard::backoff::Backoff;
use tailguard::retry::{Retry, RetryBudget, Retryable};
use tailguard::time::{ManualTimer, Timer};

/// Polls `fut` once and returns its output and the allocations made meanwhile (dropping it
/// included).
fn poll_once_counting<F: Future>(fut: F) -> (Poll<F::Output>, usize) {
    let (allocations, out) = allocations_and_output(|| poll_once(fut));
    (out, allocations)
}

async fn fetch() -> Result<u32, std::io::Error> {
    Ok(200)
}

#[test]
fn first_try_success_allocates_nothing_on_a_manual_timer() {
    let timer = ManualTimer::new();
    let policy = Retry::with_timer(timer.clone())
        .max_attempts(5)
        .max_elapsed(Duration::from_secs(1))
        .attempt_timeout(Duration::from_millis(100))
        .backoff(
            Backoff::exponential(Duration::from_millis(10))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let (out, allocs) = poll_once_counting((|| fetch()).retry(&policy));
    assert!(matches!(out, Poll::Ready(Ok(200))));
    assert_eq!(allocs, 0);
    let (out, allocs) = poll_once_counting(policy.run_numbered(|_| fetch()));
    assert!(matches!(out, Poll::Ready(Ok(200))));
    assert_eq!(allocs, 0);
    assert_eq!(timer.pending_sleeps(), 0);
}

#[test]
fn first_try_success_with_a_budget_allocates_nothing() {
    let timer = ManualTimer::new();
    let budget = RetryBudget::builder().build_with(timer.clone()).unwrap();
    let policy = Retry::with_timer(timer.clone())
        .budget(budget.clone())
        .build()
        .unwrap();
    // Warm up: the first deposit may move the budget's window; that allocates nothing either.
    for _ in 0..3 {
        let (out, allocs) = poll_once_counting(policy.run(fetch));
        assert!(matches!(out, Poll::Ready(Ok(200))));
        assert_eq!(allocs, 0);
    }
    assert!(budget.available_at(timer.now()) > 0);
}

#[test]
fn first_try_success_allocates_nothing_on_the_default_timer() {
    let policy = Retry::builder()
        .max_elapsed(Duration::from_secs(1))
        .build()
        .unwrap();
    let (out, allocs) = poll_once_counting(policy.run(fetch));
    assert!(matches!(out, Poll::Ready(Ok(200))));
    assert_eq!(allocs, 0);
}

#[test]
fn a_first_attempt_that_waits_allocates_nothing_without_time_limits() {
    // No deadline, no attempt timeout: a pending attempt needs neither clock nor sleep.
    let timer = ManualTimer::new();
    let policy = Retry::with_timer(timer.clone()).build().unwrap();
    let mut polls = 0;
    let slow_once = futures::future::poll_fn(move |cx| {
        polls += 1;
        if polls == 1 {
            cx.waker().wake_by_ref();
            Poll::Pending
        } else {
            Poll::Ready(Ok::<_, ()>(polls))
        }
    });
    let mut slow_once = Some(slow_once);
    let mut fut = pin!(policy.run(|| slow_once.take().expect("one attempt")));
    let mut cx = Context::from_waker(Waker::noop());
    let before = allocations();
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    assert!(matches!(fut.as_mut().poll(&mut cx), Poll::Ready(Ok(2))));
    assert_eq!(allocations() - before, 0);
    assert_eq!(timer.pending_sleeps(), 0);
}
