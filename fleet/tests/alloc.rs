//! The call path allocates nothing with sharing on: a breaker's acquire and record, a retry
//! budget's deposit and withdrawal, a rate limiter's acquire, each while a `Fleet` shares it
//! with a real redis-server (its thread allocating freely: the counting allocator below
//! counts the current thread only). Skipped without a redis-server unless
//! `TAILGUARD_REQUIRE_REDIS=1`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use tailguard::breaker::CircuitBreaker;
use tailguard::rate::RateLimiter;
use tailguard::retry::RetryBudget;
use tailguard_fleet::{Fleet, Mode, RateFallback};

mod common;
use common::{eventually, redis};

struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count_one() {
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

fn allocations_in(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn the_counter_counts() {
    assert!(allocations_in(|| drop(std::hint::black_box(Box::new(5u64)))) >= 1);
}

#[test]
fn shared_policies_allocate_nothing_on_the_call_path() {
    let Some(redis) = redis() else { return };
    let fleet = Fleet::builder(&redis.url())
        .interval(Duration::from_millis(10))
        .on_log(|_| {})
        .build()
        .unwrap();
    let breaker = CircuitBreaker::builder()
        .name("alloc")
        .count_window(100)
        .minimum_calls(100)
        .build()
        .unwrap();
    let budget = RetryBudget::builder().ratio(0.5).build().unwrap();
    let limiter = RateLimiter::builder()
        .rate(1_000_000, Duration::from_secs(1))
        .burst(1_000)
        .build()
        .unwrap();
    fleet.share(&breaker).unwrap();
    fleet.share_budget("alloc", &budget).unwrap();
    fleet
        .share_rate("alloc", &limiter, RateFallback::LastShare)
        .unwrap();
    assert!(eventually(
        || fleet.status().mode == Mode::Shared && fleet.status().syncs >= 3
    ));
    // Many calls, across many syncs of the fleet's thread (every 10 ms).
    let syncs = fleet.status().syncs;
    let mut admitted = 0;
    let allocated = allocations_in(|| {
        for _ in 0..20 {
            for _ in 0..1_000 {
                breaker.try_acquire().unwrap().success();
                budget.deposit();
                let _ = budget.try_withdraw();
                admitted += u32::from(limiter.try_acquire().is_ok());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    assert_eq!(allocated, 0);
    assert!(admitted > 0);
    assert!(fleet.status().syncs > syncs, "the fleet synced meanwhile");
    assert_eq!(fleet.status().mode, Mode::Shared);
}
