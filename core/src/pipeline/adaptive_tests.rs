//! The adaptive attempt timeout inside the pipeline, in virtual time.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::task::{Context, Waker};
use std::time::Duration;

use super::tests::{constant, MS};
use super::*;
use crate::adaptive_timeout::AdaptiveTimeout;
use crate::time::{ManualTimer, Timer};

/// p99 × 2 within `floor..=ceiling`, trusted after 20 samples, over 10 s in 1 s slices.
fn adaptive(floor: Duration, ceiling: Duration) -> AdaptiveTimeout {
    AdaptiveTimeout::builder()
        .percentile(0.99)
        .factor(2.0)
        .floor(floor)
        .ceiling(ceiling)
        .min_samples(20)
        .build()
        .unwrap()
}

fn pipeline(
    timer: &ManualTimer,
    timeout: &AdaptiveTimeout,
    attempts: u32,
) -> Pipeline<ManualTimer> {
    Pipeline::with_timer(timer.clone())
        .attempt_timeout_adaptive(timeout.clone())
        .max_attempts(attempts)
        .backoff(constant(Duration::ZERO))
        .build()
        .unwrap()
}

/// Runs one call whose attempt `n` takes `took(n)` ms and succeeds; returns the limits the
/// attempts were given (their deadline from their start) and the result.
fn call(
    timer: &ManualTimer,
    pipeline: &Pipeline<ManualTimer>,
    took: impl Fn(u32) -> u64,
) -> (Vec<Duration>, Result<u32, PipelineError<()>>) {
    let limits = RefCell::new(Vec::new());
    let t = timer.clone();
    let out = timer.block_on(pipeline.call(|attempt| {
        let now = t.now();
        limits
            .borrow_mut()
            .push(attempt.deadline().map_or(Duration::MAX, |d| d - now));
        let sleep = t.sleep(Duration::from_millis(took(attempt.number())));
        async move {
            sleep.await;
            Ok::<_, ()>(attempt.number())
        }
    }));
    (limits.into_inner(), out)
}

/// Moves to the next slice of the window (1 s), where the first attempt to end (of 1 ms, which
/// moves no percentile here) brings the limit up to date for the attempts after it.
fn next_slice(timer: &ManualTimer, pipeline: &Pipeline<ManualTimer>) {
    timer.advance(Duration::from_secs(1));
    let _ = call(timer, pipeline, |_| 1);
}

fn near(got: Duration, want: Duration) -> bool {
    got.abs_diff(want) <= want / 50
}

#[test]
fn the_limit_follows_the_latency_distribution() {
    let timer = ManualTimer::new();
    let timeout = adaptive(5 * MS, Duration::from_secs(5));
    let pipeline = pipeline(&timer, &timeout, 3);
    // Until 20 attempts are known: the floor... which is shorter than these 10..=19 ms
    // attempts, so the first ones are cut, and recorded as lower bounds.
    let (limits, _) = call(&timer, &pipeline, |_| 10);
    assert_eq!(limits, [5 * MS, 5 * MS, 5 * MS]);
    for i in 0..60u64 {
        let _ = call(&timer, &pipeline, |_| 10 + i % 10);
    }
    next_slice(&timer, &pipeline);
    // Learnt: the cut attempts' lower bounds kept the percentile from shrinking, and the
    // limit grew past every attempt; p99 ≈ 19 ms, × 2.
    let (limits, out) = call(&timer, &pipeline, |_| 19);
    assert_eq!(out, Ok(1));
    assert!(near(limits[0], 38 * MS), "{limits:?}");
    // The service slows down to 40..=79 ms: cut at first, recorded at the limit, the limit
    // grows slice after slice until attempts fit again.
    let mut cut_before = timeout.stats().timed_out;
    let mut last_cuts = u64::MAX;
    for _ in 0..6 {
        for i in 0..50u64 {
            let _ = call(&timer, &pipeline, |_| 40 + i % 40);
        }
        timer.advance(Duration::from_secs(1));
        last_cuts = timeout.stats().timed_out - cut_before;
        cut_before = timeout.stats().timed_out;
    }
    assert_eq!(last_cuts, 0, "the limit caught up with the slower service");
    next_slice(&timer, &pipeline);
    let (limits, out) = call(&timer, &pipeline, |_| 79);
    assert_eq!(out, Ok(1));
    assert!(near(limits[0], 158 * MS), "{limits:?}");
    // Faster again: once the slow spell has left the 10 s window, the limit comes back down.
    timer.advance(Duration::from_secs(10));
    for _ in 0..30 {
        let _ = call(&timer, &pipeline, |_| 10);
    }
    next_slice(&timer, &pipeline);
    let (limits, _) = call(&timer, &pipeline, |_| 10);
    assert!(near(limits[0], 20 * MS), "{limits:?}");
}

