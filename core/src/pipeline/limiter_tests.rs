//! The limiter seam, cancellation of attempts, and `Send`, in virtual time.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::tests::{constant, planned, MS};
use super::*;
use crate::breaker::CircuitBreaker;
use crate::hedge::Hedge;
use crate::time::{ManualTimer, Timer};

/// A concurrency limit with a queue: an attempt waits until a slot is free. A slot is taken
/// only by the poll that returns it, so dropping a waiting acquire takes nothing.
#[derive(Clone, Default)]
struct TestLimiter(Arc<Mutex<Slots>>);

#[derive(Default)]
struct Slots {
    free: usize,
    queue: bool,
    waiters: Vec<Waker>,
    finished: Vec<(Outcome, Duration)>,
    released: usize,
}

impl TestLimiter {
    fn new(free: usize, queue: bool) -> Self {
        TestLimiter(Arc::new(Mutex::new(Slots {
            free,
            queue,
            ..Slots::default()
        })))
    }
    fn free(&self) -> usize {
        self.0.lock().unwrap().free
    }
    fn finished(&self) -> Vec<(Outcome, Duration)> {
        self.0.lock().unwrap().finished.clone()
    }
}

struct TestPermit(Option<TestLimiter>, Option<(Outcome, Duration)>);

impl Drop for TestPermit {
    fn drop(&mut self) {
        if let Some(limiter) = self.0.take() {
            let mut slots = limiter.0.lock().unwrap();
            slots.free += 1;
            match self.1.take() {
                Some(finished) => slots.finished.push(finished),
                None => slots.released += 1,
            }
            for waker in slots.waiters.drain(..) {
                waker.wake();
            }
        }
    }
}

impl LimiterPermit for TestPermit {
    fn finish(mut self, outcome: Outcome, latency: Duration) {
        self.1 = Some((outcome, latency));
    }
}

struct TestAcquire(TestLimiter);

impl Future for TestAcquire {
    type Output = Result<TestPermit, LimiterRejected>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slots = self.0 .0.lock().unwrap();
        if slots.free > 0 {
            slots.free -= 1;
            return Poll::Ready(Ok(TestPermit(Some(self.0.clone()), None)));
        }
        if !slots.queue {
            return Poll::Ready(Err(LimiterRejected::new("full")));
        }
        slots.waiters.push(cx.waker().clone());
        Poll::Pending
    }
}

impl Limiter for TestLimiter {
    type Permit = TestPermit;
    type Acquire<'a> = TestAcquire;
    fn acquire_at(&self, _now: Instant, _deadline: Option<Instant>) -> TestAcquire {
        TestAcquire(self.clone())
    }
}

#[test]
fn a_full_limiter_refuses_and_releases_the_breaker_permit_uncounted() {
    let timer = ManualTimer::new();
    let limiter = TestLimiter::new(0, false);
    let breaker = CircuitBreaker::builder()
        .half_open_calls(1)
        .build_with(timer.clone())
        .unwrap();
    let pipeline = Pipeline::with_timer(timer.clone())
        .limiter(limiter.clone())
        .breaker(breaker.clone())
        .build()
        .unwrap();
    let out = timer.block_on(pipeline.call(planned(&timer, &[2])));
    match out {
        Err(PipelineError::LimiterFull { rejected, .. }) => assert_eq!(rejected.reason(), "full"),
        other => panic!("{other:?}"),
    }
    assert_eq!(breaker.metrics().calls, 0);
    assert_eq!(limiter.free(), 0);
}

#[test]
fn the_limiter_is_told_each_outcome_and_latency() {
    let timer = ManualTimer::new();
    let limiter = TestLimiter::new(1, false);
    let pipeline = Pipeline::with_timer(timer.clone())
        .limiter(limiter.clone())
        .max_attempts(3)
        .backoff(constant(MS))
        .attempt_timeout(20 * MS)
        .build()
        .unwrap();
    let out = timer.block_on(pipeline.call(planned(&timer, &[3, 30, 4])));
    assert_eq!(out, Ok(3));
    assert_eq!(
        limiter.finished(),
        [
            (Outcome::Failure, 3 * MS),
            (Outcome::TimedOut, 20 * MS),
            (Outcome::Success, 4 * MS)
        ]
    );
    assert_eq!(limiter.free(), 1);
}

#[test]
fn a_wait_for_a_slot_is_bounded_by_the_deadline_and_leaves_nothing_behind() {
    let timer = ManualTimer::new();
    let limiter = TestLimiter::new(0, true);
    let pipeline = Pipeline::with_timer(timer.clone())
        .limiter(limiter.clone())
        .attempt_timeout(10 * MS)
        .total_timeout(30 * MS)
        .build()
        .unwrap();
    let out = timer.block_on(pipeline.call(planned(&timer, &[2])));
    assert_eq!(
        out,
        Err(PipelineError::DeadlineReached {
            attempts: 0,
            last: None
        })
    );
    // The attempt timeout does not bound the wait: only the call's deadline does.
    assert_eq!(timer.elapsed(), 30 * MS);
    assert_eq!(limiter.free(), 0);
    assert_eq!(timer.pending_sleeps(), 0);
}

#[test]
fn futures_are_send_when_the_operation_is() {
    fn assert_send<F: Future + Send>(_: &F) {}
    let timer = ManualTimer::new();
    let pipeline = Pipeline::with_timer(timer.clone())
        .limiter(TestLimiter::new(1, true))
        .breaker(CircuitBreaker::builder().build_with(timer.clone()).unwrap())
        .hedge(Hedge::builder().build().unwrap())
        .build()
        .unwrap();
    let t = timer.clone();
    let call = pipeline.call(move |_| {
        let sleep = t.sleep(MS);
        async move {
            sleep.await;
            Ok::<_, std::io::Error>(())
        }
    });
    assert_send(&call);
    assert_send(&pipeline.call_owned(|_| async { Ok::<_, std::io::Error>(()) }));
}

#[test]
fn a_lost_hedge_releases_its_slot_and_breaker_permit_uncounted() {
    let timer = ManualTimer::new();
    let limiter = TestLimiter::new(2, false);
    let breaker = CircuitBreaker::builder().build_with(timer.clone()).unwrap();
    let pipeline = Pipeline::with_timer(timer.clone())
        .limiter(limiter.clone())
        .breaker(breaker.clone())
        .hedge(
            Hedge::builder()
                .fixed_delay(10 * MS)
                .unbudgeted()
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let out = timer.block_on(pipeline.call(planned(&timer, &[60, 4])));
    assert_eq!(out, Ok(2));
    assert_eq!(limiter.finished(), [(Outcome::Success, 4 * MS)]);
    assert_eq!(limiter.0.lock().unwrap().released, 1);
    assert_eq!(limiter.free(), 2);
    assert_eq!(breaker.metrics().calls, 1);
    assert_eq!(timer.pending_sleeps(), 0);
}
