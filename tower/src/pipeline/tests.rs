use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::Duration;

use tailguard::breaker::CircuitBreaker;
use tailguard::bulkhead::Bulkhead;
use tailguard::hedge::Hedge;
use tailguard::pipeline::{Pipeline as Policy, PipelineError};
use tailguard::time::{ManualTimer, Timer};
use tower::{Layer, ServiceExt};

use super::*;

/// Call `n` (from 0) sleeps `script[n].0` ms on `timer`, then answers or fails (`.1`); the last
/// step repeats. Counts the calls and the clones' readiness checks.
#[derive(Clone)]
struct Scripted {
    timer: ManualTimer,
    script: &'static [(u64, bool)],
    calls: Arc<AtomicU32>,
    readied: Arc<AtomicU32>,
    /// The first this many readiness checks fail.
    unready: u32,
}

impl Scripted {
    fn new(timer: &ManualTimer, script: &'static [(u64, bool)]) -> Self {
        Scripted {
            timer: timer.clone(),
            script,
            calls: Arc::default(),
            readied: Arc::default(),
            unready: 0,
        }
    }
}

impl Service<u32> for Scripted {
    type Response = (u32, u32);
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<(u32, u32), std::io::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.readied.fetch_add(1, Ordering::SeqCst) < self.unready {
            return Poll::Ready(Err(std::io::Error::other("not ready")));
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: u32) -> Self::Future {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let (ms, ok) = self.script[(n as usize).min(self.script.len() - 1)];
        let sleep = self.timer.sleep(Duration::from_millis(ms));
        Box::pin(async move {
            sleep.await;
            if ok {
                Ok((request, n))
            } else {
                Err(std::io::Error::other(format!("call {n} failed")))
            }
        })
    }
}

#[test]
fn each_attempt_runs_on_a_ready_clone_with_a_clone_of_the_request() {
    let timer = ManualTimer::new();
    let backend = Scripted::new(&timer, &[(0, false), (0, false), (5, true)]);
    let pipeline = Policy::with_timer(timer.clone())
        .max_attempts(3)
        .build()
        .unwrap();
    let service = PipelineLayer::new(pipeline).layer(backend.clone());
    assert_eq!(timer.block_on(service.oneshot(9)).unwrap(), (9, 2));
    assert_eq!(backend.calls.load(Ordering::SeqCst), 3);
    assert_eq!(
        backend.readied.load(Ordering::SeqCst),
        3,
        "each clone was asked"
    );
}

#[test]
fn a_clone_that_fails_readiness_fails_its_attempt_and_the_pipeline_retries() {
    let timer = ManualTimer::new();
    let mut backend = Scripted::new(&timer, &[(0, true)]);
    backend.unready = 1;
    let pipeline = Policy::with_timer(timer.clone())
        .max_attempts(2)
        .build()
        .unwrap();
    let service = PipelineLayer::new(pipeline).layer(backend.clone());
    assert_eq!(timer.block_on(service.oneshot(4)).unwrap(), (4, 0));
    assert_eq!(backend.readied.load(Ordering::SeqCst), 2);
    assert_eq!(
        backend.calls.load(Ordering::SeqCst),
        1,
        "the unready clone was not called"
    );
}

#[test]
fn errors_are_the_pipelines_boxed() {
    let timer = ManualTimer::new();
    let backend = Scripted::new(&timer, &[(0, false)]);
    let pipeline = Policy::with_timer(timer.clone())
        .max_attempts(2)
        .build()
        .unwrap();
    let error = timer
        .block_on(PipelineLayer::new(pipeline).layer(backend).oneshot(1))
        .unwrap_err();
    match error.downcast_ref::<PipelineError<std::io::Error>>() {
        Some(PipelineError::GaveUp { attempts: 2, error }) => {
            assert_eq!(error.to_string(), "call 1 failed")
        }
        other => panic!("expected GaveUp after 2 attempts, got {other:?}"),
    }
}

#[test]
fn readiness_reflects_the_breaker() {
    let timer = ManualTimer::new();
    let breaker = CircuitBreaker::builder()
        .count_window(2)
        .minimum_calls(2)
        .open_duration(Duration::from_secs(5))
        .build_with(timer.clone())
        .unwrap();
    let pipeline = Policy::with_timer(timer.clone())
        .breaker(breaker.clone())
        .build()
        .unwrap();
    let backend = Scripted::new(&timer, &[(0, false)]);
    let mut service = PipelineLayer::new(pipeline).layer(backend.clone());
    for _ in 0..2 {
        assert!(timer
            .block_on(async { service.ready().await?.call(1).await })
            .is_err());
    }
    let refused = match service.poll_ready(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(Err(refused)) => refused,
        other => panic!("expected the breaker's refusal, got {other:?}"),
    };
    match refused.downcast_ref::<PipelineError<std::io::Error>>() {
        Some(PipelineError::BreakerOpen {
            rejected,
            attempts: 0,
            last: None,
        }) => assert_eq!(rejected.retry_after(), Some(Duration::from_secs(5))),
        other => panic!("expected BreakerOpen, got {other:?}"),
    }
    assert_eq!(backend.calls.load(Ordering::SeqCst), 2);
    timer.advance(Duration::from_secs(5));
    assert!(service
        .poll_ready(&mut Context::from_waker(Waker::noop()))
        .is_ready_and_ok());
}

