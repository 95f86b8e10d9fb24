//! Admitting a call through the overload limits allocates nothing.

use std::time::{Duration, Instant};

use crate::support::{allocations_in, poll_once};
use tailguard::bulkhead::Bulkhead;
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