#[test]
fn floor_and_ceiling_are_respected() {
    let timer = ManualTimer::new();
    let timeout = adaptive(30 * MS, 100 * MS);
    let pipeline = pipeline(&timer, &timeout, 1);
    // Fast attempts: p99 × 2 = 2 ms, held at the floor.
    for _ in 0..30 {
        assert_eq!(call(&timer, &pipeline, |_| 1).1, Ok(1));
    }
    timer.advance(Duration::from_secs(1));
    let (limits, _) = call(&timer, &pipeline, |_| 1);
    assert_eq!(limits, [30 * MS]);
    // Slow ones (cut at 30 ms, then at what they taught): the limit rises to the ceiling and
    // no higher, and an attempt longer than it is cut there.
    for _ in 0..5 {
        for _ in 0..100 {
            let _ = call(&timer, &pipeline, |_| 90);
        }
        timer.advance(Duration::from_secs(1));
    }
    let start = timer.now();
    let (limits, out) = call(&timer, &pipeline, |_| 500);
    assert_eq!(limits, [100 * MS]);
    assert_eq!(out, Err(PipelineError::AttemptTimedOut { attempts: 1 }));
    assert_eq!(timer.now() - start, 100 * MS);
}

#[test]
fn cut_attempts_are_counted_and_false_timeouts_estimated_from_their_fates() {
    let timer = ManualTimer::new();
    let timeout = adaptive(20 * MS, Duration::from_secs(1));
    let pipeline = pipeline(&timer, &timeout, 2);
    // A caller that learns the fate of an attempt the pipeline cut (here it knows how long the
    // attempt would have taken and that the service gives up at 50 ms) reports it.
    struct Fate {
        timeout: AdaptiveTimeout,
        would_succeed: bool,
        done: Cell<bool>,
    }
    impl Drop for Fate {
        fn drop(&mut self) {
            if !self.done.get() {
                self.timeout.record_late(self.would_succeed);
            }
        }
    }
    // Attempt 1 takes `first` ms; the retry 5 ms. 10 calls: 6 cut ones, 4 of them would
    // have answered (30 ms), 2 not (80 ms, past the service's 50 ms); 4 in time.
    let firsts = [30, 5, 80, 30, 5, 30, 80, 5, 30, 5];
    for first in firsts {
        let t = timer.clone();
        let timeout = timeout.clone();
        let out = timer.block_on(pipeline.call(move |attempt| {
            let took = if attempt.number() == 1 { first } else { 5 };
            let fate = Fate {
                timeout: timeout.clone(),
                would_succeed: took <= 50,
                done: Cell::new(false),
            };
            let sleep = t.sleep(Duration::from_millis(took));
            async move {
                sleep.await;
                fate.done.set(true);
                Ok::<_, ()>(())
            }
        }));
        assert_eq!(out, Ok(()));
    }
    let stats = timeout.stats();
    assert_eq!(stats.timed_out, 6);
    assert_eq!(stats.completed, 4 + 6);
    assert_eq!((stats.late_succeeded, stats.late_failed), (4, 2));
    assert_eq!(stats.timeout_rate(), Some(6.0 / 16.0));
    assert_eq!(stats.false_timeout_rate(), Some(4.0 / 6.0));
}

#[test]
fn the_deadline_caps_the_limit_and_its_cut_is_not_a_timeout() {
    let timer = ManualTimer::new();
    let timeout = adaptive(50 * MS, Duration::from_secs(1));
    let pipeline = Pipeline::with_timer(timer.clone())
        .attempt_timeout_adaptive(timeout.clone())
        .total_timeout(30 * MS)
        .build()
        .unwrap();
    let (limits, out) = call(&timer, &pipeline, |_| 100);
    assert_eq!(limits, [30 * MS]);
    assert!(matches!(out, Err(PipelineError::DeadlineReached { .. })));
    // Cancelled by the call's deadline, not cut by its own limit: not recorded.
    assert_eq!(timeout.stats(), Default::default());
    assert_eq!(timeout.latency().count_at(timer.now()), 0);
}

