//! A hedged call whose primary is ready on its first poll allocates nothing and touches no
//! timer.
//!
//! A counting global allocator (this test file is its own crate, so the `unsafe impl` stays
//! here) counts allocations made by the current thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::task::noop_waker_ref;
use tailguard::hedge::Hedge;
use tailguard::time::{ManualTimer, Timer};

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

fn allocations_during<R>(f: impl FnOnce() -> R) -> (usize, R) {
    let before = ALLOCATIONS.with(Cell::get);
    let out = f();
    (ALLOCATIONS.with(Cell::get) - before, out)
}

/// Polls a fresh hedged call once, counting allocations from creating the call to dropping it.
type Output = Poll<Result<u32, tailguard::hedge::HedgeError<()>>>;

fn ready_call(hedge: &Hedge, timer: &ManualTimer) -> (usize, Output) {
    allocations_during(|| {
        let run = hedge.run_with(timer.clone(), |attempt| async move { Ok::<_, ()>(attempt) });
        let mut run = pin!(run);
        run.as_mut()
            .poll(&mut Context::from_waker(noop_waker_ref()))
    })
}

#[test]
fn the_counter_sees_allocations() {
    let (n, _) = allocations_during(|| drop(std::hint::black_box(Box::new(1u64))));
    assert!(n >= 1);
}

#[test]
fn ready_primary_allocates_nothing_and_touches_no_timer() {
    let timer = ManualTimer::new();
    let policies = [
        Hedge::builder().build().unwrap(), // adaptive, budgeted: records the latency
        Hedge::builder()
            .fixed_delay(Duration::from_millis(5))
            .max_attempts(3)
            .build()
            .unwrap(),
        Hedge::builder()
            .fixed_delay(Duration::ZERO)
            .unbudgeted()
            .build()
            .unwrap(),
    ];
    for hedge in &policies {
        for _ in 0..1000 {
            let (allocations, out) = ready_call(hedge, &timer);
            assert_eq!(out, Poll::Ready(Ok(0)));
            assert_eq!(allocations, 0, "{hedge:?}");
        }
        assert_eq!(timer.pending_sleeps(), 0);
        assert_eq!(timer.elapsed(), Duration::ZERO);
        assert_eq!(hedge.stats().primaries, 1000);
        assert_eq!(hedge.stats().hedges_sent, 0);
    }
}

#[test]
fn the_slow_path_does_allocate_so_the_test_above_can_fail() {
    // A hedge that is sent boxes its attempt: the counter must see that.
    let timer = ManualTimer::new();
    let hedge = Hedge::builder()
        .fixed_delay(Duration::ZERO)
        .unbudgeted()
        .build()
        .unwrap();
    let t = timer.clone();
    let (allocations, out) = allocations_during(|| {
        let run = hedge.run_with(timer.clone(), move |attempt| {
            let sleep = t.sleep(Duration::from_millis(if attempt == 0 { 10 } else { 1 }));
            async move {
                sleep.await;
                Ok::<_, ()>(attempt)
            }
        });
        timer.block_on(run)
    });
    assert_eq!(out, Ok(1));
    assert!(allocations > 0);
}
