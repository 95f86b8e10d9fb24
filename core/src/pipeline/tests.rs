//! Each decision of the pipeline, in virtual time.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Waker};
use std::time::Duration;

use super::*;
use crate::backoff::{Backoff, Jitter};
use crate::breaker::{CircuitBreaker, State};
use crate::hedge::{Hedge, HedgeBudget};
use crate::retry::{Decision, RetryBudget};
use crate::time::{ManualTimer, Timer};

pub(super) const MS: Duration = Duration::from_millis(1);

pub(super) fn constant(delay: Duration) -> Backoff {
    Backoff::constant(delay)
        .jitter(Jitter::None)
        .build()
        .unwrap()
}

/// An operation whose attempt `n` takes `plan[n - 1]` ms and fails if that entry is odd.
pub(super) fn planned(
    timer: &ManualTimer,
    plan: &'static [u64],
) -> impl FnMut(Attempt) -> Pin<Box<dyn Future<Output = Result<u32, &'static str>>>> {
    let timer = timer.clone();
    move |attempt| {
        let took = plan[attempt.number() as usize - 1];
        let sleep = timer.sleep(Duration::from_millis(took));
        Box::pin(async move {
            sleep.await;
            if took % 2 == 1 {
                Err("odd")
            } else {
                Ok(attempt.number())
            }
        })
    }
}

#[test]
fn a_ready_success_reads_no_clock_and_creates_no_sleep() {
    let timer = ManualTimer::new();
    let pipeline = Pipeline::with_timer(timer.clone())
        .max_attempts(3)
        .hedge(Hedge::builder().fixed_delay(MS).build().unwrap())
        .breaker(CircuitBreaker::builder().build_with(timer.clone()).unwrap())
        .build()
        .unwrap();
    let out = timer.block_on(pipeline.call(|a| async move { Ok::<_, ()>(a.number()) }));
    assert_eq!(out, Ok(1));
    assert_eq!(timer.pending_sleeps(), 0);
    assert_eq!(pipeline.breaker().unwrap().metrics().calls, 1);
}

#[test]
fn retries_follow_the_backoff_and_the_classifier() {
    let timer = ManualTimer::new();
    let pipeline = Pipeline::with_timer(timer.clone())
        .max_attempts(4)
        .backoff(constant(10 * MS))
        .build()
        .unwrap();
    let out = timer.block_on(pipeline.call(planned(&timer, &[1, 3, 2, 2])));
    assert_eq!(out, Ok(3));
    assert_eq!(timer.elapsed(), (1 + 10 + 3 + 10 + 2) * MS);

    let stop = Pipeline::with_timer(timer.clone())
        .max_attempts(4)
        .classify(|_: &&str| Decision::Stop)
        .build()
        .unwrap();
    let out = timer.block_on(stop.call(planned(&timer, &[1, 2])));
    assert_eq!(
        out,
        Err(PipelineError::GaveUp {
            attempts: 1,
            error: "odd"
        })
    );
}

#[test]
fn a_retry_without_delay_starts_in_the_same_poll() {
    let timer = ManualTimer::new();
    let pipeline = Pipeline::with_timer(timer.clone())
        .max_attempts(3)
        .backoff(constant(Duration::ZERO))
        .build()
        .unwrap();
    let tries = Cell::new(0);
    let out = timer.block_on(pipeline.call(|a| {
        tries.set(tries.get() + 1);
        async move {
            if a.number() < 3 {
                Err("busy")
            } else {
                Ok(a.number())
            }
        }
    }));
    assert_eq!((out, tries.get()), (Ok(3), 3));
}

#[test]
fn the_attempt_timeout_is_a_retried_failure_and_the_total_timeout_ends_the_call() {
    let timer = ManualTimer::new();
    let pipeline = Pipeline::with_timer(timer.clone())
        .max_attempts(2)
        .backoff(constant(MS))
        .attempt_timeout(50 * MS)
        .build()
        .unwrap();
    let out = timer.block_on(pipeline.call(planned(&timer, &[100, 100])));
    assert_eq!(out, Err(PipelineError::AttemptTimedOut { attempts: 2 }));
    assert_eq!(timer.elapsed(), 101 * MS);
    assert_eq!(timer.pending_sleeps(), 0);

    let timer = ManualTimer::new();
    let pipeline = Pipeline::with_timer(timer.clone())
        .max_attempts(5)
        .backoff(constant(MS))
        .attempt_timeout(50 * MS)
        .total_timeout(80 * MS)
        .build()
        .unwrap();
    let out = timer.block_on(pipeline.call(planned(&timer, &[100, 100, 100])));
    // The second attempt starts at 51 ms and is cut by the call's deadline at 80 ms.
    assert_eq!(
        out,
        Err(PipelineError::DeadlineReached {
            attempts: 2,
            last: None
        })
    );
    assert_eq!(timer.elapsed(), 80 * MS);
}

