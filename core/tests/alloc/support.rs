//! The counting global allocator of the `alloc` test binary, and helpers to count what a piece
//! of code allocates.
//!
//! Declaring this module **installs** the allocator for the whole test binary. It wraps
//! [`System`] and counts the allocations (and reallocations) made by the current thread only,
//! so tests running in parallel on other threads do not disturb a count. The library forbids
//! `unsafe`; an integration test is a crate of its own, so the `unsafe impl` lives here.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count_one() {
    // `try_with`: a thread's last allocations can come after its thread-locals are gone.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every method forwards to `System` unchanged; the counter is a const-initialised
// thread-local `Cell`, which itself never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// How many allocations the current thread has made so far.
pub fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

/// How many allocations the current thread made while running `f`.
pub fn allocations_in(f: impl FnOnce()) -> usize {
    allocations_and_output(f).0
}

/// How many allocations the current thread made while running `f`, and what `f` returned.
pub fn allocations_and_output<R>(f: impl FnOnce() -> R) -> (usize, R) {
    let before = allocations();
    let output = f();
    (allocations() - before, output)
}

/// Polls `fut` once with a no-op waker, then drops it.
pub fn poll_once<F: Future>(fut: F) -> Poll<F::Output> {
    let mut fut = pin!(fut);
    fut.as_mut().poll(&mut Context::from_waker(Waker::noop()))
}

/// A count of zero means something only if the allocator is installed and counting.
#[test]
fn the_counter_sees_allocations() {
    assert!(allocations_in(|| drop(std::hint::black_box(Box::new(5u64)))) >= 1);
    assert!(allocations_in(|| drop(std::hint::black_box(vec![0u8; 64]))) >= 1);
    let mut grow = Vec::<u8>::with_capacity(1);
    assert!(
        allocations_in(|| grow.extend_from_slice(&[0; 4096])) >= 1,
        "realloc counts"
    );
}
