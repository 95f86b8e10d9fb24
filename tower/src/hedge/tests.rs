use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tailguard::time::ManualTimer;
use tower::{Layer, ServiceExt};

use super::*;

/// Sets its flag when dropped: proves an attempt was cancelled.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Call `n` (from 0) sleeps `latencies[n]` ms (the last repeats) and answers `Ok(n)`, or an
/// error if the latency is odd.
fn replicas(
    timer: &ManualTimer,
    latencies: &'static [u64],
    dropped: Arc<AtomicBool>,
) -> (
    impl Service<(), Response = u32, Error = std::io::Error> + Clone,
    Arc<AtomicU32>,
) {
    let calls = Arc::new(AtomicU32::new(0));
    let (timer, counter) = (timer.clone(), calls.clone());
    let service = tower::service_fn(move |()| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        let ms = latencies[(n as usize).min(latencies.len() - 1)];
        let sleep = timer.sleep(Duration::from_millis(ms));
        let guard = DropFlag(dropped.clone());
        async move {
            sleep.await;
            std::mem::forget(guard);
            if ms % 2 == 1 {
                Err(std::io::Error::other(format!("attempt {} failed", n + 1)))
            } else {
                Ok(n)
            }
        }
    });
    (service, calls)
}

fn policy(delay_ms: u64) -> tailguard::hedge::Hedge {
    tailguard::hedge::Hedge::builder()
        .fixed_delay(Duration::from_millis(delay_ms))
        .max_attempts(3)
        .unbudgeted()
        .build()
        .unwrap()
}

#[test]
fn a_stalled_primary_is_hedged_and_cancelled_when_the_hedge_wins() {
    let timer = ManualTimer::new();
    let dropped = Arc::new(AtomicBool::new(false));
    let (backend, calls) = replicas(&timer, &[1000, 4], dropped.clone());
    let hedge = policy(20);
    let service = HedgeLayer::new_with(timer.clone(), hedge.clone()).layer(backend);
    assert_eq!(timer.block_on(service.oneshot(())).unwrap(), 1);
    assert_eq!(timer.elapsed(), Duration::from_millis(24));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(dropped.load(Ordering::SeqCst), "the primary was cancelled");
    assert_eq!(timer.pending_sleeps(), 0);
    let stats = hedge.stats();
    assert_eq!(
        (stats.primaries, stats.hedges_sent, stats.hedges_won),
        (1, 1, 1)
    );
}

#[test]
fn a_fast_primary_sends_no_hedge() {
    let timer = ManualTimer::new();
    let (backend, calls) = replicas(&timer, &[0], Arc::new(AtomicBool::new(false)));
    let hedge = policy(20);
    let service = HedgeLayer::new_with(timer.clone(), hedge.clone()).layer(backend);
    assert_eq!(timer.block_on(service.oneshot(())).unwrap(), 0);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(hedge.stats().hedges_sent, 0);
    assert_eq!(timer.pending_sleeps(), 0);
}

#[test]
fn when_every_attempt_fails_the_last_error_is_returned() {
    let timer = ManualTimer::new();
    // Each attempt fails after 1 ms: a failure starts the next attempt at once.
    let (backend, calls) = replicas(&timer, &[1], Arc::new(AtomicBool::new(false)));
    let service = HedgeLayer::new_with(timer.clone(), policy(20)).layer(backend);
    let err = timer.block_on(service.oneshot(())).unwrap_err();
    assert_eq!(err.to_string(), "attempt 3 failed");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(timer.elapsed(), Duration::from_millis(3));
}

#[test]
fn clones_share_the_policy_statistics() {
    let timer = ManualTimer::new();
    let (backend, _) = replicas(&timer, &[0], Arc::new(AtomicBool::new(false)));
    let hedge = policy(20);
    let service = Hedge::new_with(timer.clone(), backend, hedge.clone());
    for _ in 0..3 {
        timer.block_on(service.clone().oneshot(())).unwrap();
    }
    assert_eq!(hedge.stats().primaries, 3);
}