#[test]
fn a_deadline_in_the_past_is_refused_before_anything_is_asked() {
    let timer = ManualTimer::new();
    let budget = RetryBudget::builder()
        .min_per_second(0)
        .build_with(timer.clone())
        .unwrap();
    let breaker = CircuitBreaker::builder().build_with(timer.clone()).unwrap();
    let pipeline = Pipeline::with_timer(timer.clone())
        .retry_budget(budget.clone())
        .breaker(breaker.clone())
        .build()
        .unwrap();
    let start = timer.now();
    timer.advance(MS);
    let called = Cell::new(false);
    let out = timer.block_on(pipeline.call_until(start, |_| {
        called.set(true);
        async { Ok::<_, ()>(()) }
    }));
    assert_eq!(out, Err(PipelineError::DeadlinePassed));
    assert!(!called.get());
    assert_eq!(breaker.metrics().calls, 0);
    for _ in 0..5 {
        budget.deposit_at(timer.now()); // 5 calls at 0.2 earn one retry: nothing else was deposited
    }
    assert_eq!(budget.available_at(timer.now()), 1);
}

#[test]
fn a_backoff_that_would_end_past_the_deadline_is_not_taken() {
    let timer = ManualTimer::new();
    let pipeline = Pipeline::with_timer(timer.clone())
        .max_attempts(3)
        .backoff(constant(100 * MS))
        .total_timeout(120 * MS)
        .build()
        .unwrap();
    let out = timer.block_on(pipeline.call(planned(&timer, &[21, 2])));
    assert_eq!(
        out,
        Err(PipelineError::DeadlineTooShort {
            remaining: Duration::ZERO,
            predicted: Duration::ZERO,
            attempts: 1,
            last: Some("odd")
        })
    );
    assert_eq!(timer.elapsed(), 21 * MS, "ended at once, without the sleep");
}

#[test]
fn a_retry_is_not_started_when_the_predicted_latency_exceeds_the_time_left() {
    let timer = ManualTimer::new();
    // Until 3 samples are known, attempts are predicted to take 30 ms.
    let pipeline = Pipeline::with_timer(timer.clone())
        .max_attempts(5)
        .backoff(constant(MS))
        .predict_floor(30 * MS)
        .predict_min_samples(3)
        .predict_percentile(0.5)
        .build()
        .unwrap();
    let deadline = timer.now() + 50 * MS;
    let out = timer.block_on(pipeline.call_until(deadline, planned(&timer, &[11, 11, 2])));
    // 11 ms, then 1 ms sleep leaves 38 ≥ 30: retry. 11 more: 26 left < 30: refused.
    assert_eq!(
        out,
        Err(PipelineError::DeadlineTooShort {
            remaining: 26 * MS,
            predicted: 30 * MS,
            attempts: 2,
            last: Some("odd")
        })
    );
    assert_eq!(timer.elapsed(), 23 * MS);

    // Once the window holds enough samples, its percentile is the prediction.
    for _ in 0..3 {
        pipeline.latency().record_at(timer.now(), 5 * MS);
    }
    let predicted = pipeline.predicted_latency_at(timer.now());
    assert!(predicted >= 4 * MS && predicted <= 6 * MS, "{predicted:?}");
}

