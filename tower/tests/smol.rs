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

#[test]
fn the_limiter_layers_hold_and_give_back_their_slots_under_smol() {
    use tailguard::bulkhead::Bulkhead;
    use tailguard::limit::AdaptiveLimiter;
    use tailguard::rate::RateLimiter;
    use tailguard::throttle::Throttle;
    use tailguard_tower::{AdaptiveLimitLayer, BulkheadLayer, RateLimitLayer, ThrottleLayer};

    smol::block_on(async {
        // A bulkhead of 2 with a queue: 6 concurrent calls of 20 ms all finish, never more
        // than 2 at once, and every slot comes back.
        let bulkhead = Bulkhead::builder()
            .max_concurrent(2)
            .max_queue(8)
            .build()
            .unwrap();
        let (service, calls) = backend(&[Ok(20)]);
        let stack = BulkheadLayer::new(bulkhead.clone()).layer(service);
        let answers = futures::future::join_all((0..6).map(|n| stack.clone().oneshot(n))).await;
        assert!(answers.into_iter().all(|answer| answer.is_ok()));
        assert_eq!(calls.load(Ordering::SeqCst), 6);
        assert_eq!(
            (bulkhead.metrics().in_flight, bulkhead.metrics().queued),
            (0, 0)
        );

        // A rate limit of one call per 10 ms, burst 1: the readiness of the fourth call waits
        // on async-io's timer for about 30 ms.
        let rate = RateLimiter::builder()
            .rate(100, Duration::from_secs(1))
            .burst(1)
            .build()
            .unwrap();
        let (service, _) = backend(&[Ok(0)]);
        let stack = RateLimitLayer::new(rate).layer(service);
        let started = std::time::Instant::now();
        for n in 0..4 {
            assert_eq!(stack.clone().oneshot(n).await.unwrap(), n * 2);
        }
        assert!(started.elapsed() >= Duration::from_millis(25));

        // An adaptive limiter sheds a ready-and-unused clone's rival, then gets every slot
        // back; a throttle counts what the backend did.
        let limiter = AdaptiveLimiter::builder()
            .initial_limit(1)
            .min_limit(1)
            .max_limit(1)
            .build()
            .unwrap();
        let throttle = Throttle::builder().build().unwrap();
        let (service, _) = backend(&[Ok(5), Err(())]);
        let layers = (
            AdaptiveLimitLayer::new(limiter.clone()),
            ThrottleLayer::new(throttle.clone()),
        );
        let mut holder = layers.layer(service);
        let rival = holder.clone();
        holder.ready().await.unwrap();
        let refused = rival.oneshot(1).await.unwrap_err();
        assert!(refused.is::<tailguard::limit::Rejected>(), "{refused}");
        assert_eq!(holder.call(1).await.unwrap(), 2);
        assert!(holder.ready().await.unwrap().call(2).await.is_err());
        assert_eq!(limiter.in_flight(), 0);
        let counts = throttle.counts_at(std::time::Instant::now());
        assert_eq!((counts.requests, counts.accepts), (2, 1));
    });
}

#[test]
fn the_pipeline_layer_retries_and_hedges_under_smol() {
    use tailguard::bulkhead::Bulkhead;
    use tailguard::pipeline::{Pipeline, PipelineError};
    use tailguard_tower::PipelineLayer;

    #[derive(Debug)]
    struct Failed;
    impl std::fmt::Display for Failed {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("backend failed")
        }
    }
    impl std::error::Error for Failed {}

    smol::block_on(async {
        // Fails, then stalls 5 s (hedged after 30 ms by a call that answers in 5 ms).
        let (service, calls) = backend(&[Err(()), Ok(5_000), Ok(5)]);
        let service = tower::ServiceExt::map_err(service, |_| Failed);
        let bulkhead = Bulkhead::builder().max_concurrent(4).build().unwrap();
        let pipeline = Pipeline::builder()
            .max_attempts(3)
            .backoff(
                tailguard::backoff::Backoff::constant(Duration::from_millis(1))
                    .build()
                    .unwrap(),
            )
            .hedge(
                Hedge::builder()
                    .fixed_delay(Duration::from_millis(30))
                    .unbudgeted()
                    .build()
                    .unwrap(),
            )
            .attempt_timeout(Duration::from_secs(2))
            .limiter(bulkhead.clone())
            .build()
            .unwrap();
        let stack = PipelineLayer::new(pipeline).layer(service);
        let started = std::time::Instant::now();
        assert_eq!(stack.clone().oneshot(21).await.unwrap(), 42);
        assert!(started.elapsed() < Duration::from_millis(1_900));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(
            bulkhead.metrics().in_flight,
            0,
            "the stalled attempt gave its slot back"
        );

        let (failing, _) = backend(&[Err(())]);
        let failing = tower::ServiceExt::map_err(failing, |_| Failed);
        let pipeline = Pipeline::builder().max_attempts(2).build().unwrap();
        let error = PipelineLayer::new(pipeline)
            .layer(failing)
            .oneshot(1)
            .await
            .unwrap_err();
        assert!(
            matches!(
                error.downcast_ref::<PipelineError<Failed>>(),
                Some(PipelineError::GaveUp { attempts: 2, .. })
            ),
            "{error}"
        );
    });
}
