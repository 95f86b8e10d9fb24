//! Admitting a call through the overload limits allocates nothing.

use std::time::{Duration, Instant};

use crate::support::{allocations_in, poll_once};
use tailguard::bulkhead::Bulkhead;
use tailguard::rate::RateLimiter;
use tailguard::throttle::Throttle;
use tailguard::time::{ManualTimer, Timer};

/// A clock that stands still, whose sleeps never end (and allocate nothing).
#[derive(Clone, Debug)]
struct StillTimer(Instant);

impl Timer for StillTimer {
    type Sleep = std::future::Pending<()>;

    fn now(&self) -> Instant {
        self.0
    }

    fn sleep_until(&self, _: Instant) -> Self::Sleep {
        std::future::pending()
    }
}

#[test]
fn bulkhead_acquire_and_release_allocate_nothing() {
    let timer = ManualTimer::new();
    let bulkhead = Bulkhead::builder()
        .max_concurrent(4)
        .max_queue(16)
        .build_with(timer.clone())
        .unwrap();
    let deadline = timer.now() + Duration::from_secs(1);
    let allocs = allocations_in(|| {
        for _ in 0..100 {
            drop(bulkhead.try_acquire().unwrap());
            drop(bulkhead.try_acquire_at(timer.now()).unwrap());
            assert!(poll_once(bulkhead.acquire_until(deadline)).is_ready());
        }
    });
    assert_eq!(allocs, 0);
    drop(bulkhead);
    // Waiting (up to the preallocated queue) allocates nothing either: the nodes are reused.
    // (On a timer whose sleeps allocate nothing: the virtual clock's sleep queue may grow.)
    let bulkhead = Bulkhead::builder()
        .max_concurrent(4)
        .max_queue(16)
        .build_with(StillTimer(timer.now()))
        .unwrap();
    let held: Vec<_> = (0..4).map(|_| bulkhead.try_acquire().unwrap()).collect();
    let allocs = allocations_in(|| {
        for _ in 0..100 {
            assert!(poll_once(bulkhead.acquire_until(deadline)).is_pending());
        }
    });
    assert_eq!(allocs, 0);
    drop(held);
}

#[test]
fn rate_limiter_checks_allocate_nothing() {
    let timer = ManualTimer::new();
    let limiter = RateLimiter::builder()
        .rate(1000, Duration::from_secs(1))
        .burst(10)
        .build_with(timer.clone())
        .unwrap();
    let keyed = RateLimiter::builder()
        .rate(1000, Duration::from_secs(1))
        .max_keys(64)
        .build_keyed_with::<String, _>(timer.clone())
        .unwrap();
    let key = "client-1".to_owned();
    keyed.try_acquire(&key).unwrap(); // the first call for a key clones it in
    let allocs = allocations_in(|| {
        for _ in 0..100 {
            let _ = limiter.try_acquire();
            let _ = limiter.try_acquire_at(timer.now());
            let _ = keyed.try_acquire(&key);
            let _ = poll_once(limiter.acquire_until(timer.now()));
        }
    });
    assert_eq!(allocs, 0);
}

#[test]
fn throttle_decisions_and_records_allocate_nothing() {
    let timer = ManualTimer::new();
    let throttle = Throttle::builder()
        .seed(3)
        .build_with(timer.clone())
        .unwrap();
    let allocs = allocations_in(|| {
        for i in 0..300 {
            let now = timer.now() + Duration::from_millis(i);
            if let Ok(permit) = throttle.try_acquire_at(now) {
                permit.record_at(i % 4 == 0, now);
            }
        }
    });
    assert_eq!(allocs, 0);
}
