//! The sans-IO breaker's unit tests, in virtual time (explicit instants).

use std::sync::{Arc, Mutex};

use super::*;
use crate::breaker::CircuitBreakerBuilder;

const SEC: Duration = Duration::from_secs(1);

fn machine(builder: CircuitBreakerBuilder, start: Instant) -> StateMachine {
    builder.stripes(1).build_state_machine_at(start).unwrap()
}

fn small() -> CircuitBreakerBuilder {
    CircuitBreakerBuilder::new()
        .count_window(4)
        .minimum_calls(4)
        .failure_rate(0.5)
        .open_duration(10 * SEC)
        .half_open_calls(2)
        .half_open_timeout(5 * SEC)
}

fn call(machine: &StateMachine, outcome: Outcome, now: Instant) {
    let ticket = machine.try_acquire_at(now).expect("admitted");
    machine.record_at(ticket, outcome, now);
}

fn trip(machine: &StateMachine, now: Instant) {
    for _ in 0..4 {
        call(machine, Outcome::Failure, now);
    }
    assert_eq!(machine.state(), State::Open);
}

#[test]
fn opens_at_the_failure_rate_once_minimum_calls_are_in() {
    let t0 = Instant::now();
    let m = machine(small(), t0);
    call(&m, Outcome::Failure, t0);
    call(&m, Outcome::Failure, t0);
    call(&m, Outcome::Success, t0);
    assert_eq!(m.state(), State::Closed); // 3 calls < minimum 4
    call(&m, Outcome::Success, t0);
    assert_eq!(m.state(), State::Closed); // a success never opens
    call(&m, Outcome::Failure, t0); // window: F S S F = 50%
    assert_eq!(m.state(), State::Open);
}

#[test]
fn open_rejects_until_the_open_duration_then_probes() {
    let t0 = Instant::now();
    let m = machine(small(), t0);
    trip(&m, t0);
    let rejected = m.try_acquire_at(t0 + 4 * SEC).unwrap_err();
    assert_eq!(rejected.state(), State::Open);
    assert_eq!(rejected.retry_after(), Some(6 * SEC));
    let t1 = t0 + 10 * SEC;
    let a = m.try_acquire_at(t1).unwrap();
    let b = m.try_acquire_at(t1).unwrap();
    assert!(a.is_probe() && b.is_probe());
    let full = m.try_acquire_at(t1 + SEC).unwrap_err();
    assert_eq!(full.state(), State::HalfOpen);
    assert_eq!(full.retry_after(), Some(4 * SEC));
    m.record_at(a, Outcome::Success, t1);
    assert_eq!(m.state(), State::HalfOpen);
    m.record_at(b, Outcome::Success, t1);
    assert_eq!(m.state(), State::Closed);
    assert_eq!(m.metrics_at(t1).calls, 0, "closing starts a fresh window");
}

#[test]
fn a_failed_probe_reopens_for_longer() {
    let t0 = Instant::now();
    let policy = crate::backoff::Backoff::exponential(10 * SEC)
        .max_delay(60 * SEC)
        .jitter(crate::backoff::Jitter::None)
        .build()
        .unwrap();
    let m = machine(small().open_backoff(policy), t0);
    trip(&m, t0);
    let t1 = t0 + 10 * SEC;
    let probe = m.try_acquire_at(t1).unwrap();
    m.record_at(probe, Outcome::Failure, t1);
    assert_eq!(m.state(), State::Open);
    assert_eq!(
        m.try_acquire_at(t1).unwrap_err().retry_after(),
        Some(20 * SEC)
    );
    // Closing starts the sequence over.
    let t2 = t1 + 20 * SEC;
    for _ in 0..2 {
        call(&m, Outcome::Success, t2);
    }
    assert_eq!(m.state(), State::Closed);
    trip(&m, t2);
    assert_eq!(
        m.try_acquire_at(t2).unwrap_err().retry_after(),
        Some(10 * SEC)
    );
}