#[test]
fn hedges_are_sent_on_time_only_when_the_deadline_leaves_room() {
    let timer = ManualTimer::new();
    let build = |floor: Duration| {
        Pipeline::with_timer(timer.clone())
            .hedge(
                Hedge::builder()
                    .fixed_delay(10 * MS)
                    .unbudgeted()
                    .build()
                    .unwrap(),
            )
            .predict_floor(floor)
            .total_timeout(100 * MS)
            .build()
            .unwrap()
    };
    let roomy = build(20 * MS);
    let out = timer.block_on(roomy.call(planned(&timer, &[60, 4])));
    assert_eq!(out, Ok(2));
    assert_eq!(timer.elapsed(), 14 * MS);
    assert_eq!(roomy.hedge().unwrap().stats().hedges_sent, 1);

    let timer2 = ManualTimer::new();
    let tight = Pipeline::with_timer(timer2.clone())
        .hedge(
            Hedge::builder()
                .fixed_delay(10 * MS)
                .unbudgeted()
                .build()
                .unwrap(),
        )
        .predict_floor(95 * MS)
        .total_timeout(100 * MS)
        .build()
        .unwrap();
    let out = timer2.block_on(tight.call(planned(&timer2, &[60, 4])));
    assert_eq!(out, Ok(1), "90 ms left < 95 ms predicted: no hedge");
    assert_eq!(tight.hedge().unwrap().stats().hedges_sent, 0);
}

