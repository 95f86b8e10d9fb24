use std::time::Duration;

use futures::task::noop_waker;
use tailguard::breaker::{Outcome, Rejected, State};
use tailguard::time::ManualTimer;
use tower::{Layer, ServiceExt};

use super::*;

fn breaker(timer: &ManualTimer) -> tailguard::breaker::CircuitBreaker<ManualTimer> {
    tailguard::breaker::CircuitBreaker::builder()
        .count_window(4)
        .minimum_calls(4)
        .open_duration(Duration::from_secs(10))
        .half_open_calls(1)
        .build_with(timer.clone())
        .unwrap()
}

/// Answers `Ok(code)` for the code it is given; 0 is an error.
fn backend() -> impl Service<u16, Response = u16, Error = std::io::Error, Future: Send> + Clone {
    tower::service_fn(|code: u16| async move {
        if code == 0 {
            Err(std::io::Error::other("down"))
        } else {
            Ok(code)
        }
    })
}

fn poll_ready_now<S: Service<R>, R>(service: &mut S) -> Poll<Result<(), S::Error>> {
    let waker = noop_waker();
    service.poll_ready(&mut Context::from_waker(&waker))
}

#[test]
fn readiness_fails_fast_while_open_and_recovers_after_the_open_duration() {
    let timer = ManualTimer::new();
    let breaker = breaker(&timer);
    let mut service = CircuitBreakerLayer::new(breaker.clone()).layer(backend());
    timer.block_on(async {
        for _ in 0..4 {
            assert!(service.ready().await.unwrap().call(0).await.is_err());
        }
    });
    assert_eq!(breaker.state(), State::Open);
    timer.advance(Duration::from_secs(4));
    let Poll::Ready(Err(error)) = poll_ready_now(&mut service) else {
        panic!("an open breaker must fail readiness at once")
    };
    let rejected = error.downcast_ref::<Rejected>().expect("a Rejected");
    assert_eq!(rejected.retry_after(), Some(Duration::from_secs(6)));

    timer.advance(Duration::from_secs(6));
    assert!(matches!(poll_ready_now(&mut service), Poll::Ready(Ok(()))));
    assert_eq!(breaker.state(), State::HalfOpen);
}

#[test]
fn readiness_reserves_no_probe_slot() {
    let timer = ManualTimer::new();
    let breaker = breaker(&timer);
    for _ in 0..4 {
        breaker.try_acquire().unwrap().failure();
    }
    timer.advance(Duration::from_secs(10));
    // Many services become ready in half-open with one probe slot; none of them takes it.
    let mut services: Vec<_> = (0..5)
        .map(|_| CircuitBreakerLayer::new(breaker.clone()).layer(backend()))
        .collect();
    for service in &mut services {
        assert!(matches!(poll_ready_now(service), Poll::Ready(Ok(()))));
    }
    assert_eq!(breaker.metrics().probes_in_flight, 0);
    // The first to call takes the probe; a ready service calling after it is refused in its
    // future, without reaching the backend.
    let probe = services[0].call(200);
    assert_eq!(breaker.metrics().probes_in_flight, 1);
    let refused = timer.block_on(services[1].call(200)).unwrap_err();
    assert_eq!(
        refused.downcast_ref::<Rejected>().unwrap().state(),
        State::HalfOpen
    );
    assert!(matches!(
        poll_ready_now(&mut services[2]),
        Poll::Ready(Err(_))
    ));
    assert_eq!(timer.block_on(probe).unwrap(), 200);
    assert_eq!(breaker.state(), State::Closed);
}

#[test]
fn a_dropped_call_frees_its_probe_slot() {
    let timer = ManualTimer::new();
    let breaker = breaker(&timer);
    for _ in 0..4 {
        breaker.try_acquire().unwrap().failure();
    }
    timer.advance(Duration::from_secs(10));
    let never = tower::service_fn(|_: ()| std::future::pending::<Result<(), std::io::Error>>());
    let mut service = CircuitBreakerLayer::new(breaker.clone()).layer(never);
    assert!(matches!(poll_ready_now(&mut service), Poll::Ready(Ok(()))));
    let call = service.call(());
    assert_eq!(breaker.metrics().probes_in_flight, 1);
    drop(call);
    assert_eq!(breaker.metrics().probes_in_flight, 0);
    assert!(matches!(poll_ready_now(&mut service), Poll::Ready(Ok(()))));
}

#[test]
fn a_classifier_counts_responses_as_failures_and_clones_share_the_breaker() {
    let timer = ManualTimer::new();
    let breaker = breaker(&timer);
    let status = |result: Result<&u16, &std::io::Error>| match result {
        Ok(code) if *code >= 500 => Outcome::Failure,
        Ok(_) => Outcome::Success,
        Err(_) => Outcome::Failure,
    };
    let service = CircuitBreakerLayer::new(breaker.clone())
        .classify(status)
        .layer(backend());
    timer.block_on(async {
        for _ in 0..3 {
            assert_eq!(service.clone().oneshot(503).await.unwrap(), 503);
        }
        assert_eq!(breaker.state(), State::Closed);
        assert_eq!(service.clone().oneshot(503).await.unwrap(), 503);
        assert_eq!(breaker.state(), State::Open);
        let refused = service.clone().oneshot(200).await.unwrap_err();
        assert!(refused.is::<Rejected>());
    });
}

#[test]
fn the_inner_readiness_is_polled_when_closed() {
    let timer = ManualTimer::new();
    let breaker = breaker(&timer);
    let mut pending = 2;
    let mut service = CircuitBreaker::new(
        SlowToReady {
            pending: &mut pending,
        },
        breaker,
        ErrorsFail,
    );
    assert!(poll_ready_now(&mut service).is_pending());
    assert!(poll_ready_now(&mut service).is_pending());
    assert!(matches!(poll_ready_now(&mut service), Poll::Ready(Ok(()))));
}

/// Pending for `pending` polls of readiness, then ready.
struct SlowToReady<'a> {
    pending: &'a mut u32,
}

impl Service<()> for SlowToReady<'_> {
    type Response = ();
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<(), std::io::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if *self.pending == 0 {
            Poll::Ready(Ok(()))
        } else {
            *self.pending -= 1;
            Poll::Pending
        }
    }

    fn call(&mut self, (): ()) -> Self::Future {
        std::future::ready(Ok(()))
    }
}