trait ReadyOk {
    fn is_ready_and_ok(&self) -> bool;
}

impl<E> ReadyOk for Poll<Result<(), E>> {
    fn is_ready_and_ok(&self) -> bool {
        matches!(self, Poll::Ready(Ok(())))
    }
}

#[test]
fn a_hedge_runs_on_another_clone_and_the_loser_is_dropped() {
    let timer = ManualTimer::new();
    let backend = Scripted::new(&timer, &[(1_000, true), (10, true)]);
    let hedge = Hedge::builder()
        .fixed_delay(Duration::from_millis(50))
        .unbudgeted()
        .build()
        .unwrap();
    let pipeline = Policy::with_timer(timer.clone())
        .hedge(hedge)
        .build()
        .unwrap();
    let service = PipelineLayer::new(pipeline).layer(backend.clone());
    assert_eq!(timer.block_on(service.oneshot(3)).unwrap(), (3, 1));
    assert_eq!(timer.elapsed(), Duration::from_millis(60));
    assert_eq!(timer.pending_sleeps(), 0, "the slow primary was dropped");
}

#[test]
fn the_limiter_slot_is_per_attempt_and_a_dropped_call_releases_it() {
    let timer = ManualTimer::new();
    let bulkhead = Bulkhead::builder()
        .max_concurrent(1)
        .build_with(timer.clone())
        .unwrap();
    let pipeline = Policy::with_timer(timer.clone())
        .limiter(bulkhead.clone())
        .build()
        .unwrap();
    let backend = Scripted::new(&timer, &[(1_000, true)]);
    let mut service = PipelineLayer::new(pipeline).layer(backend);
    let mut first = service.call(1);
    let mut cx = Context::from_waker(Waker::noop());
    assert!(Pin::new(&mut first).poll(&mut cx).is_pending());
    assert_eq!(bulkhead.metrics().in_flight, 1);
    let refused = timer.block_on(service.call(2)).unwrap_err();
    assert!(
        matches!(
            refused.downcast_ref::<PipelineError<std::io::Error>>(),
            Some(PipelineError::LimiterFull { .. })
        ),
        "{refused}"
    );
    drop(first);
    assert_eq!(bulkhead.metrics().in_flight, 0);
    assert_eq!(timer.pending_sleeps(), 0);
}

#[test]
fn an_adaptive_attempt_timeout_learns_from_the_service_and_cuts_a_stall() {
    // 20 calls of 4 ms, one that stalls for a second, then 4 ms again.
    static SCRIPT: [(u64, bool); 22] = {
        let mut script = [(4, true); 22];
        script[20] = (1_000, true);
        script
    };
    let timer = ManualTimer::new();
    let adaptive = tailguard::adaptive_timeout::AdaptiveTimeout::builder()
        .floor(Duration::from_millis(5))
        .min_samples(20)
        .build()
        .unwrap();
    let backend = Scripted::new(&timer, &SCRIPT);
    let pipeline = Policy::with_timer(timer.clone())
        .attempt_timeout_adaptive(adaptive.clone())
        .max_attempts(2)
        .backoff(
            tailguard::backoff::Backoff::constant(Duration::ZERO)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let service = PipelineLayer::new(pipeline).layer(backend.clone());
    for n in 0..20 {
        assert_eq!(timer.block_on(service.clone().oneshot(n)).unwrap(), (n, n));
    }
    timer.advance(Duration::from_secs(1));
    // p99 × 2 of the 4 ms calls (readiness included, it is part of the attempt).
    let limit = adaptive.timeout_at(timer.now());
    assert!(limit.abs_diff(Duration::from_millis(8)) < Duration::from_micros(100));
    let before = timer.now();
    assert_eq!(timer.block_on(service.oneshot(7)).unwrap(), (7, 21));
    assert_eq!(timer.now() - before, limit + Duration::from_millis(4));
    let stats = adaptive.stats();
    assert_eq!((stats.completed, stats.timed_out), (21, 1));
}
