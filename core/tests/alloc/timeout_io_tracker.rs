//! The happy paths allocate nothing: a timeout whose future is ready on first poll, a
//! `TimeoutIo` read that does not wait, a tracked task.
//!
//! Allocations are counted by the allocator in `support`, on the current thread only, so other
//! test threads do not disturb the count.

use std::task::Poll;
use std::time::Duration;

use crate::support::{allocations_in, poll_once};
use tailguard::time::{AsyncIoTimer, ManualTimer};
use tailguard::timeout::timeout_with;

#[test]
fn ready_timeout_allocates_nothing_on_any_timer() {
    let manual = ManualTimer::new();
    let count = allocations_in(|| {
        let one = async { 1 };
        assert!(poll_once(timeout_with(AsyncIoTimer, Duration::from_secs(1), one)).is_ready());
        // FuturesTimer exists only with the `futures-timer` feature (`scripts/test` turns on all).
        #[cfg(feature = "futures-timer")]
        {
            let two = async { 2 };
            let timer = tailguard::time::FuturesTimer;
            assert!(poll_once(timeout_with(timer, Duration::from_secs(1), two)).is_ready());
        }
        let three = async { 3 };
        let timer = manual.clone();
        assert!(poll_once(timeout_with(timer, Duration::from_secs(1), three)).is_ready());
    });
    assert_eq!(count, 0);
    assert_eq!(manual.pending_sleeps(), 0);
}

#[test]
fn timeout_io_read_that_does_not_wait_allocates_nothing() {
    use futures::io::AsyncReadExt;
    // A cursor is always ready (piper's pipe yields at random, 1 read in 100).
    let stream = futures::io::Cursor::new(b"abcd".to_vec());
    let mut io = tailguard::io::TimeoutIo::with_timer(stream, AsyncIoTimer)
        .read_idle(Duration::from_secs(1))
        .read_total(Duration::from_secs(5))
        .write_idle(Duration::from_secs(1));
    let mut buf = [0u8; 4];
    let count = allocations_in(|| {
        assert!(matches!(poll_once(io.read(&mut buf)), Poll::Ready(Ok(4))));
    });
    assert_eq!(count, 0);
}

#[test]
fn tracking_a_task_allocates_nothing() {
    let tracker = tailguard::shutdown::TaskTracker::new();
    let a = allocations_in(|| {
        let guard = tracker.track();
        drop(guard);
    });
    let b = allocations_in(|| {
        assert!(poll_once(tracker.track_future(async { 1 })).is_ready());
    });
    let c = allocations_in(|| {
        let guard = tracker.track();
        drop(guard);
    });
    assert_eq!((a, b, c), (0, 0, 0));
}
