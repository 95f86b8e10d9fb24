//! The breaker's happy path, and its state transitions, allocate nothing, counted by the
//! allocator in `support`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use crate::support::{allocations_in, poll_once};
use tailguard::breaker::{CircuitBreaker, State};
use tailguard::time::ManualTimer;

fn breakers(
    timer: &ManualTimer,
    transitions: &Arc<AtomicUsize>,
) -> Vec<CircuitBreaker<ManualTimer>> {
    let listener = |count: Arc<AtomicUsize>| {
        move |_: &tailguard::breaker::Transition| {
            count.fetch_add(1, Ordering::Relaxed);
        }
    };
    vec![
        CircuitBreaker::builder()
            .count_window(50)
            .minimum_calls(10)
            .open_duration(Duration::from_secs(5))
            .half_open_calls(2)
            .on_transition(listener(transitions.clone()))
            .build_with(timer.clone())
            .unwrap(),
        CircuitBreaker::builder()
            .time_window(Duration::from_secs(10), 10)
            .minimum_calls(10)
            .slow_calls(Duration::from_secs(1), 0.5)
            .consecutive_failures(100)
            .half_open_calls(2)
            .on_transition(listener(transitions.clone()))
            .build_with(timer.clone())
            .unwrap(),
    ]
}

#[test]
fn closed_admit_and_record_allocate_nothing() {
    let timer = ManualTimer::new();
    let transitions = Arc::new(AtomicUsize::new(0));
    for breaker in breakers(&timer, &transitions) {
        breaker.try_acquire().unwrap().success(); // warm up: the thread's stripe
        let allocations = allocations_in(|| {
            for i in 0..10_000 {
                let permit = breaker.try_acquire().unwrap();
                if i % 10 == 0 {
                    permit.failure();
                } else if i % 10 == 1 {
                    drop(permit);
                } else {
                    permit.success();
                }
            }
        });
        assert_eq!(allocations, 0);
        assert_eq!(breaker.state(), State::Closed);
    }
}

#[test]
fn transitions_and_rejections_allocate_nothing() {
    let timer = ManualTimer::new();
    let transitions = Arc::new(AtomicUsize::new(0));
    for breaker in breakers(&timer, &transitions) {
        breaker.try_acquire().unwrap().success();
        // One round first: with the `metrics` feature, each kind of transition registers its
        // counter the first time it happens (and only then).
        let cycle = |breaker: &CircuitBreaker<ManualTimer>| {
            while breaker.state() == State::Closed {
                breaker.try_acquire().unwrap().failure();
            }
            timer.advance(Duration::from_secs(3600));
            let probe = breaker.try_acquire().unwrap();
            drop(breaker.try_acquire().unwrap());
            probe.success();
            breaker.try_acquire().unwrap().success();
            assert_eq!(breaker.state(), State::Closed);
            breaker.force_open();
            breaker.disable();
            breaker.reset();
        };
        cycle(&breaker);
        let before = transitions.load(Ordering::Relaxed);
        let allocations = allocations_in(|| {
            for _ in 0..3 {
                while breaker.state() == State::Closed {
                    breaker.try_acquire().unwrap().failure();
                }
                assert!(breaker.try_acquire().is_err()); // open: rejected
                timer.advance(Duration::from_secs(3600));
                let probe = breaker.try_acquire().unwrap(); // half-open
                drop(breaker.try_acquire().unwrap()); // a dropped probe
                probe.success();
                breaker.try_acquire().unwrap().success();
                assert_eq!(breaker.state(), State::Closed);
            }
            breaker.force_open();
            breaker.disable();
            breaker.reset();
            let _ = breaker.metrics();
        });
        assert_eq!(allocations, 0);
        assert_eq!(transitions.load(Ordering::Relaxed) - before, 3 * 3 + 3);
    }
}

#[test]
fn a_ready_call_allocates_nothing() {
    let timer = ManualTimer::new();
    let transitions = Arc::new(AtomicUsize::new(0));
    let breaker = breakers(&timer, &transitions).remove(0);
    breaker.try_acquire().unwrap().success();
    let allocations = allocations_in(|| {
        for _ in 0..1_000 {
            let call = breaker.call(|| async { Ok::<_, ()>(7) });
            assert_eq!(poll_once(call), Poll::Ready(Ok(7)));
        }
    });
    assert_eq!(allocations, 0);
    assert_eq!(timer.pending_sleeps(), 0);
}

/// Measurements on the default timer (the kernel's coarse clock) and on a `CachedTimer` (one
/// atomic load) allocate nothing either: slow-call timing and a time window, closed.
#[cfg(feature = "async-io")]
#[test]
fn measured_calls_on_real_coarse_clocks_allocate_nothing() {
    use tailguard::time::{AsyncIoTimer, CachedTimer, Timer};

    fn measured<T: Timer>(timer: T) -> CircuitBreaker<T> {
        CircuitBreaker::builder()
            .time_window(Duration::from_secs(10), 10)
            .minimum_calls(100_000)
            .slow_calls(Duration::from_secs(1), 0.5)
            .build_with(timer)
            .unwrap()
    }

    fn calls<T: Timer>(breaker: &CircuitBreaker<T>) -> usize {
        breaker.try_acquire().unwrap().success(); // warm up: the thread's stripe
        allocations_in(|| {
            for i in 0..10_000 {
                let permit = breaker.try_acquire().unwrap();
                if i % 10 == 0 {
                    permit.failure();
                } else {
                    permit.success();
                }
            }
        })
    }

    assert_eq!(calls(&measured(AsyncIoTimer)), 0);
    // Starting the ticker thread allocates, once, when the timer is made.
    let cached = measured(CachedTimer::new(AsyncIoTimer));
    assert_eq!(calls(&cached), 0);
    assert_eq!(cached.state(), State::Closed);
}
