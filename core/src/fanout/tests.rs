//! Fan-out in virtual time: partial results, early exits, cancellation by drop.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Context;
use std::time::Duration;

use futures::task::noop_waker;

use super::*;
use crate::test_util::{ms, Drops};
use crate::time::{ManualTimer, Timer};
use crate::timeout::{Deadline, Elapsed};

/// A call that takes `took` ms of virtual time and then returns `result`; counts its drop.
fn call<T, E>(
    timer: &ManualTimer,
    drops: &Drops,
    took: u64,
    result: Result<T, E>,
) -> impl Future<Output = Result<T, E>> {
    let timer = timer.clone();
    let guard = drops.guard();
    async move {
        let _guard = guard;
        timer.sleep(ms(took)).await;
        result
    }
}

#[test]
fn scatter_gather_returns_partial_results_in_order_at_the_deadline() {
    let timer = ManualTimer::new();
    let drops = Drops::default();
    let futures = [30, 5, 500, 50, 10].map(|t| call::<u64, ()>(&timer, &drops, t, Ok(t)));
    let deadline = Deadline::after_with(timer.clone(), ms(50));
    let results = timer.block_on(scatter_gather_with(timer.clone(), futures, deadline));
    assert_eq!(
        results,
        vec![
            Ok(Ok(30)),
            Ok(Ok(5)),
            Err(Elapsed::new()),
            Ok(Ok(50)), // ready at the deadline: it counts
            Ok(Ok(10)),
        ]
    );
    assert_eq!(timer.elapsed(), ms(50));
    assert_eq!(drops.count(), 5, "the unfinished call was dropped");
    assert_eq!(timer.pending_sleeps(), 0);
}

#[test]
fn scatter_gather_returns_as_soon_as_all_are_done() {
    let timer = ManualTimer::new();
    let drops = Drops::default();
    let futures: Vec<_> = (1..=20)
        .map(|t| call::<u64, ()>(&timer, &drops, t, Ok(t)))
        .collect();
    let deadline = Deadline::after_with(timer.clone(), Duration::from_secs(60));
    let results = timer.block_on(scatter_gather_with(timer.clone(), futures, deadline));
    assert_eq!(timer.elapsed(), ms(20));
    assert!(results.iter().all(|r| r.is_ok()));
    assert_eq!(timer.pending_sleeps(), 0, "the deadline sleep was dropped");
}

#[test]
fn scatter_gather_of_ready_futures_touches_no_timer() {
    let timer = ManualTimer::new();
    let deadline = Deadline::after_with(timer.clone(), ms(10));
    let mut gather = pin!(scatter_gather_with(
        timer.clone(),
        (0..100).map(|i| async move { i }),
        deadline
    ));
    let waker = noop_waker();
    let out = gather.as_mut().poll(&mut Context::from_waker(&waker));
    let results = match out {
        std::task::Poll::Ready(results) => results,
        std::task::Poll::Pending => panic!("all ready"),
    };
    assert_eq!(results, (0..100).map(Ok).collect::<Vec<_>>());
    assert_eq!(timer.pending_sleeps(), 0);
}

#[test]
fn scatter_gather_past_its_deadline_still_takes_what_is_ready() {
    let timer = ManualTimer::new();
    let drops = Drops::default();
    let deadline = Deadline::at(timer.now());
    timer.advance(ms(5));
    let futures = vec![
        Box::pin(async { Ok::<u64, ()>(1) }) as std::pin::Pin<Box<dyn Future<Output = _>>>,
        Box::pin(call::<u64, ()>(&timer, &drops, 1, Ok(2))),
    ];
    let results = timer.block_on(scatter_gather_with(timer.clone(), futures, deadline));
    assert_eq!(results, vec![Ok(Ok(1)), Err(Elapsed::new())]);
    assert_eq!(timer.elapsed(), ms(5));
}

#[test]
fn scatter_gather_of_nothing_is_empty() {
    let timer = ManualTimer::new();
    let deadline = Deadline::after_with(timer.clone(), ms(1));
    let none: Vec<std::future::Ready<u8>> = Vec::new();
    assert!(timer
        .block_on(scatter_gather_with(timer.clone(), none, deadline))
        .is_empty());
}