#[test]
fn dropped_probes_free_their_slot_and_count_as_neither() {
    let t0 = Instant::now();
    let m = machine(small(), t0);
    trip(&m, t0);
    let t1 = t0 + 10 * SEC;
    let a = m.try_acquire_at(t1).unwrap();
    let b = m.try_acquire_at(t1).unwrap();
    m.release(a);
    let c = m.try_acquire_at(t1).unwrap();
    assert!(m.try_acquire_at(t1).is_err());
    m.record_at(b, Outcome::Success, t1);
    m.record_at(c, Outcome::Success, t1);
    assert_eq!(m.state(), State::Closed);
}

#[test]
fn a_probe_that_never_reports_times_out_as_a_failure() {
    let t0 = Instant::now();
    let m = machine(small(), t0);
    trip(&m, t0);
    let t1 = t0 + 10 * SEC;
    let lost = m.try_acquire_at(t1).unwrap();
    let ok = m.try_acquire_at(t1).unwrap();
    m.record_at(ok, Outcome::Success, t1);
    // The lost probe is never handed back; 5 s later it counts as failed.
    let t2 = t1 + 5 * SEC;
    let rejected = m.try_acquire_at(t2).unwrap_err();
    assert_eq!(rejected.state(), State::Open);
    assert_eq!(m.state(), State::Open);
    // Its late report is ignored.
    m.record_at(lost, Outcome::Success, t2);
    assert_eq!(m.state(), State::Open);
}

#[test]
fn success_rate_lets_a_round_close_despite_a_failure() {
    let t0 = Instant::now();
    let m = machine(small().half_open_calls(4).half_open_success_rate(0.75), t0);
    trip(&m, t0);
    let t1 = t0 + 10 * SEC;
    let probes: Vec<_> = (0..4).map(|_| m.try_acquire_at(t1).unwrap()).collect();
    let outcomes = [
        Outcome::Failure,
        Outcome::Success,
        Outcome::Success,
        Outcome::Success,
    ];
    for (probe, outcome) in probes.into_iter().zip(outcomes) {
        m.record_at(probe, outcome, t1);
    }
    assert_eq!(m.state(), State::Closed);
}

#[test]
fn stale_permits_do_not_count() {
    let t0 = Instant::now();
    let m = machine(small(), t0);
    let old: Vec<_> = (0..4).map(|_| m.try_acquire_at(t0).unwrap()).collect();
    trip(&m, t0);
    let t1 = t0 + 10 * SEC;
    call(&m, Outcome::Success, t1);
    call(&m, Outcome::Success, t1);
    assert_eq!(m.state(), State::Closed);
    // Permits from the previous closed period fail now: ignored.
    for ticket in old {
        m.record_at(ticket, Outcome::Failure, t1);
    }
    assert_eq!(m.state(), State::Closed);
    assert_eq!(m.metrics_at(t1).calls, 0);
}

#[test]
fn slow_calls_open_the_breaker() {
    let t0 = Instant::now();
    let m = machine(small().slow_calls(2 * SEC, 0.5), t0);
    for _ in 0..4 {
        let ticket = m.try_acquire_at(t0).unwrap();
        m.record_at(ticket, Outcome::Success, t0 + 3 * SEC);
    }
    assert_eq!(m.state(), State::Open);
    assert_eq!(m.metrics_at(t0).slow_calls, 4);
}

#[test]
fn consecutive_failures_open_before_minimum_calls() {
    let t0 = Instant::now();
    let m = machine(
        small()
            .count_window(100)
            .minimum_calls(100)
            .consecutive_failures(3),
        t0,
    );
    call(&m, Outcome::Failure, t0);
    call(&m, Outcome::Failure, t0);
    call(&m, Outcome::Success, t0);
    call(&m, Outcome::Failure, t0);
    call(&m, Outcome::Failure, t0);
    assert_eq!(m.state(), State::Closed);
    assert_eq!(m.metrics_at(t0).consecutive_failures, 2);
    call(&m, Outcome::Failure, t0);
    assert_eq!(m.state(), State::Open);
}

