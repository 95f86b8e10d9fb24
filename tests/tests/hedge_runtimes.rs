//! Hedging and fan-out run unchanged under several executors, on every real timer.
//!
//! Real time is used here (that is the point: each executor with a real clock), so delays are a
//! few milliseconds and assertions are about who wins, never about exact durations. A primary
//! that never answers makes the outcome certain whatever the scheduling.

use std::future::Future;
use std::time::{Duration, Instant};

use futures::future::pending;
use tailguard::fanout::{first_ok, quorum, scatter_gather_with};
use tailguard::hedge::Hedge;
use tailguard::time::{AsyncIoTimer, FuturesTimer, HeapTimer, Timer};
use tailguard::timeout::{Deadline, Elapsed};

/// Attempt 1 (the primary) never answers; later attempts answer after `answer_after`.
async fn stalled_primary<T: Timer>(
    timer: T,
    attempt: u32,
    answer_after: Duration,
) -> Result<u32, ()> {
    if attempt == 1 {
        pending::<()>().await;
    }
    timer.sleep(answer_after).await;
    Ok(attempt)
}

/// The whole scenario, generic over the timer; panics on the first wrong answer.
async fn scenario<T: Timer>(timer: T) {
    // A stalled primary is rescued by a hedge after the fixed delay.
    let hedge = Hedge::builder()
        .fixed_delay(Duration::from_millis(2))
        .unbudgeted()
        .build()
        .unwrap();
    let start = Instant::now();
    let t = timer.clone();
    let winner = hedge
        .run_with(timer.clone(), move |attempt| {
            stalled_primary(t.clone(), attempt, Duration::from_millis(1))
        })
        .await;
    assert_eq!(winner, Ok(2));
    assert!(start.elapsed() >= Duration::from_millis(3));
    assert_eq!(hedge.stats().hedges_won, 1);

    // A ready primary wins at once, with nothing sent.
    let ready = hedge
        .run_with(timer.clone(), |a| async move { Ok::<_, ()>(a) })
        .await;
    assert_eq!(ready, Ok(1));
    assert_eq!(hedge.stats().hedges_sent, 1);

    // Scatter-gather returns partial results at the deadline.
    let t = timer.clone();
    let legs = (0..4u64).map(move |i| {
        let t = t.clone();
        async move {
            if i == 2 {
                pending::<()>().await;
            }
            t.sleep(Duration::from_millis(i)).await;
            i
        }
    });
    let deadline = Deadline::after_with(timer.clone(), Duration::from_millis(30));
    let results = scatter_gather_with(timer.clone(), legs, deadline).await;
    assert_eq!(results, vec![Ok(0), Ok(1), Err(Elapsed::new()), Ok(3)]);

    // first_ok and quorum need no timer at all.
    let t = timer.clone();
    let replicas = (1..=3u32).map(move |i| stalled_primary(t.clone(), i, Duration::from_millis(1)));
    let first = first_ok(replicas).await;
    assert!(matches!(first, Ok(2) | Ok(3)), "{first:?}");
    let t = timer.clone();
    let replicas = (1..=3u32).map(move |i| stalled_primary(t.clone(), i, Duration::from_millis(1)));
    let mut two = quorum(2, replicas).await.unwrap();
    two.sort_unstable();
    assert_eq!(two, vec![2, 3]);
}

fn on_every_executor<T: Timer>(timer: T) {
    fn run_tokio<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }
    smol::block_on(scenario(timer.clone()));
    futures::executor::block_on(scenario(timer.clone()));
    run_tokio(scenario(timer.clone()));
    // A multi-threaded pool: the hedged call is spawned and may move between threads.
    let pool = futures::executor::ThreadPool::builder()
        .pool_size(2)
        .create()
        .unwrap();
    let (tx, rx) = futures::channel::oneshot::channel();
    pool.spawn_ok(async move {
        scenario(timer).await;
        let _ = tx.send(());
    });
    futures::executor::block_on(rx).expect("the scenario panicked on the thread pool");
}

#[test]
fn hedging_and_fanout_on_the_async_io_timer() {
    on_every_executor(AsyncIoTimer);
}

#[test]
fn hedging_and_fanout_on_the_futures_timer() {
    on_every_executor(FuturesTimer);
}

#[test]
fn hedging_and_fanout_on_the_heap_timer() {
    on_every_executor(HeapTimer);
}
