use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tailguard::limit::{AdaptiveLimiter, Fixed, Outcome};
use tailguard::rate::RateLimiter;
use tailguard::time::{ManualTimer, Timer};
use tower::{Layer, Service, ServiceExt};

use super::*;
use crate::BoxError;

type Echo = tower::util::ServiceFn<fn(u32) -> std::future::Ready<Result<u32, std::io::Error>>>;

fn echo() -> Echo {
    tower::service_fn(|n| std::future::ready(Ok(n)))
}

fn failing() -> impl Service<u32, Response = u32, Error = std::io::Error> + Clone {
    tower::service_fn(|_: u32| std::future::ready(Err(std::io::Error::other("down"))))
}

/// A service answering after `delay` on `timer`.
fn slow(
    timer: ManualTimer,
    delay: Duration,
) -> impl Service<u32, Response = u32, Error = std::io::Error, Future: Unpin> + Clone {
    tower::service_fn(move |n: u32| {
        let sleep = timer.sleep(delay);
        Box::pin(async move {
            sleep.await;
            Ok(n)
        })
    })
}

/// Polls `service.poll_ready` once.
fn poll_ready_once<S: Service<u32>>(service: &mut S) -> Poll<Result<(), S::Error>> {
    service.poll_ready(&mut Context::from_waker(Waker::noop()))
}

/// Polls `future` once.
fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    std::pin::Pin::new(future).poll(&mut Context::from_waker(Waker::noop()))
}

fn bulkhead(timer: &ManualTimer, queue: u32) -> tailguard::bulkhead::Bulkhead<ManualTimer> {
    tailguard::bulkhead::Bulkhead::builder()
        .max_concurrent(1)
        .max_queue(queue)
        .build_with(timer.clone())
        .unwrap()
}