#[test]
fn time_window_forgets_old_failures() {
    let t0 = Instant::now();
    let m = machine(small().time_window(10 * SEC, 10).minimum_calls(3), t0);
    call(&m, Outcome::Failure, t0);
    call(&m, Outcome::Failure, t0);
    // Eleven seconds later both failures have left the window.
    let t1 = t0 + 11 * SEC;
    call(&m, Outcome::Success, t1);
    call(&m, Outcome::Success, t1);
    call(&m, Outcome::Failure, t1);
    assert_eq!(m.state(), State::Closed);
    assert_eq!(m.metrics_at(t1).calls, 3);
    call(&m, Outcome::Failure, t1);
    assert_eq!(m.state(), State::Open);
}

#[test]
fn forced_open_disabled_and_reset() {
    let t0 = Instant::now();
    let m = machine(small(), t0);
    m.force_open_at(t0);
    let rejected = m.try_acquire_at(t0 + 1000 * SEC).unwrap_err();
    assert_eq!(
        (rejected.state(), rejected.retry_after()),
        (State::ForcedOpen, None)
    );
    m.disable_at(t0);
    for _ in 0..10 {
        call(&m, Outcome::Failure, t0);
    }
    assert_eq!(m.state(), State::Disabled, "disabled never trips");
    assert_eq!(m.metrics_at(t0).failures, 4, "but keeps measuring");
    m.reset_at(t0);
    assert_eq!(m.state(), State::Closed);
    assert_eq!(m.metrics_at(t0).calls, 0);
    trip(&m, t0);
}

#[test]
fn ignored_outcomes_count_as_neither() {
    let t0 = Instant::now();
    let m = machine(small(), t0);
    for _ in 0..10 {
        call(&m, Outcome::Ignored, t0);
    }
    assert_eq!(m.metrics_at(t0).calls, 0);
}

#[test]
fn rejections_are_counted() {
    let t0 = Instant::now();
    let m = machine(small(), t0);
    trip(&m, t0);
    for _ in 0..3 {
        assert!(m.try_acquire_at(t0).is_err());
    }
    assert_eq!(m.metrics_at(t0).rejections, 3);
}

#[test]
fn the_listener_sees_every_transition_and_may_call_back() {
    let t0 = Instant::now();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let machine_slot: Arc<Mutex<Option<Arc<StateMachine>>>> = Arc::default();
    let listener = {
        let seen = Arc::clone(&seen);
        let machine_slot = Arc::clone(&machine_slot);
        move |t: &Transition| {
            // Calling back into the breaker from the listener must not deadlock.
            if let Some(m) = machine_slot.lock().unwrap().as_ref() {
                let _ = m.metrics_at(t.at);
                assert_eq!(m.state(), t.to);
            }
            seen.lock()
                .unwrap()
                .push((t.from, t.to, t.reason, t.generation));
        }
    };
    let m = Arc::new(machine(small().on_transition(listener), t0));
    *machine_slot.lock().unwrap() = Some(Arc::clone(&m));
    trip(&m, t0);
    let t1 = t0 + 10 * SEC;
    call(&m, Outcome::Success, t1);
    call(&m, Outcome::Success, t1);
    m.force_open_at(t1);
    m.reset_at(t1);
    use Reason::*;
    use State::*;
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (Closed, Open, FailureRate, 1),
            (Open, HalfOpen, OpenDurationElapsed, 2),
            (HalfOpen, Closed, ProbesSucceeded, 3),
            (Closed, ForcedOpen, Manual, 4),
            (ForcedOpen, Closed, Manual, 5),
        ]
    );
    *machine_slot.lock().unwrap() = None;
}

#[test]
fn time_going_backwards_does_not_panic() {
    let t0 = Instant::now() + 100 * SEC;
    let m = machine(small().time_window(10 * SEC, 5).slow_calls(SEC, 0.5), t0);
    let ticket = m.try_acquire_at(t0).unwrap();
    m.record_at(ticket, Outcome::Failure, t0 - 50 * SEC);
    let _ = m.metrics_at(t0 - 100 * SEC);
    for back in 1..10 {
        if let Ok(ticket) = m.try_acquire_at(t0 - back * SEC) {
            m.record_at(ticket, Outcome::Failure, t0 - 2 * back * SEC);
        }
    }
    assert_eq!(m.state(), State::Open);
    assert!(m.try_acquire_at(t0 - 90 * SEC).is_err());
}
