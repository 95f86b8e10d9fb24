//! The circuit breaker under smol, tokio and futures' executors: tasks on several threads share
//! one breaker through a full outage cycle, every call is accounted for, and a task cancelled
//! mid-probe frees its slot. Time is virtual (ManualTimer) except for the default-timer check,
//! which never waits.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::{join_all, BoxFuture};
use tailguard::breaker::{CallError, CircuitBreaker, State};
use tailguard::time::ManualTimer;

const TASKS: usize = 4;
const CALLS: usize = 300;
const OPEN: Duration = Duration::from_secs(30);

fn breaker(timer: &ManualTimer) -> CircuitBreaker<ManualTimer> {
    CircuitBreaker::builder()
        .count_window(50)
        .minimum_calls(20)
        .failure_rate(0.5)
        .open_duration(OPEN)
        .half_open_calls(3)
        .build_with(timer.clone())
        .unwrap()
}

#[derive(Default)]
struct Tally {
    ran: AtomicUsize,
    rejected: AtomicUsize,
}

/// One task's share of the load: a yield inside every call so tasks interleave; failures from
/// `fail_from` on.
async fn hammer(breaker: CircuitBreaker<ManualTimer>, tally: Arc<Tally>, fail_from: usize) {
    for i in 0..CALLS {
        let result = breaker
            .call(|| async {
                yield_now().await; // let the other tasks in
                if i >= fail_from {
                    Err("down")
                } else {
                    Ok(i)
                }
            })
            .await;
        match result {
            Ok(_) | Err(CallError::Inner(_)) => tally.ran.fetch_add(1, Ordering::Relaxed),
            Err(CallError::Rejected(_)) => tally.rejected.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// Spawns one `hammer` per task with `spawn` and waits for all of them; then checks the books and
/// runs the breaker through half-open back to closed.
async fn outage_cycle(spawn: impl Fn(BoxFuture<'static, ()>) -> BoxFuture<'static, ()>) {
    let timer = ManualTimer::new();
    let breaker = breaker(&timer);
    let tally = Arc::new(Tally::default());
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| spawn(Box::pin(hammer(breaker.clone(), tally.clone(), CALLS / 3))))
        .collect();
    join_all(tasks).await;

    let ran = tally.ran.load(Ordering::Relaxed);
    let rejected = tally.rejected.load(Ordering::Relaxed);
    assert_eq!(ran + rejected, TASKS * CALLS);
    assert_eq!(breaker.state(), State::Open, "the failures tripped it");
    assert!(rejected > 0);
    let metrics = breaker.metrics();
    assert_eq!(metrics.rejections as usize, rejected);

    // Half-open: many concurrent probes, exactly three run, and they close the breaker.
    timer.advance(OPEN);
    let ran_before = tally.ran.load(Ordering::Relaxed);
    let probes = (0..10).map(|_| {
        let (breaker, tally) = (breaker.clone(), tally.clone());
        spawn(Box::pin(async move {
            let _ = breaker
                .call(|| async {
                    tally.ran.fetch_add(1, Ordering::Relaxed);
                    Ok::<_, ()>(())
                })
                .await;
        }))
    });
    join_all(probes.collect::<Vec<_>>()).await;
    let probes_ran = tally.ran.load(Ordering::Relaxed) - ran_before;
    // Three probes close it; whichever calls came after the close ran as ordinary calls.
    assert!(probes_ran >= 3, "{probes_ran} probes ran");
    assert_eq!(breaker.state(), State::Closed);
}

/// A call cancelled mid-probe frees the probe slot. `spawn_cancellable` spawns and returns a
/// function that cancels the task and waits until it is gone.
async fn cancelled_probe<C>(spawn_cancellable: impl Fn(BoxFuture<'static, ()>) -> C)
where
    C: FnOnce() -> BoxFuture<'static, ()>,
{
    let timer = ManualTimer::new();
    let breaker = CircuitBreaker::builder()
        .count_window(2)
        .minimum_calls(2)
        .open_duration(OPEN)
        .half_open_calls(1)
        .build_with(timer.clone())
        .unwrap();
    breaker.force_open();
    breaker.reset();
    for _ in 0..2 {
        breaker.try_acquire().unwrap().failure();
    }
    timer.advance(OPEN);
    let started = Arc::new(AtomicUsize::new(0));
    // Held by the task's future: its strong count drops back to one when the future is dropped.
    let alive = Arc::new(());
    let cancel = {
        let (breaker, started, alive) = (breaker.clone(), started.clone(), alive.clone());
        spawn_cancellable(Box::pin(async move {
            let _alive = alive;
            let _ = breaker
                .call(|| async {
                    started.fetch_add(1, Ordering::SeqCst);
                    futures::future::pending::<Result<(), ()>>().await
                })
                .await;
        }))
    };
    // Wait (bounded in time, generously: a loaded CI machine may not run the pool's thread for
    // a while) until the probe is in flight.
    let waiting_since = std::time::Instant::now();
    while started.load(Ordering::SeqCst) != 1
        && waiting_since.elapsed() < std::time::Duration::from_secs(10)
    {
        std::thread::yield_now();
        yield_now().await;
    }
    assert_eq!(started.load(Ordering::SeqCst), 1, "the probe started");
    assert!(breaker.try_acquire().is_err(), "its slot is taken");
    cancel().await;
    // Some executors report a cancelled task done before they drop its future (futures'
    // `RemoteHandle` resolves as the aborted future returns, and the pool drops it just after):
    // wait, bounded, until the future is gone; the contract is that dropping it frees the slot.
    let waiting_since = std::time::Instant::now();
    while Arc::strong_count(&alive) > 1
        && waiting_since.elapsed() < std::time::Duration::from_secs(10)
    {
        std::thread::yield_now();
    }
    assert_eq!(
        Arc::strong_count(&alive),
        1,
        "the cancelled task's future was dropped"
    );
    assert_eq!(breaker.metrics().probes_in_flight, 0);
    breaker.try_acquire().expect("the slot is free").success();
    assert_eq!(breaker.state(), State::Closed);
}

/// Returns `Pending` once, waking itself first, so the executor polls other tasks meanwhile.
async fn yield_now() {
    let mut yielded = false;
    futures::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await
}

#[test]
fn smol() {
    smol::block_on(outage_cycle(|fut| Box::pin(smol::spawn(fut))));
    smol::block_on(cancelled_probe(|fut| {
        let task = smol::spawn(fut);
        move || -> BoxFuture<'static, ()> {
            Box::pin(async move {
                task.cancel().await;
            })
        }
    }));
}

#[test]
fn tokio() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    runtime.block_on(outage_cycle(|fut| {
        let handle = tokio::spawn(fut);
        Box::pin(async move { handle.await.unwrap() })
    }));
    runtime.block_on(cancelled_probe(|fut| {
        let handle = tokio::spawn(fut);
        move || -> BoxFuture<'static, ()> {
            handle.abort();
            Box::pin(async move {
                assert!(handle.await.unwrap_err().is_cancelled());
            })
        }
    }));
}

#[test]
fn futures_executor() {
    use futures::task::SpawnExt;

    let pool = futures::executor::ThreadPool::builder()
        .pool_size(2)
        .create()
        .unwrap();
    futures::executor::block_on(outage_cycle(|fut| {
        Box::pin(pool.spawn_with_handle(fut).unwrap())
    }));
    futures::executor::block_on(cancelled_probe(|fut| {
        let (fut, abort) = futures::future::abortable(fut);
        let handle = pool.spawn_with_handle(fut).unwrap();
        move || -> BoxFuture<'static, ()> {
            abort.abort();
            Box::pin(async move {
                assert!(handle.await.is_err());
            })
        }
    }));
}

/// The default timer (async-io) needs no runtime for the breaker itself.
#[test]
fn default_timer_without_waiting() {
    let breaker = CircuitBreaker::builder()
        .count_window(4)
        .minimum_calls(4)
        .open_duration(Duration::from_secs(60))
        .build()
        .unwrap();
    for _ in 0..4 {
        let result = futures::executor::block_on(breaker.call(|| async { Err::<(), _>("x") }));
        assert!(matches!(result, Err(CallError::Inner("x"))));
    }
    let rejected =
        futures::executor::block_on(breaker.call(|| async { Ok::<_, &str>(()) })).unwrap_err();
    let retry_after = rejected.rejected().unwrap().retry_after().unwrap();
    assert!(retry_after <= Duration::from_secs(60) && retry_after > Duration::from_secs(50));
}