#[test]
fn a_hedge_the_budget_refuses_at_its_first_chance_is_sent_at_its_second() {
    // A first chance may not take the last half of the savings (max_burst 2: one kept), a
    // later chance may. The primary is stalled for 60 ms.
    let timer = ManualTimer::new();
    let budget = HedgeBudget::builder()
        .ratio(1.0)
        .max_burst(2)
        .min_per_second(0)
        .build()
        .unwrap();
    let pipeline = Pipeline::with_timer(timer.clone())
        .hedge(
            Hedge::builder()
                .fixed_delay(10 * MS)
                .budget(budget.clone())
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    // Two calls answered at once earn two hedges, spent elsewhere: the policy is no longer
    // young (it keeps the half of max_burst), and the stalled call's deposit saves one.
    for _ in 0..2 {
        let ready = timer.block_on(pipeline.call(|a| async move { Ok::<_, &str>(a.number()) }));
        assert_eq!(ready, Ok(1));
    }
    while budget.try_withdraw_at(timer.now()) {}
    let out = timer.block_on(pipeline.call(planned(&timer, &[60, 4])));
    // Refused at 10 ms, sent at its second chance (20 ms), answered 4 ms later: a refusal
    // used to end hedging for the round, leaving the call to wait out the stall.
    assert_eq!(out, Ok(2));
    assert_eq!(timer.elapsed(), 24 * MS);
    let stats = pipeline.hedge().unwrap().stats();
    assert_eq!(
        (stats.primaries, stats.budget_refusals, stats.hedges_sent),
        (3, 1, 1)
    );
    assert_eq!(timer.pending_sleeps(), 0);
}

#[test]
fn an_open_breaker_refuses_without_counting_anywhere() {
    let timer = ManualTimer::new();
    let breaker = CircuitBreaker::builder()
        .count_window(2)
        .minimum_calls(2)
        .open_duration(Duration::from_secs(10))
        .build_with(timer.clone())
        .unwrap();
    let budget = RetryBudget::builder()
        .ratio(1.0)
        .min_per_second(5)
        .build_with(timer.clone())
        .unwrap();
    let pipeline = Pipeline::with_timer(timer.clone())
        .breaker(breaker.clone())
        .retry_budget(budget.clone())
        .max_attempts(3)
        .backoff(constant(MS))
        .build()
        .unwrap();
    // Two failures open the breaker, which refuses the second retry; the budget had granted
    // it, and takes it back.
    let out = timer.block_on(pipeline.call(planned(&timer, &[1, 1, 2])));
    match out {
        Err(PipelineError::BreakerOpen {
            rejected,
            attempts: 2,
            last: Some("odd"),
        }) => assert_eq!(rejected.retry_after(), Some(Duration::from_secs(10) - MS)),
        other => panic!("{other:?}"),
    }
    assert_eq!(breaker.state(), State::Open);
    // 1 call at ratio 1.0 earned 1 retry, spent; the floor's 5 are all there again.
    assert_eq!(budget.available_at(timer.now()), 5);
    let calls = breaker.metrics().calls;
    let available = budget.available_at(timer.now());
    let out = timer.block_on(pipeline.call(planned(&timer, &[2])));
    assert!(matches!(
        out,
        Err(PipelineError::BreakerOpen { attempts: 0, .. })
    ));
    assert_eq!(breaker.metrics().calls, calls);
    assert_eq!(budget.available_at(timer.now()), available, "no deposit");
}

#[test]
fn an_empty_budget_ends_the_call_with_the_last_error() {
    let timer = ManualTimer::new();
    let budget = RetryBudget::builder()
        .ratio(0.1)
        .min_per_second(0)
        .build_with(timer.clone())
        .unwrap();
    let pipeline = Pipeline::with_timer(timer.clone())
        .retry_budget(budget)
        .max_attempts(3)
        .build()
        .unwrap();
    let out = timer.block_on(pipeline.call(planned(&timer, &[1, 2])));
    assert_eq!(
        out,
        Err(PipelineError::BudgetEmpty {
            attempts: 1,
            last: Some("odd")
        })
    );
}

#[test]
fn dropping_a_call_in_its_backoff_refunds_the_retry() {
    let timer = ManualTimer::new();
    let budget = RetryBudget::builder()
        .ratio(1.0)
        .min_per_second(0)
        .build_with(timer.clone())
        .unwrap();
    let pipeline = Pipeline::with_timer(timer.clone())
        .retry_budget(budget.clone())
        .max_attempts(3)
        .backoff(constant(100 * MS))
        .build()
        .unwrap();
    let mut call = Box::pin(pipeline.call(planned(&timer, &[1, 2])));
    let waker = Waker::noop();
    let mut cx = Context::from_waker(waker);
    assert!(call.as_mut().poll(&mut cx).is_pending());
    timer.advance(MS);
    assert!(call.as_mut().poll(&mut cx).is_pending()); // failed; sleeping, retry withdrawn
    assert_eq!(budget.available_at(timer.now()), 0);
    drop(call);
    assert_eq!(budget.available_at(timer.now()), 1);
    assert_eq!(timer.pending_sleeps(), 0);
}

#[test]
fn attempts_are_told_their_deadline() {
    let timer = ManualTimer::new();
    let pipeline = Pipeline::with_timer(timer.clone())
        .attempt_timeout(10 * MS)
        .total_timeout(15 * MS)
        .max_attempts(2)
        .backoff(constant(MS))
        .build()
        .unwrap();
    let start = timer.now();
    let seen = RefCell::new(Vec::new());
    let t = timer.clone();
    let _ = timer.block_on(pipeline.call(|attempt| {
        seen.borrow_mut()
            .push(attempt.deadline().map(|d| d - start));
        let sleep = t.sleep(Duration::from_secs(1));
        async move {
            sleep.await;
            Ok::<_, ()>(())
        }
    }));
    assert_eq!(*seen.borrow(), [Some(10 * MS), Some(15 * MS)]);
}

#[test]
fn every_invalid_setting_is_refused_naming_its_field() {
    let timer = ManualTimer::new();
    let b = || Pipeline::with_timer(timer.clone());
    let field = |r: Result<Pipeline<ManualTimer>, crate::ConfigError>| r.unwrap_err().field();
    assert_eq!(
        field(b().total_timeout(Duration::ZERO).build()),
        "total_timeout"
    );
    assert_eq!(
        field(b().attempt_timeout(Duration::ZERO).build()),
        "attempt_timeout"
    );
    assert_eq!(field(b().max_attempts(0).build()), "max_attempts");
    assert_eq!(
        field(b().predict_percentile(0.0).build()),
        "predict_percentile"
    );
    assert_eq!(
        field(b().predict_percentile(f64::NAN).build()),
        "predict_percentile"
    );
    assert_eq!(
        field(b().predict_min_samples(0).build()),
        "predict_min_samples"
    );
    assert_eq!(
        field(b().latency_window(Duration::from_secs(1), 0).build()),
        "latency_window.slots"
    );
    assert_eq!(
        field(b().latency_window(Duration::ZERO, 4).build()),
        "latency_window.window"
    );
}

#[test]
fn errors_say_which_layer_ended_the_call() {
    let e: PipelineError<std::io::Error> = PipelineError::GaveUp {
        attempts: 3,
        error: std::io::ErrorKind::ConnectionRefused.into(),
    };
    assert!(e.to_string().starts_with("gave up after 3 attempt(s): "));
    assert!(std::error::Error::source(&e).is_some());
    assert!(!e.is_rejection());
    let e: PipelineError<std::io::Error> = PipelineError::LimiterFull {
        rejected: LimiterRejected::new("full"),
        attempts: 0,
        last: None,
    };
    assert!(e.is_rejection());
    assert_eq!(e.to_string(), "limiter refused the attempt: full");
    assert!(std::error::Error::source(&e).is_some());
    let e: PipelineError<()> = PipelineError::DeadlinePassed;
    assert!(e.is_deadline() && e.is_rejection());
}
