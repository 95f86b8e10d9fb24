//! Cancellation: dropping a `call` future (or letting a timeout drop it) releases its permit;
//! in half-open that frees the probe slot at once, and no timer is left registered.

use std::future::Future;
use std::pin::pin;
use std::task::Context;
use std::time::Duration;

use tailguard::breaker::{CallError, CircuitBreaker, State};
use tailguard::time::{ManualTimer, Timer};
use tailguard::timeout::timeout_with;

mod common;
use common::half_open_breaker;

#[test]
fn dropping_a_call_future_in_half_open_frees_its_probe_slot() {
    let timer = ManualTimer::new();
    let breaker = half_open_breaker(&timer);
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    {
        let slow = timer.sleep(Duration::from_secs(60));
        let mut call = pin!(breaker.call(|| async {
            slow.await;
            Ok::<_, ()>(())
        }));
        assert!(call.as_mut().poll(&mut cx).is_pending());
        assert_eq!(breaker.state(), State::HalfOpen);
        assert_eq!(breaker.metrics().probes_in_flight, 1);
        // The only probe slot is taken.
        let rejected = breaker.try_acquire().unwrap_err();
        assert_eq!(rejected.state(), State::HalfOpen);
        assert_eq!(timer.pending_sleeps(), 1);
    } // dropped here, mid-call
    assert_eq!(breaker.metrics().probes_in_flight, 0);
    assert_eq!(timer.pending_sleeps(), 0);
    let probe = breaker.try_acquire().expect("the slot is free again");
    probe.success();
    assert_eq!(breaker.state(), State::Closed);
}

#[test]
fn a_timed_out_call_releases_its_probe() {
    let timer = ManualTimer::new();
    let breaker = half_open_breaker(&timer);
    let hung = breaker.call(|| async {
        futures::future::pending::<()>().await;
        Ok::<_, ()>(())
    });
    let result = timer.block_on(timeout_with(timer.clone(), Duration::from_secs(1), hung));
    assert!(result.is_err(), "the timeout fired");
    assert_eq!(breaker.metrics().probes_in_flight, 0);
    assert_eq!(
        breaker.state(),
        State::HalfOpen,
        "a cancelled probe decides nothing"
    );
    assert_eq!(timer.pending_sleeps(), 0);
    let reply = timer.block_on(breaker.call(|| async { Ok::<_, ()>(5) }));
    assert_eq!(reply, Ok(5));
    assert_eq!(breaker.state(), State::Closed);
}

#[test]
fn a_rejected_call_never_runs_the_operation() {
    let timer = ManualTimer::new();
    let breaker = half_open_breaker(&timer);
    let _probe = breaker.try_acquire().unwrap();
    let mut ran = false;
    let result = timer.block_on(breaker.call(|| {
        ran = true;
        async { Ok::<_, ()>(()) }
    }));
    assert!(matches!(result, Err(CallError::Rejected(r)) if r.state() == State::HalfOpen));
    assert!(!ran);
}

#[test]
fn an_operation_error_stays_recoverable() {
    #[derive(Debug, PartialEq)]
    struct Refused(u16);
    let timer = ManualTimer::new();
    let breaker = CircuitBreaker::builder().build_with(timer.clone()).unwrap();
    let result = timer.block_on(breaker.call(|| async { Err::<(), _>(Refused(503)) }));
    assert_eq!(result.unwrap_err().into_inner(), Some(Refused(503)));
    assert_eq!(breaker.metrics().failures, 1);
}
