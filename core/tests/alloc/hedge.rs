//! A hedged call whose primary is ready on its first poll allocates nothing and touches no
//! timer.
//!
//! Allocations are counted by the allocator in `support`.

use std::task::Poll;
use std::time::Duration;

use crate::support::{allocations_and_output, poll_once};
use tailguard::hedge::Hedge;
use tailguard::time::{ManualTimer, Timer};

/// Polls a fresh hedged call once, counting allocations from creating the call to dropping it.
type Output = Poll<Result<u32, tailguard::hedge::HedgeError<()>>>;

fn ready_call(hedge: &Hedge, timer: &ManualTimer) -> (usize, Output) {
    allocations_and_output(|| {
        let run = hedge.run_with(timer.clone(), |attempt| async move { Ok::<_, ()>(attempt) });
        poll_once(run)
    })
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
            assert_eq!(out, Poll::Ready(Ok(1)));
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
    let (allocations, out) = allocations_and_output(|| {
        let run = hedge.run_with(timer.clone(), move |attempt| {
            let sleep = t.sleep(Duration::from_millis(if attempt == 1 { 10 } else { 1 }));
            async move {
                sleep.await;
                Ok::<_, ()>(attempt)
            }
        });
        timer.block_on(run)
    });
    assert_eq!(out, Ok(2));
    assert!(allocations > 0);
}
