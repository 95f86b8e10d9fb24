use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::task::noop_waker;

use super::*;
use crate::backoff::{Backoff, Jitter};
use crate::time::{ManualTimer, Timer};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn exact(delay: Duration) -> Backoff {
    Backoff::constant(delay)
        .jitter(Jitter::None)
        .build()
        .unwrap()
}

/// A timer that counts how often it is asked for the time and for a sleep.
#[derive(Clone)]
struct CountingTimer {
    inner: ManualTimer,
    nows: Arc<AtomicUsize>,
    sleeps: Arc<AtomicUsize>,
}

impl CountingTimer {
    fn new() -> Self {
        CountingTimer {
            inner: ManualTimer::new(),
            nows: Arc::default(),
            sleeps: Arc::default(),
        }
    }
}

impl Timer for CountingTimer {
    type Sleep = <ManualTimer as Timer>::Sleep;

    fn now(&self) -> Instant {
        self.nows.fetch_add(1, Ordering::SeqCst);
        self.inner.now()
    }

    fn sleep_until(&self, deadline: Instant) -> Self::Sleep {
        self.sleeps.fetch_add(1, Ordering::SeqCst);
        self.inner.sleep_until(deadline)
    }
}

#[test]
fn first_try_success_reads_no_clock_and_creates_no_sleep() {
    let timer = CountingTimer::new();
    let policy = Retry::with_timer(timer.clone())
        .max_attempts(3)
        .attempt_timeout(ms(100))
        .max_elapsed(ms(500))
        .build()
        .unwrap();
    let mut fut = pin!(policy.run(|| async { Ok::<_, ()>(1) }));
    let waker = noop_waker();
    assert_eq!(
        fut.as_mut().poll(&mut Context::from_waker(&waker)),
        Poll::Ready(Ok(1))
    );
    assert_eq!(timer.nows.load(Ordering::SeqCst), 0);
    assert_eq!(timer.sleeps.load(Ordering::SeqCst), 0);

    // With a budget, the one deposit reads the clock once, and still no sleep.
    let budget = RetryBudget::builder()
        .build_with(timer.inner.clone())
        .unwrap();
    let policy = Retry::with_timer(timer.clone())
        .budget(budget)
        .build()
        .unwrap();
    let mut fut = pin!(policy.run(|| async { Ok::<_, ()>(2) }));
    assert_eq!(
        fut.as_mut().poll(&mut Context::from_waker(&waker)),
        Poll::Ready(Ok(2))
    );
    assert_eq!(timer.nows.load(Ordering::SeqCst), 1);
    assert_eq!(timer.sleeps.load(Ordering::SeqCst), 0);
}

/// Polls `fut` with a no-op waker until it is ready, a few times at most (nothing here waits).
fn ready_soon<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    for _ in 0..8 {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
    }
    panic!("the future kept waiting");
}

/// An operation failing at once with its attempt number below `succeed_at`, then succeeding.
fn fails_until(succeed_at: u32) -> impl FnMut(u32) -> std::future::Ready<Result<u32, u32>> {
    move |n| std::future::ready(if n < succeed_at { Err(n) } else { Ok(n) })
}

