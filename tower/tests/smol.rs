//! The layers under smol, on the default timer (async-io's): a stack of retry, hedge, breaker
//! and timeout over a backend that stalls, fails and answers, with real time.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tailguard::breaker::{CircuitBreaker, Rejected, State};
use tailguard::hedge::Hedge;
use tailguard::retry::Retry;
use tailguard::timeout::Elapsed;
use tailguard_tower::{BoxError, CircuitBreakerLayer, HedgeLayer, RetryLayer, TimeoutLayer};
use tower::{Layer, Service, ServiceExt};

/// Call `n` (from 0) does what `script[n]` says (the last repeats): `Ok(ms)` answers after
/// `ms` milliseconds, `Err(())` fails at once.
fn backend(
    script: &'static [Result<u64, ()>],
) -> (
    impl Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone + Send,
    Arc<AtomicU32>,
) {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let service = tower::service_fn(move |request: u32| {
        let n = counter.fetch_add(1, Ordering::SeqCst) as usize;
        let step = script[n.min(script.len() - 1)];
        async move {
            match step {
                Ok(ms) => {
                    async_io::Timer::after(Duration::from_millis(ms)).await;
                    Ok(request * 2)
                }
                Err(()) => Err::<u32, BoxError>("backend failed".into()),
            }
        }
    });
    (service, calls)
}

#[test]
fn a_full_stack_retries_hedges_and_times_out_under_smol() {
    smol::block_on(async {
        // The first hedged call fails twice (its primary, then the attempt that replaced it);
        // the retry's primary (call 3) stalls for 5 s and is hedged by call 4, which answers in
        // 5 ms.
        let (service, calls) = backend(&[Err(()), Err(()), Ok(5_000), Ok(5)]);
        let hedge = Hedge::builder()
            .fixed_delay(Duration::from_millis(50))
            .unbudgeted()
            .build()
            .unwrap();
        let retry = Retry::builder().max_attempts(3).build().unwrap();
        let breaker = CircuitBreaker::builder().build().unwrap();
        let stack = (
            RetryLayer::new(retry),
            HedgeLayer::new(hedge.clone()),
            CircuitBreakerLayer::new(breaker.clone()),
            TimeoutLayer::new(Duration::from_secs(2)),
        )
            .layer(service);
        let started = std::time::Instant::now();
        assert_eq!(stack.oneshot(21).await.unwrap(), 42);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        let stats = hedge.stats();
        assert_eq!(
            (stats.primaries, stats.hedges_sent, stats.hedges_won),
            (2, 2, 1)
        );
        // The stalled call was cancelled: the answer came long before its 5 s (or the 2 s limit).
        assert!(started.elapsed() < Duration::from_millis(1_900));
        assert_eq!(breaker.state(), State::Closed);
    });
}

#[test]
fn the_timeout_and_the_breaker_fail_fast_under_smol() {
    smol::block_on(async {
        let (service, _) = backend(&[Ok(10_000)]);
        let breaker = CircuitBreaker::builder()
            .count_window(2)
            .minimum_calls(2)
            .open_duration(Duration::from_secs(60))
            .build()
            .unwrap();
        let mut stack = (
            CircuitBreakerLayer::new(breaker.clone()),
            TimeoutLayer::new(Duration::from_millis(20)),
        )
            .layer(service);
        for _ in 0..2 {
            let err = stack.ready().await.unwrap().call(1).await.unwrap_err();
            assert!(err.is::<Elapsed>(), "{err}");
        }
        assert_eq!(breaker.state(), State::Open);
        let Err(refused) = stack.ready().await.map(drop) else {
            panic!("an open breaker must fail readiness")
        };
        assert!(refused.is::<Rejected>(), "{refused}");
    });
}