#[test]
fn a_ready_attempt_is_recorded_without_a_clock() {
    let timer = ManualTimer::new();
    let timeout = adaptive(50 * MS, Duration::from_secs(1));
    let pipeline = pipeline(&timer, &timeout, 1);
    let out = timer.block_on(pipeline.call(|a| async move { Ok::<_, ()>(a.number()) }));
    assert_eq!(out, Ok(1));
    assert_eq!(timeout.stats().completed, 1);
    assert_eq!(timer.pending_sleeps(), 0);
}

#[test]
fn dropping_a_call_mid_attempt_leaves_the_adaptive_state_consistent() {
    let timer = ManualTimer::new();
    let timeout = adaptive(50 * MS, Duration::from_secs(1));
    let pipeline = pipeline(&timer, &timeout, 3);
    for _ in 0..3 {
        assert_eq!(call(&timer, &pipeline, |_| 10).1, Ok(1));
    }
    let before = (timeout.stats(), timeout.latency().count_at(timer.now()));
    let dropped = Rc::new(Cell::new(0));
    for polls in 1..4 {
        let t = timer.clone();
        let d = dropped.clone();
        let mut call = Box::pin(pipeline.call(move |_| {
            let sleep = t.sleep(Duration::from_secs(1));
            let guard = scopeguard(d.clone());
            async move {
                sleep.await;
                drop(guard);
                Ok::<_, ()>(0)
            }
        }));
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..polls {
            assert!(call.as_mut().poll(&mut cx).is_pending());
            timer.advance(20 * MS); // the 50 ms limit not yet reached
        }
        drop(call);
        assert_eq!(timer.pending_sleeps(), 0);
    }
    assert_eq!(dropped.get(), 3, "each attempt was cancelled");
    // Nothing recorded for the cancelled attempts, and the timeout still works.
    assert_eq!(
        (timeout.stats(), timeout.latency().count_at(timer.now())),
        before
    );
    assert_eq!(timeout.timeout_at(timer.now()), 50 * MS);
    assert_eq!(call(&timer, &pipeline, |_| 10).1, Ok(1));
    assert_eq!(timeout.stats().completed, before.0.completed + 1);
}

/// Counts into `count` when dropped.
fn scopeguard(count: Rc<Cell<u32>>) -> impl Drop {
    struct Guard(Rc<Cell<u32>>);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    Guard(count)
}

#[test]
fn a_fixed_and_an_adaptive_attempt_timeout_together_are_refused() {
    let timer = ManualTimer::new();
    let timeout = adaptive(50 * MS, Duration::from_secs(1));
    let both = |fixed_first: bool| {
        let b = Pipeline::with_timer(timer.clone());
        let b = if fixed_first {
            b.attempt_timeout(MS)
                .attempt_timeout_adaptive(timeout.clone())
        } else {
            b.attempt_timeout_adaptive(timeout.clone())
                .attempt_timeout(MS)
        };
        b.build().unwrap_err().field()
    };
    assert_eq!(both(true), "attempt_timeout_adaptive");
    assert_eq!(both(false), "attempt_timeout_adaptive");
    let pipeline = Pipeline::with_timer(timer.clone())
        .attempt_timeout_adaptive(timeout.clone())
        .build()
        .unwrap();
    assert_eq!(pipeline.attempt_timeout(), None);
    assert!(pipeline.attempt_timeout_adaptive().is_some());
}

#[test]
fn hedges_are_bounded_by_the_adaptive_limit_too() {
    let timer = ManualTimer::new();
    let timeout = adaptive(40 * MS, Duration::from_secs(1));
    let pipeline = Pipeline::with_timer(timer.clone())
        .attempt_timeout_adaptive(timeout.clone())
        .hedge(
            crate::hedge::Hedge::builder()
                .fixed_delay(10 * MS)
                .unbudgeted()
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let (limits, out) = call(&timer, &pipeline, |_| 1_000);
    assert_eq!(limits, [40 * MS, 40 * MS]);
    assert_eq!(out, Err(PipelineError::AttemptTimedOut { attempts: 2 }));
    assert_eq!(timeout.stats().timed_out, 2);
}