#[test]
fn failures_retried_at_once_read_no_clock_unless_a_decision_needs_it() {
    let reads = |timer: &CountingTimer| {
        (
            timer.nows.swap(0, Ordering::SeqCst),
            timer.sleeps.swap(0, Ordering::SeqCst),
        )
    };
    let timer = CountingTimer::new();
    let zero = || {
        Retry::with_timer(timer.clone())
            .max_attempts(3)
            .backoff(exact(Duration::ZERO))
    };

    // Neither deadline nor budget: two failures, a success, no clock and no sleep.
    let policy = zero().build().unwrap();
    assert_eq!(ready_soon(policy.run_numbered(fails_until(3))), Ok(3));
    assert_eq!(reads(&timer), (0, 0));
    // Giving up without ever waiting reads none either; the call took no time.
    let err = ready_soon(policy.run_numbered(fails_until(9))).unwrap_err();
    assert_eq!((err.reason(), err.attempts()), (GaveUp::Exhausted, 3));
    assert_eq!(err.elapsed(), Duration::ZERO);
    assert_eq!(reads(&timer), (0, 0));
    // Nor does a hook, which sees no time.
    let hooked = zero()
        .on_retry(|event: &RetryEvent<'_, u32>| assert!(event.delay.is_zero()))
        .build()
        .unwrap();
    assert_eq!(ready_soon(hooked.run_numbered(fails_until(3))), Ok(3));
    assert_eq!(reads(&timer), (0, 0));

    // A deadline is checked at each failure, still without a sleep.
    let policy = zero().max_elapsed(ms(500)).build().unwrap();
    assert_eq!(ready_soon(policy.run_numbered(fails_until(3))), Ok(3));
    assert_eq!(reads(&timer), (2, 0));

    // A budget: one read for the deposit with the first failure, one per grant.
    let budget = RetryBudget::builder()
        .build_with(timer.inner.clone())
        .unwrap();
    let policy = zero().budget(budget).build().unwrap();
    assert_eq!(ready_soon(policy.run_numbered(fails_until(3))), Ok(3));
    assert_eq!(reads(&timer), (2, 0));

    // A non-zero delay reads the clock to set its sleep, and again when it is over.
    let policy = Retry::with_timer(timer.clone())
        .max_attempts(2)
        .backoff(exact(ms(10)))
        .build()
        .unwrap();
    let err = timer
        .inner
        .block_on(policy.run_numbered(fails_until(9)))
        .unwrap_err();
    assert_eq!(reads(&timer), (3, 1));
    assert_eq!((err.attempts(), err.elapsed()), (2, ms(10)));
}

#[test]
fn waits_exactly_the_backoff_delays() {
    let timer = ManualTimer::new();
    let policy = Retry::with_timer(timer.clone())
        .max_attempts(4)
        .backoff(
            Backoff::exponential(ms(100))
                .jitter(Jitter::None)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let starts = RefCell::new(Vec::new());
    let t = timer.clone();
    let err = timer
        .block_on(policy.run_numbered(|attempt| {
            starts.borrow_mut().push((attempt, t.elapsed()));
            async { Err::<(), _>("down") }
        }))
        .unwrap_err();
    assert_eq!(
        *starts.borrow(),
        [(1, ms(0)), (2, ms(100)), (3, ms(300)), (4, ms(700))]
    );
    assert_eq!(err.reason(), GaveUp::Exhausted);
    assert_eq!(err.attempts(), 4);
    assert_eq!(err.elapsed(), ms(700));
    assert_eq!(timer.pending_sleeps(), 0);
}

#[test]
fn the_backoffs_max_retries_limits_attempts_too() {
    let timer = ManualTimer::new();
    let policy = Retry::with_timer(timer.clone())
        .max_attempts(10)
        .backoff(
            Backoff::constant(ms(1))
                .max_retries(2)
                .jitter(Jitter::None)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let err = timer
        .block_on(policy.run(|| async { Err::<(), _>(()) }))
        .unwrap_err();
    assert_eq!((err.reason(), err.attempts()), (GaveUp::Exhausted, 3));
}

#[test]
fn never_sleeps_past_the_deadline() {
    let timer = ManualTimer::new();
    let policy = Retry::with_timer(timer.clone())
        .max_attempts(100)
        .max_elapsed(ms(1_000))
        .backoff(exact(ms(400)))
        .build()
        .unwrap();
    let err = timer
        .block_on(policy.run(|| async { Err::<(), _>("busy") }))
        .unwrap_err();
    // Attempts at 0, 400 and 800 ms; one at 1200 would be past the deadline, so the loop gives
    // up at 800 without sleeping.
    assert_eq!(err.reason(), GaveUp::DeadlineExceeded);
    assert_eq!(err.attempts(), 3);
    assert_eq!(err.elapsed(), ms(800));
    assert_eq!(timer.elapsed(), ms(800));
    assert_eq!(err.into_inner(), Some("busy"));
}

#[test]
fn the_deadline_counts_attempt_time_and_cuts_a_slow_attempt() {
    let timer = ManualTimer::new();
    let policy = Retry::with_timer(timer.clone())
        .max_attempts(100)
        .max_elapsed(ms(1_000))
        .backoff(exact(ms(100)))
        .build()
        .unwrap();
    let t = timer.clone();
    let err = timer
        .block_on(policy.run(|| {
            let t = t.clone();
            async move {
                t.sleep(ms(300)).await;
                Err::<(), _>("slow failure")
            }
        }))
        .unwrap_err();
    // 0–300 attempt, 400–700 attempt, 800–1000 cut by the deadline.
    assert_eq!(err.reason(), GaveUp::DeadlineExceeded);
    assert_eq!(err.attempts(), 3);
    assert!(err.last_error().is_timeout());
    assert_eq!(timer.elapsed(), ms(1_000));
    assert_eq!(timer.pending_sleeps(), 0);
}

#[test]
fn the_attempt_timeout_is_capped_by_the_remaining_deadline() {
    let timer = ManualTimer::new();
    let policy = Retry::with_timer(timer.clone())
        .max_attempts(100)
        .max_elapsed(ms(1_000))
        .attempt_timeout(ms(600))
        .backoff(exact(ms(100)))
        .build()
        .unwrap();
    let ends = RefCell::new(Vec::new());
    let t = timer.clone();
    let err = timer
        .block_on(policy.run_numbered(|attempt| {
            let t = t.clone();
            let ends = &ends;
            async move {
                let _guard = Guard(|| ends.borrow_mut().push((attempt, t.elapsed())));
                futures::future::pending::<Result<(), ()>>().await
            }
        }))
        .unwrap_err();
    // Attempt 1 times out at 600 ms; attempt 2 starts at 700 and would have until 1300, but the
    // deadline cuts it at 1000.
    assert_eq!(*ends.borrow(), [(1, ms(600)), (2, ms(1_000))]);
    assert_eq!(err.reason(), GaveUp::DeadlineExceeded);
    assert_eq!(err.attempts(), 2);
    assert_eq!(err.into_inner(), None);
}

#[test]
fn timeouts_follow_on_timeout() {
    let timer = ManualTimer::new();
    let policy = Retry::with_timer(timer.clone())
        .attempt_timeout(ms(50))
        .on_timeout(Decision::Stop)
        .build()
        .unwrap();
    let err = timer
        .block_on(policy.run(futures::future::pending::<Result<(), ()>>))
        .unwrap_err();
    assert_eq!((err.reason(), err.attempts()), (GaveUp::NotRetryable, 1));
    assert_eq!(timer.elapsed(), ms(50));
}

#[test]
fn the_classifier_stops_and_paces() {
    let timer = ManualTimer::new();
    let policy = Retry::with_timer(timer.clone())
        .max_attempts(5)
        .max_retry_after(ms(2_000))
        .backoff(exact(ms(10)))
        .classify(|e: &u32| match *e {
            503 => Decision::RetryAfter(ms(500)),
            429 => Decision::RetryAfter(ms(60_000)),
            500 => Decision::Retry,
            _ => Decision::Stop,
        })
        .build()
        .unwrap();
    let codes = [503, 429, 500, 404];
    let t = timer.clone();
    let starts = RefCell::new(Vec::new());
    let err = timer
        .block_on(policy.run_numbered(|attempt| {
            starts.borrow_mut().push(t.elapsed());
            let code = codes[attempt as usize - 1];
            async move { Err::<(), _>(code) }
        }))
        .unwrap_err();
    // 503 → wait 500; 429 asks 60 s, capped at 2 s; 500 → backoff 10 ms; 404 → stop.
    assert_eq!(*starts.borrow(), [ms(0), ms(500), ms(2_500), ms(2_510)]);
    assert_eq!(err.reason(), GaveUp::NotRetryable);
    assert_eq!(err.into_inner(), Some(404));
}

#[test]
fn on_retry_sees_attempt_error_and_delay() {
    let timer = ManualTimer::new();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let log = seen.clone();
    let policy = Retry::with_timer(timer.clone())
        .max_attempts(3)
        .backoff(
            Backoff::linear(ms(5), ms(5))
                .jitter(Jitter::None)
                .build()
                .unwrap(),
        )
        .on_retry(move |event: &RetryEvent<'_, String>| {
            log.borrow_mut()
                .push((event.attempt, event.error.inner().cloned(), event.delay));
        })
        .build()
        .unwrap();
    let out =
        timer.block_on(policy.run_numbered(|n| async move { Err::<(), _>(format!("fail {n}")) }));
    assert!(out.is_err());
    assert_eq!(
        *seen.borrow(),
        [
            (1, Some("fail 1".to_string()), ms(5)),
            (2, Some("fail 2".to_string()), ms(10)),
        ]
    );
}

#[test]
fn a_spent_budget_ends_the_loop() {
    let timer = ManualTimer::new();
    let budget = RetryBudget::builder()
        .ratio(0.5)
        .min_per_second(0)
        .build_with(timer.clone())
        .unwrap();
    let policy = Retry::with_timer(timer.clone())
        .max_attempts(10)
        .backoff(exact(ms(1)))
        .budget(budget.clone())
        .build()
        .unwrap();
    // Two calls deposit one retry's worth; the first call spends it and is then refused.
    timer
        .block_on(policy.run(|| async { Ok::<_, ()>(()) }))
        .unwrap();
    let err = timer
        .block_on(policy.run(|| async { Err::<(), _>("down") }))
        .unwrap_err();
    assert_eq!(err.reason(), GaveUp::BudgetExhausted);
    assert_eq!(err.attempts(), 2);
    assert!(err.to_string().contains("retry budget is spent"), "{err}");
    assert_eq!(budget.available_at(timer.now()), 0);
}

#[test]
fn a_retry_from_the_floor_is_refunded_to_the_floor() {
    let timer = ManualTimer::new();
    // No ratio: every retry comes from the floor of 1 a second.
    let budget = RetryBudget::builder()
        .ratio(0.0)
        .min_per_second(1)
        .build_with(timer.clone())
        .unwrap();
    let policy = Retry::with_timer(timer.clone())
        .max_attempts(3)
        .backoff(exact(ms(50)))
        .budget(budget.clone())
        .build()
        .unwrap();
    let mut state = RetryState::new(policy.config());
    let now = timer.now();
    assert_eq!(state.begin_attempt_at(now), Ok(1));
    assert_eq!(
        state.on_failure_at(now, Decision::Retry),
        Next::Retry(ms(50))
    );
    assert_eq!(
        budget.available_at(now),
        0,
        "the floor's one retry is taken"
    );
    drop(state); // cancelled during the backoff: the retry was never made
    assert_eq!(budget.available_at(now), 1, "and it is back in the floor");
    // Not in the window, where it would add to the floor once that refills.
    let later = now + Duration::from_secs(2);
    assert_eq!(budget.available_at(later), 1);
}

#[test]
fn dropping_mid_attempt_cancels_it_and_leaves_no_sleep() {
    let timer = ManualTimer::new();
    let policy = Retry::with_timer(timer.clone())
        .attempt_timeout(ms(100))
        .build()
        .unwrap();
    let dropped = Cell::new(false);
    {
        let mut fut = pin!(policy.run(|| async {
            let _guard = Guard(|| dropped.set(true));
            futures::future::pending::<Result<(), ()>>().await
        }));
        let waker = noop_waker();
        assert!(fut
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        assert_eq!(timer.pending_sleeps(), 1);
        assert!(!dropped.get());
    }
    assert!(dropped.get());
    assert_eq!(timer.pending_sleeps(), 0);
}

#[test]
fn dropping_mid_backoff_refunds_the_budget_and_leaves_no_sleep() {
    let timer = ManualTimer::new();
    let budget = RetryBudget::builder()
        .ratio(1.0)
        .min_per_second(0)
        .build_with(timer.clone())
        .unwrap();
    let policy = Retry::with_timer(timer.clone())
        .backoff(exact(ms(100)))
        .budget(budget.clone())
        .build()
        .unwrap();
    {
        let mut fut = pin!(policy.run(|| async { Err::<(), _>(()) }));
        let waker = noop_waker();
        assert!(fut
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        assert_eq!(timer.pending_sleeps(), 1);
        // The call deposited one retry and the retry withdrew it.
        assert_eq!(budget.available_at(timer.now()), 0);
    }
    assert_eq!(timer.pending_sleeps(), 0);
    assert_eq!(budget.available_at(timer.now()), 1);
}

#[test]
fn seeded_policies_reproduce_and_each_call_gets_its_own_stream() {
    let run = |seed| {
        let timer = ManualTimer::new();
        let policy = Retry::with_timer(timer.clone())
            .max_attempts(4)
            .backoff(Backoff::exponential(ms(100)).seed(seed).build().unwrap())
            .build()
            .unwrap();
        (0..3)
            .map(|_| {
                let start = timer.elapsed();
                let _ = timer.block_on(policy.run(|| async { Err::<(), _>(()) }));
                timer.elapsed() - start
            })
            .collect::<Vec<_>>()
    };
    let a = run(7);
    assert_eq!(a, run(7));
    assert_ne!(a, run(8));
    assert!(
        a[0] != a[1] || a[1] != a[2],
        "calls share one stream: {a:?}"
    );
}

#[test]
fn the_state_refunds_when_the_sleep_overshoots_the_deadline() {
    let timer = ManualTimer::new();
    let budget = RetryBudget::builder()
        .ratio(1.0)
        .min_per_second(0)
        .build_with(timer.clone())
        .unwrap();
    let policy = Retry::with_timer(timer.clone())
        .max_elapsed(ms(100))
        .backoff(exact(ms(90)))
        .budget(budget.clone())
        .build()
        .unwrap();
    let t0 = timer.now();
    let mut state = RetryState::new(policy.config());
    assert_eq!(state.begin_attempt_at(t0), Ok(1));
    assert_eq!(
        state.on_failure_at(t0, Decision::Retry),
        Next::Retry(ms(90))
    );
    assert_eq!(budget.available_at(t0), 0);
    // A real timer woke late, past the deadline: no attempt, and the retry is refunded.
    assert_eq!(
        state.begin_attempt_at(t0 + ms(100)),
        Err(GaveUp::DeadlineExceeded)
    );
    assert_eq!(budget.available_at(t0 + ms(100)), 1);
    assert_eq!(state.attempts(), 1);
    assert_eq!(state.elapsed_at(t0 + ms(100)), ms(100));
}

#[test]
fn the_error_explains_itself() {
    let err = RetryError::new(
        GaveUp::Exhausted,
        AttemptError::Failed("connection refused"),
        3,
        ms(700),
    );
    assert_eq!(
        err.to_string(),
        "gave up after 3 attempts in 700ms: every allowed attempt failed; last error: \
         connection refused. To change this: if the fault is transient and the dependency can \
         take it, raise `max_attempts` (or the backoff's `max_retries`)"
    );
    let timed_out: RetryError<std::io::Error> = RetryError::new(
        GaveUp::DeadlineExceeded,
        AttemptError::TimedOut(crate::timeout::Elapsed::new()),
        1,
        ms(5),
    );
    assert!(timed_out
        .to_string()
        .starts_with("gave up after 1 attempt in 5ms: the deadline"));
    assert!(std::error::Error::source(&timed_out).is_some());
}

#[test]
fn validation_names_the_field() {
    let timer = ManualTimer::new();
    let cases = [
        (
            Retry::with_timer(timer.clone()).max_attempts(0).build(),
            "max_attempts",
        ),
        (
            Retry::with_timer(timer.clone())
                .max_elapsed(Duration::ZERO)
                .build(),
            "max_elapsed",
        ),
        (
            Retry::with_timer(timer.clone())
                .attempt_timeout(Duration::ZERO)
                .build(),
            "attempt_timeout",
        ),
    ];
    for (result, field) in cases {
        assert_eq!(result.unwrap_err().field(), field);
    }
}

/// Runs a closure when dropped.
struct Guard<F: FnMut()>(F);

impl<F: FnMut()> Drop for Guard<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}