#[test]
fn a_bulkhead_slot_is_held_from_readiness_to_the_end_of_the_call() {
    let timer = ManualTimer::new();
    let limiter = bulkhead(&timer, 0);
    let mut first =
        BulkheadLayer::new(limiter.clone()).layer(slow(timer.clone(), Duration::from_millis(10)));
    let mut second = first.clone();
    assert!(poll_ready_once(&mut first).is_ready());
    assert!(first.holds_slot());
    assert!(!first.clone().holds_slot(), "a clone starts without a slot");
    assert_eq!(limiter.metrics().in_flight, 1);
    match poll_ready_once(&mut second) {
        Poll::Ready(Err(refused)) => assert!(refused.is::<tailguard::bulkhead::Rejected>()),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let response = first.call(1);
    assert!(!first.holds_slot());
    assert_eq!(limiter.metrics().in_flight, 1, "the response holds it now");
    assert_eq!(timer.block_on(response).unwrap(), 1);
    assert_eq!(limiter.metrics().in_flight, 0);
    assert!(poll_ready_once(&mut second).is_ready());
}

#[test]
fn dropping_a_ready_bulkhead_service_or_its_response_releases_the_slot() {
    let timer = ManualTimer::new();
    let limiter = bulkhead(&timer, 0);
    let mut service =
        BulkheadLayer::new(limiter.clone()).layer(slow(timer.clone(), Duration::from_secs(1)));
    let mut ready = service.clone();
    assert!(poll_ready_once(&mut ready).is_ready());
    drop(ready); // readiness never followed by a call
    assert_eq!(limiter.metrics().in_flight, 0);

    assert!(poll_ready_once(&mut service).is_ready());
    let mut response = service.call(1);
    assert!(poll_once(&mut response).is_pending());
    drop(response);
    assert_eq!(limiter.metrics().in_flight, 0);
    assert_eq!(timer.pending_sleeps(), 0);
}

#[test]
fn a_bulkhead_with_a_queue_waits_in_readiness_and_leaves_the_queue_when_dropped() {
    let timer = ManualTimer::new();
    let limiter = bulkhead(&timer, 4);
    let mut holder = BulkheadLayer::new(limiter.clone()).layer(echo());
    let mut waiter = holder.clone();
    assert!(poll_ready_once(&mut holder).is_ready());
    assert!(poll_ready_once(&mut waiter).is_pending());
    assert_eq!(limiter.metrics().queued, 1);
    drop(waiter);
    assert_eq!(
        limiter.metrics().queued,
        0,
        "the dropped service left the queue"
    );

    // A waiter gets the slot when the holder's call ends.
    let mut waiter = holder.clone();
    assert!(poll_ready_once(&mut waiter).is_pending());
    assert_eq!(timer.block_on(holder.call(1)).unwrap(), 1);
    assert!(matches!(poll_ready_once(&mut waiter), Poll::Ready(Ok(()))));
    assert!(waiter.holds_slot());
    assert_eq!(limiter.metrics().queued, 0);
}

#[test]
fn a_bulkhead_wait_ends_at_max_wait_with_the_rejection() {
    let timer = ManualTimer::new();
    let limiter = bulkhead(&timer, 4);
    let layer = BulkheadLayer::new(limiter.clone()).max_wait(Duration::from_millis(30));
    let mut holder = layer.layer(echo());
    let waiter = holder.clone();
    assert!(poll_ready_once(&mut holder).is_ready());
    let refused = timer.block_on(waiter.oneshot(2)).unwrap_err();
    assert!(refused.is::<tailguard::bulkhead::Rejected>(), "{refused}");
    assert_eq!(timer.elapsed(), Duration::from_millis(30));
    assert_eq!(limiter.metrics().queued, 0);
    assert_eq!(limiter.metrics().rejected_deadline, 1);
}

#[test]
#[should_panic(expected = "call poll_ready first")]
fn calling_without_readiness_panics_as_tower_asks() {
    let timer = ManualTimer::new();
    let mut service = BulkheadLayer::new(bulkhead(&timer, 0)).layer(echo());
    drop(service.call(1));
}

fn rate(timer: &ManualTimer) -> RateLimiter<ManualTimer> {
    RateLimiter::builder()
        .rate(10, Duration::from_secs(1))
        .burst(1)
        .build_with(timer.clone())
        .unwrap()
}

#[test]
fn a_rate_limit_sleeps_on_the_timer_until_the_next_token() {
    let timer = ManualTimer::new();
    let service = RateLimitLayer::new(rate(&timer)).layer(echo());
    assert_eq!(timer.block_on(service.clone().oneshot(1)).unwrap(), 1);
    assert_eq!(timer.elapsed(), Duration::ZERO);
    let mut waiting = service.clone();
    assert!(poll_ready_once(&mut waiting).is_pending());
    assert_eq!(timer.pending_sleeps(), 1, "one sleep, kept in the service");
    assert!(poll_ready_once(&mut waiting).is_pending());
    assert_eq!(timer.pending_sleeps(), 1, "polled again, still one sleep");
    assert_eq!(timer.block_on(waiting.oneshot(2)).unwrap(), 2);
    assert_eq!(timer.elapsed(), Duration::from_millis(100));
    // Three more calls: one every 100 ms.
    for n in 0..3 {
        assert_eq!(timer.block_on(service.clone().oneshot(n)).unwrap(), n);
    }
    assert_eq!(timer.elapsed(), Duration::from_millis(400));
}

#[test]
fn dropping_a_waiting_rate_limit_cancels_its_sleep_and_a_reserved_token_is_spent() {
    let timer = ManualTimer::new();
    let limiter = rate(&timer);
    let mut ready = RateLimitLayer::new(limiter.clone()).layer(echo());
    let mut waiting = ready.clone();
    assert!(poll_ready_once(&mut ready).is_ready());
    assert!(poll_ready_once(&mut waiting).is_pending());
    drop(waiting);
    assert_eq!(timer.pending_sleeps(), 0);
    drop(ready);
    assert_eq!(
        limiter.available_at(timer.now()),
        0,
        "the token was taken by readiness"
    );
}

fn fixed(limit: u32) -> AdaptiveLimiter {
    AdaptiveLimiter::builder()
        .algorithm(Fixed::new(limit).unwrap())
        .initial_limit(limit)
        .min_limit(1)
        .max_limit(limit)
        .no_probe()
        .build()
        .unwrap()
}

#[test]
fn an_adaptive_limit_sheds_at_once_when_the_limit_is_reached() {
    let timer = ManualTimer::new();
    let limiter = fixed(1);
    let mut first = AdaptiveLimitLayer::new_with(timer.clone(), limiter.clone())
        .layer(slow(timer.clone(), Duration::from_millis(20)));
    let mut second = first.clone();
    assert!(poll_ready_once(&mut first).is_ready());
    assert_eq!(limiter.in_flight(), 1);
    match poll_ready_once(&mut second) {
        Poll::Ready(Err(refused)) => {
            let refused = refused
                .downcast_ref::<tailguard::limit::Rejected>()
                .unwrap();
            assert_eq!(refused.limit(), 1);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(timer.block_on(first.call(5)).unwrap(), 5);
    assert_eq!(limiter.in_flight(), 0);
    let metrics = limiter.metrics();
    assert_eq!((metrics.samples, metrics.rejected_total()), (1, 1));
}

#[test]
fn an_adaptive_limit_samples_by_the_classifier_and_releases_on_drop_without_a_sample() {
    let timer = ManualTimer::new();
    let limiter = fixed(4);
    let layer = AdaptiveLimitLayer::new_with(timer.clone(), limiter.clone());
    // An error is a drop (a sample); ignored results are none.
    let service = layer.layer(failing());
    assert!(timer.block_on(service.clone().oneshot(1)).is_err());
    assert_eq!(limiter.metrics().samples, 1);
    let ignoring = layer
        .clone()
        .classify(|_: Result<&u32, &std::io::Error>| Outcome::Ignored)
        .layer(failing());
    assert!(timer.block_on(ignoring.oneshot(1)).is_err());
    assert_eq!(limiter.metrics().samples, 1);

    // Dropped: a ready service, a pending response.
    let mut ready = layer.layer(slow(timer.clone(), Duration::from_secs(1)));
    assert!(poll_ready_once(&mut ready).is_ready());
    let mut response = ready.call(1);
    assert!(poll_once(&mut response).is_pending());
    assert!(poll_ready_once(&mut ready).is_ready());
    assert_eq!(limiter.in_flight(), 2);
    drop(response);
    drop(ready);
    assert_eq!(limiter.in_flight(), 0);
    assert_eq!(
        limiter.metrics().samples,
        1,
        "cancelled calls are no sample"
    );
}

fn throttle(timer: &ManualTimer) -> tailguard::throttle::Throttle<ManualTimer> {
    tailguard::throttle::Throttle::builder()
        .seed(7)
        .build_with(timer.clone())
        .unwrap()
}

#[test]
fn a_throttle_records_accepts_and_refusals_when_calls_end() {
    let timer = ManualTimer::new();
    let throttle = throttle(&timer);
    let layer = ThrottleLayer::new(throttle.clone());
    assert_eq!(timer.block_on(layer.layer(echo()).oneshot(1)).unwrap(), 1);
    assert!(timer.block_on(layer.layer(failing()).oneshot(1)).is_err());
    let counts = throttle.counts_at(timer.now());
    assert_eq!((counts.requests, counts.accepts), (2, 1));

    // Cancelled: counts nothing.
    let mut pending = layer.layer(slow(timer.clone(), Duration::from_secs(1)));
    assert!(poll_ready_once(&mut pending).is_ready());
    let mut response = pending.call(1);
    assert!(poll_once(&mut response).is_pending());
    drop((response, pending));
    let counts = throttle.counts_at(timer.now());
    assert_eq!((counts.requests, counts.accepts), (2, 1));
}

#[test]
fn a_throttle_fails_fast_once_the_backend_refuses_everything() {
    let timer = ManualTimer::new();
    let throttle = throttle(&timer);
    let service = ThrottleLayer::new(throttle.clone()).layer(failing());
    let refused = Arc::new(AtomicU32::new(0));
    for _ in 0..200 {
        match timer.block_on(service.clone().oneshot(1)) {
            Err(error) if error.is::<tailguard::throttle::Rejected>() => {
                refused.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => assert!(error.is::<std::io::Error>(), "{error}"),
            Ok(_) => panic!("the backend never answers"),
        }
    }
    assert!(refused.load(Ordering::Relaxed) > 100, "{refused:?}");
}

#[test]
fn limiter_errors_are_boxed_and_the_inner_error_passes_through() {
    let timer = ManualTimer::new();
    let service = BulkheadLayer::new(bulkhead(&timer, 0)).layer(failing());
    let error: BoxError = timer.block_on(service.oneshot(1)).unwrap_err();
    assert_eq!(
        error.downcast_ref::<std::io::Error>().unwrap().to_string(),
        "down"
    );
}
