//! The happy paths allocate nothing: a timeout whose future is ready on first poll, a
//! `TimeoutIo` read that does not wait, a tracked task.
//!
//! A counting global allocator, counting only on the current thread, so other test threads do
//! not disturb the count. (This file is its own crate; the core itself forbids `unsafe`.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tailguard::time::{AsyncIoTimer, FuturesTimer, ManualTimer};
use tailguard::timeout::timeout_with;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_in(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

fn poll_once<F: Future>(fut: F) -> Poll<F::Output> {
    let mut fut = pin!(fut);
    fut.as_mut().poll(&mut Context::from_waker(Waker::noop()))
}

#[test]
fn ready_timeout_allocates_nothing_on_any_timer() {
    let manual = ManualTimer::new();
    let count = allocations_in(|| {
        let one = async { 1 };
        assert!(poll_once(timeout_with(AsyncIoTimer, Duration::from_secs(1), one)).is_ready());
        let two = async { 2 };
        assert!(poll_once(timeout_with(FuturesTimer, Duration::from_secs(1), two)).is_ready());
        let three = async { 3 };
        let timer = manual.clone();
        assert!(poll_once(timeout_with(timer, Duration::from_secs(1), three)).is_ready());
    });
    assert_eq!(count, 0);
    assert_eq!(manual.pending_sleeps(), 0);
}

#[test]
fn the_counter_sees_allocations() {
    // Guards the guard: the allocator above really counts.
    assert!(allocations_in(|| drop(std::hint::black_box(Box::new(5u64)))) >= 1);
}

#[test]
fn timeout_io_read_that_does_not_wait_allocates_nothing() {
    use futures::io::{AsyncReadExt, AsyncWriteExt};
    let (reader, mut writer) = piper::pipe(64);
    let mut io = tailguard::io::TimeoutIo::with_timer(reader, AsyncIoTimer)
        .read_idle(Duration::from_secs(1))
        .write_idle(Duration::from_secs(1));
    futures::executor::block_on(writer.write_all(b"abcd")).unwrap();
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
