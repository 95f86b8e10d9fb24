//! Owned forms, for spawning: `Retry::run_owned`, `CircuitBreaker::call_owned` and
//! `try_acquire_owned`, and `Hedge::run` (which always owned its policy) are `'static + Send`,
//! outlive the handle they came from, and release what they hold when dropped.

use std::future::Future;
use std::pin::pin;
use std::task::Context;
use std::time::Duration;

use tailguard::breaker::{OwnedPermit, State};
use tailguard::hedge::Hedge;
use tailguard::retry::{Retry, RetryBudget};
use tailguard::time::{ManualTimer, Timer};

mod common;
use common::half_open_breaker;

/// Compiles only for what `tokio::spawn` and `smol::spawn` accept.
fn spawnable<F: Future + Send + 'static>(future: F) -> F {
    future
}

#[test]
fn an_owned_permit_outlives_its_handle_and_releases_on_drop() {
    let timer = ManualTimer::new();
    let breaker = half_open_breaker(&timer);
    let permit: OwnedPermit<ManualTimer> = breaker.try_acquire_owned().unwrap();
    assert!(permit.is_probe());
    assert!(
        breaker.try_acquire().is_err(),
        "the only probe slot is taken"
    );
    // Held on another thread, after the handle it came from is gone.
    let handle = breaker.clone();
    drop(breaker);
    std::thread::spawn(move || drop(permit)).join().unwrap();
    assert_eq!(handle.metrics().probes_in_flight, 0);
    handle
        .try_acquire_owned()
        .expect("the slot is free again")
        .success();
    assert_eq!(handle.state(), State::Closed);
}

#[test]
fn an_owned_call_is_spawnable_and_releases_its_probe_when_dropped() {
    let timer = ManualTimer::new();
    let breaker = half_open_breaker(&timer);
    let slow = timer.sleep(Duration::from_secs(60));
    let call = spawnable(breaker.call_owned(move || async move {
        slow.await;
        Ok::<_, ()>(())
    }));
    let waker = futures::task::noop_waker();
    {
        let mut call = pin!(call);
        assert!(call
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        assert_eq!(breaker.metrics().probes_in_flight, 1);
    }
    assert_eq!(breaker.metrics().probes_in_flight, 0);
    assert_eq!(timer.pending_sleeps(), 0);
}

#[test]
fn an_owned_retry_outlives_its_policy_and_refunds_when_dropped() {
    let timer = ManualTimer::new();
    let budget = RetryBudget::builder()
        .ratio(1.0)
        .min_per_second(0)
        .build_with(timer.clone())
        .unwrap();
    let policy = Retry::with_timer(timer.clone())
        .max_attempts(3)
        .budget(budget.clone())
        .build()
        .unwrap();
    budget.deposit_with(timer.clone());
    let call = spawnable(policy.run_owned(|| async { Err::<(), _>("refused") }));
    drop(policy);
    let waker = futures::task::noop_waker();
    {
        let mut call = pin!(call);
        // The first attempt fails: a retry is granted and the loop sleeps in its backoff.
        assert!(call
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        assert_eq!(budget.available_at(timer.now()), 1); // 2 deposits - 1 granted
    }
    // Dropped while holding that retry: it is refunded, and the sleep is gone.
    assert_eq!(budget.available_at(timer.now()), 2);
    assert_eq!(timer.pending_sleeps(), 0);
}

#[test]
fn owned_futures_run_to_completion_on_their_own() {
    let timer = ManualTimer::new();
    let policy = Retry::with_timer(timer.clone())
        .max_attempts(3)
        .build()
        .unwrap();
    let mut failures = 2;
    let retried = spawnable(policy.run_owned(move || {
        failures -= 1;
        let result = if failures >= 0 { Err("busy") } else { Ok(7) };
        async move { result }
    }));
    drop(policy);
    assert_eq!(timer.block_on(retried), Ok(7));

    let hedge = Hedge::builder()
        .fixed_delay(Duration::from_millis(10))
        .build()
        .unwrap();
    let t = timer.clone();
    let hedged = spawnable(hedge.run_with(timer.clone(), move |n| {
        let t = t.clone();
        async move {
            t.sleep(Duration::from_millis(if n == 1 { 1000 } else { 1 }))
                .await;
            Ok::<_, ()>(n)
        }
    }));
    drop(hedge);
    assert_eq!(timer.block_on(hedged), Ok(2));
}
