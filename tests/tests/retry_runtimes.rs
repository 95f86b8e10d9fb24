//! The retry loop on real timers under several executors: smol, tokio (current-thread and
//! multi-thread), `futures::executor` (block_on and a thread pool).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::executor::{block_on, ThreadPool};
use futures::task::SpawnExt;
use tailguard::backoff::{Backoff, Jitter};
use tailguard::retry::{GaveUp, Retry, RetryBudget, RetryError, Retryable};
use tailguard::time::{AsyncIoTimer, FuturesTimer, HeapTimer, Timer};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn backoff() -> Backoff {
    Backoff::constant(ms(2))
        .jitter(Jitter::None)
        .build()
        .unwrap()
}

/// Fails twice, then succeeds; checks the delays really elapsed on `timer`.
async fn flaky_then_ok<T: Timer>(timer: T) -> (u32, Duration) {
    let policy = Retry::with_timer(timer.clone())
        .max_attempts(5)
        .max_elapsed(Duration::from_secs(10))
        .backoff(backoff())
        .build()
        .unwrap();
    let calls = AtomicU32::new(0);
    let start = Instant::now();
    let attempts = policy
        .run_numbered(|attempt| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if attempt < 3 {
                    Err("transient")
                } else {
                    Ok(attempt)
                }
            }
        })
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    (attempts, start.elapsed())
}

/// Every attempt hangs; the per-attempt timeout cuts each one and the loop gives up.
async fn hanging_attempts_time_out<T: Timer>(timer: T) -> RetryError<()> {
    let policy = Retry::with_timer(timer)
        .max_attempts(3)
        .attempt_timeout(ms(5))
        .backoff(backoff())
        .build()
        .unwrap();
    (|| futures::future::pending::<Result<(), ()>>())
        .retry(&policy)
        .await
        .unwrap_err()
}

fn check_flaky((attempts, elapsed): (u32, Duration)) {
    assert_eq!(attempts, 3);
    assert!(elapsed >= ms(4), "two 2 ms sleeps took {elapsed:?}");
}

fn check_hanging(err: RetryError<()>) {
    assert_eq!(err.reason(), GaveUp::Exhausted);
    assert_eq!(err.attempts(), 3);
    assert!(err.last_error().is_timeout());
    assert!(err.elapsed() >= ms(19), "{:?}", err.elapsed());
}

#[test]
fn smol() {
    smol::block_on(async {
        check_flaky(flaky_then_ok(AsyncIoTimer).await);
        check_hanging(hanging_attempts_time_out(AsyncIoTimer).await);
        check_flaky(flaky_then_ok(FuturesTimer).await);
        check_flaky(flaky_then_ok(HeapTimer).await);
        check_hanging(hanging_attempts_time_out(HeapTimer).await);
    });
}

#[test]
fn tokio_current_thread() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        check_flaky(flaky_then_ok(AsyncIoTimer).await);
        check_hanging(hanging_attempts_time_out(FuturesTimer).await);
        check_flaky(flaky_then_ok(HeapTimer).await);
        check_hanging(hanging_attempts_time_out(HeapTimer).await);
    });
}

#[test]
fn tokio_multi_thread_spawned() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let flaky = tokio::spawn(flaky_then_ok(AsyncIoTimer));
        let hanging = tokio::spawn(hanging_attempts_time_out(AsyncIoTimer));
        let heap_flaky = tokio::spawn(flaky_then_ok(HeapTimer));
        let heap_hanging = tokio::spawn(hanging_attempts_time_out(HeapTimer));
        check_flaky(flaky.await.unwrap());
        check_hanging(hanging.await.unwrap());
        check_flaky(heap_flaky.await.unwrap());
        check_hanging(heap_hanging.await.unwrap());
    });
}

#[test]
fn futures_executor() {
    check_flaky(block_on(flaky_then_ok(FuturesTimer)));
    check_hanging(block_on(hanging_attempts_time_out(AsyncIoTimer)));
    check_flaky(block_on(flaky_then_ok(HeapTimer)));
    check_hanging(block_on(hanging_attempts_time_out(HeapTimer)));
}

#[test]
fn futures_thread_pool_shares_one_budget() {
    let pool = ThreadPool::builder().pool_size(2).create().unwrap();
    // No floor, 50%: the four calls that fail twice then succeed need eight retries and can
    // afford at most two of them (four calls × 0.5), whatever the interleaving.
    let budget = RetryBudget::builder()
        .ratio(0.5)
        .min_per_second(0)
        .build()
        .unwrap();
    let policy = Arc::new(
        Retry::with_timer(AsyncIoTimer)
            .max_attempts(3)
            .backoff(backoff())
            .budget(budget)
            .build()
            .unwrap(),
    );
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let policy = policy.clone();
            pool.spawn_with_handle(async move {
                policy
                    .run_numbered(|attempt| async move {
                        if attempt < 3 {
                            Err(attempt)
                        } else {
                            Ok(())
                        }
                    })
                    .await
            })
            .unwrap()
        })
        .collect();
    let results: Vec<_> = block_on(futures::future::join_all(handles));
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(e) if e.reason() == GaveUp::BudgetExhausted))
        .count();
    let succeeded = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(refused + succeeded, 4);
    // Two retries in all: at most one call gets both of its retries.
    assert!(succeeded <= 1, "{results:?}");
    assert!(refused >= 3);
}

#[test]
fn dropping_the_future_on_tokio_cancels_the_attempt() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dropped = Arc::new(AtomicU32::new(0));
    let d = dropped.clone();
    rt.block_on(async move {
        let policy = Retry::with_timer(AsyncIoTimer).build().unwrap();
        let attempt = || {
            let guard = DropCounter(d.clone());
            async move {
                let _guard = guard;
                futures::future::pending::<Result<(), ()>>().await
            }
        };
        let outcome = tokio::time::timeout(ms(10), attempt.retry(&policy)).await;
        assert!(outcome.is_err());
    });
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
}

struct DropCounter(Arc<AtomicU32>);

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}