#[test]
fn dropping_a_scatter_gather_cancels_everything() {
    let timer = ManualTimer::new();
    let drops = Drops::default();
    {
        let futures: Vec<_> = (1..=10)
            .map(|t| call::<u64, ()>(&timer, &drops, t * 100, Ok(t)))
            .collect();
        let deadline = Deadline::after_with(timer.clone(), Duration::from_secs(5));
        let mut gather = pin!(scatter_gather_with(timer.clone(), futures, deadline));
        let waker = noop_waker();
        assert!(gather
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        assert_eq!(gather.running(), 10);
        assert_eq!(timer.pending_sleeps(), 11);
    }
    assert_eq!(drops.count(), 10);
    assert_eq!(timer.pending_sleeps(), 0);
}

#[test]
fn first_ok_takes_the_first_success_and_drops_the_rest() {
    let timer = ManualTimer::new();
    let drops = Drops::default();
    let futures = vec![
        call(&timer, &drops, 3, Err("fast failure")),
        call(&timer, &drops, 20, Ok("slow")),
        call(&timer, &drops, 8, Ok("first success")),
        call(&timer, &drops, 900, Ok("stalled")),
    ];
    let out = timer.block_on(first_ok(futures));
    assert_eq!(out, Ok("first success"));
    assert_eq!(timer.elapsed(), ms(8));
    assert_eq!(drops.count(), 4);
    assert_eq!(timer.pending_sleeps(), 0);
}

#[test]
fn first_ok_returns_every_error_in_input_order() {
    let timer = ManualTimer::new();
    let drops = Drops::default();
    let futures = vec![
        call::<(), _>(&timer, &drops, 30, Err("a")),
        call(&timer, &drops, 10, Err("b")),
        call(&timer, &drops, 20, Err("c")),
    ];
    let err = timer.block_on(first_ok(futures)).unwrap_err();
    assert_eq!(err.errors(), &["a", "b", "c"]);
    assert_eq!(timer.elapsed(), ms(30));
    assert!(err.to_string().starts_with("all 3 calls failed"), "{err}");
    let none: Vec<std::future::Ready<Result<(), &str>>> = Vec::new();
    let err = timer.block_on(first_ok(none)).unwrap_err();
    assert!(err.errors().is_empty());
    assert!(err.to_string().contains("no calls were given"));
}

#[test]
fn quorum_stops_at_k_successes() {
    let timer = ManualTimer::new();
    let drops = Drops::default();
    let futures = vec![
        call(&timer, &drops, 10, Ok(1)),
        call(&timer, &drops, 5, Err("no")),
        call(&timer, &drops, 30, Ok(3)),
        call(&timer, &drops, 500, Ok(4)),
        call(&timer, &drops, 20, Ok(5)),
    ];
    let out = timer.block_on(quorum(3, futures));
    assert_eq!(out, Ok(vec![1, 5, 3]));
    assert_eq!(timer.elapsed(), ms(30));
    assert_eq!(drops.count(), 5);
    assert_eq!(timer.pending_sleeps(), 0);
}

#[test]
fn quorum_fails_as_soon_as_it_is_out_of_reach() {
    let timer = ManualTimer::new();
    let drops = Drops::default();
    let futures = vec![
        call(&timer, &drops, 5, Err("x")),
        call(&timer, &drops, 1000, Ok(2)),
        call(&timer, &drops, 7, Err("y")),
        call(&timer, &drops, 3, Ok(4)),
    ];
    // Need 3 of 4: after two failures (at 7 ms) at most 2 can succeed.
    let err = timer.block_on(quorum(3, futures)).unwrap_err();
    assert_eq!(timer.elapsed(), ms(7));
    assert_eq!(err.successes(), &[4]);
    assert_eq!(err.errors(), &["x", "y"]);
    assert_eq!((err.required(), err.total()), (3, 4));
    assert_eq!(
        drops.count(),
        4,
        "the straggler was dropped without waiting for it"
    );
    assert_eq!(
        err.to_string(),
        "quorum of 3 out of 4 unreachable: 1 succeeded, 2 failed; last error: y"
    );
}

#[test]
fn quorum_edge_sizes_decide_without_polling() {
    let timer = ManualTimer::new();
    let polled = Arc::new(AtomicUsize::new(0));
    let probe = |polled: &Arc<AtomicUsize>| {
        let polled = polled.clone();
        async move {
            polled.fetch_add(1, Ordering::SeqCst);
            Ok::<u8, &str>(1)
        }
    };
    assert_eq!(
        timer.block_on(quorum(0, vec![probe(&polled), probe(&polled)])),
        Ok(vec![])
    );
    let err = timer
        .block_on(quorum(3, vec![probe(&polled), probe(&polled)]))
        .unwrap_err();
    assert!(err.to_string().contains("ask for at most as many"), "{err}");
    assert_eq!(polled.load(Ordering::SeqCst), 0);
}

#[test]
fn dropping_a_quorum_or_first_ok_cancels_everything() {
    let timer = ManualTimer::new();
    let drops = Drops::default();
    let waker = noop_waker();
    {
        let futures: Vec<_> = (1..=4)
            .map(|t| call::<u64, ()>(&timer, &drops, t * 100, Ok(t)))
            .collect();
        let mut q = pin!(quorum(3, futures));
        assert!(q
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
    }
    {
        let futures: Vec<_> = (1..=4)
            .map(|t| call::<u64, ()>(&timer, &drops, t * 100, Ok(t)))
            .collect();
        let mut f = pin!(first_ok(futures));
        assert!(f
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        assert_eq!(timer.pending_sleeps(), 4);
    }
    assert_eq!(drops.count(), 8);
    assert_eq!(timer.pending_sleeps(), 0);
}
