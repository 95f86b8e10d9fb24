//! Recording into and reading from a histogram never allocates after construction.
//!
//! A counting global allocator (this test file is its own crate, so the `unsafe impl` stays
//! here) counts allocations made by the current thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

use tailguard::latency::{LatencyHistogram, RollingHistogram};

struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every method forwards to `System` unchanged; the counter is a const-initialised
// thread-local `Cell`, which itself never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn the_counter_sees_allocations() {
    assert!(allocations_during(|| drop(std::hint::black_box(vec![1u8; 16]))) >= 1);
}

#[test]
fn histogram_record_read_merge_reset_do_not_allocate() {
    let a = LatencyHistogram::new();
    let b = LatencyHistogram::new();
    let n = allocations_during(|| {
        for i in 0..10_000u64 {
            a.record(Duration::from_nanos(i * 7919));
            b.record_nanos(i);
        }
        std::hint::black_box(a.quantile(0.99));
        std::hint::black_box((a.min(), a.max(), a.mean(), a.count()));
        a.merge(&b);
        b.reset();
    });
    assert_eq!(n, 0);
}

#[test]
fn rolling_record_and_read_do_not_allocate() {
    let t0 = Instant::now();
    let rolling = RollingHistogram::new(Duration::from_secs(1), 10).unwrap();
    let n = allocations_during(|| {
        for i in 0..5_000u64 {
            let now = t0 + Duration::from_millis(i);
            rolling.record_at(now, Duration::from_micros(i));
            rolling.record(Duration::from_micros(i));
            if i % 100 == 0 {
                std::hint::black_box(rolling.quantile_at(now, 0.95));
                std::hint::black_box(rolling.count_at(now));
            }
        }
    });
    assert_eq!(n, 0);
}
