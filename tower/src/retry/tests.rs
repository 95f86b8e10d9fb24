use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::task::noop_waker;
use tailguard::backoff::{Backoff, Jitter};
use tailguard::retry::{Decision, RetryBudget};
use tailguard::time::{ManualTimer, Timer};
use tailguard::timeout::Elapsed;
use tower::{Layer, ServiceExt};

use super::*;

/// A backend answering from a script, one entry per call (the last repeats): a status code,
/// 0 for an error, or `u16::MAX` to stall for a minute. Counts its calls.
#[derive(Clone)]
struct Scripted {
    script: Arc<Vec<u16>>,
    calls: Arc<AtomicU32>,
    timer: ManualTimer,
}

impl Scripted {
    fn new(timer: &ManualTimer, script: &[u16]) -> Self {
        Scripted {
            script: Arc::new(script.to_vec()),
            calls: Arc::new(AtomicU32::new(0)),
            timer: timer.clone(),
        }
    }

    fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Service<&'static str> for Scripted {
    type Response = u16;
    type Error = std::io::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<u16, std::io::Error>>>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: &'static str) -> Self::Future {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) as usize;
        let step = self.script[n.min(self.script.len() - 1)];
        let sleep = self.timer.sleep(Duration::from_secs(60));
        Box::pin(async move {
            match step {
                0 => Err(std::io::Error::other(format!("error {}", n + 1))),
                u16::MAX => {
                    sleep.await;
                    Ok(200)
                }
                code => Ok(code),
            }
        })
    }
}

fn policy(timer: &ManualTimer, attempts: u32) -> tailguard::retry::Retry<ManualTimer> {
    tailguard::retry::Retry::with_timer(timer.clone())
        .max_attempts(attempts)
        .backoff(
            Backoff::exponential(Duration::from_millis(100))
                .jitter(Jitter::None)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

fn busy(_: &&'static str, result: Result<&u16, &std::io::Error>) -> Decision {
    match result {
        Ok(&503) | Err(_) => Decision::Retry,
        Ok(_) => Decision::Stop,
    }
}

#[test]
fn errors_are_retried_with_the_backoff_until_a_success() {
    let timer = ManualTimer::new();
    let backend = Scripted::new(&timer, &[0, 0, 200]);
    let service = RetryLayer::new(policy(&timer, 3)).layer(backend.clone());
    assert_eq!(timer.block_on(service.oneshot("GET")).unwrap(), 200);
    assert_eq!(backend.calls(), 3);
    assert_eq!(timer.elapsed(), Duration::from_millis(300)); // 100 + 200
}

#[test]
fn a_first_try_success_starts_no_timer() {
    let timer = ManualTimer::new();
    let backend = Scripted::new(&timer, &[200]);
    let service = RetryLayer::new(policy(&timer, 3)).layer(backend.clone());
    let mut call = std::pin::pin!(service.oneshot("GET"));
    let waker = noop_waker();
    let polled = call.as_mut().poll(&mut Context::from_waker(&waker));
    assert!(matches!(polled, Poll::Ready(Ok(200))));
    assert_eq!(timer.pending_sleeps(), 0);
}

#[test]
fn after_the_last_attempt_the_last_outcome_is_returned() {
    let timer = ManualTimer::new();
    // A retryable response after the last attempt reaches the caller as that response.
    let backend = Scripted::new(&timer, &[503]);
    let service = RetryLayer::new(policy(&timer, 3))
        .policy(busy)
        .layer(backend.clone());
    assert_eq!(timer.block_on(service.oneshot("GET")).unwrap(), 503);
    assert_eq!(backend.calls(), 3);

    // The last error, boxed as it is.
    let backend = Scripted::new(&timer, &[0]);
    let service = RetryLayer::new(policy(&timer, 2)).layer(backend.clone());
    let err = timer.block_on(service.oneshot("GET")).unwrap_err();
    assert_eq!(err.to_string(), "error 2");
}

#[test]
fn a_stop_on_an_error_fails_at_once() {
    let timer = ManualTimer::new();
    let backend = Scripted::new(&timer, &[0, 200]);
    let never = |_: &&'static str, _: Result<&u16, &std::io::Error>| Decision::Stop;
    let service = RetryLayer::new(policy(&timer, 3))
        .policy(never)
        .layer(backend.clone());
    assert_eq!(
        timer
            .block_on(service.oneshot("GET"))
            .unwrap_err()
            .to_string(),
        "error 1"
    );
    assert_eq!(backend.calls(), 1);
}

#[test]
fn a_spent_budget_stops_the_retries() {
    let timer = ManualTimer::new();
    let budget = RetryBudget::builder()
        .ratio(0.0)
        .min_per_second(1)
        .build_with(timer.clone())
        .unwrap();
    let retry = tailguard::retry::Retry::with_timer(timer.clone())
        .max_attempts(5)
        .backoff(Backoff::constant(Duration::ZERO).build().unwrap())
        .budget(budget)
        .build()
        .unwrap();
    let backend = Scripted::new(&timer, &[0]);
    let service = RetryLayer::new(retry).layer(backend.clone());
    // One retry from the floor, then the budget refuses: two attempts, the last error.
    let err = timer.block_on(service.oneshot("GET")).unwrap_err();
    assert_eq!(err.to_string(), "error 2");
    assert_eq!(backend.calls(), 2);
}

#[test]
fn an_attempt_timeout_cuts_a_stalled_attempt_and_retries() {
    let timer = ManualTimer::new();
    let retry = tailguard::retry::Retry::with_timer(timer.clone())
        .max_attempts(2)
        .attempt_timeout(Duration::from_millis(50))
        .backoff(
            Backoff::constant(Duration::from_millis(10))
                .jitter(Jitter::None)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let backend = Scripted::new(&timer, &[u16::MAX, 201]);
    let service = RetryLayer::new(retry).layer(backend.clone());
    assert_eq!(timer.block_on(service.oneshot("GET")).unwrap(), 201);
    assert_eq!(timer.elapsed(), Duration::from_millis(60));
    assert_eq!(timer.pending_sleeps(), 0, "the stalled attempt was dropped");

    let backend = Scripted::new(&timer, &[u16::MAX]);
    let service = RetryLayer::new(
        tailguard::retry::Retry::with_timer(timer.clone())
            .max_attempts(1)
            .attempt_timeout(Duration::from_millis(50))
            .build()
            .unwrap(),
    )
    .layer(backend);
    assert!(timer
        .block_on(service.oneshot("GET"))
        .unwrap_err()
        .is::<Elapsed>());
}

#[test]
fn dropping_the_call_during_its_backoff_refunds_the_budget() {
    let timer = ManualTimer::new();
    let budget = RetryBudget::builder()
        .ratio(0.0)
        .min_per_second(1)
        .build_with(timer.clone())
        .unwrap();
    let retry = tailguard::retry::Retry::with_timer(timer.clone())
        .max_attempts(3)
        .backoff(
            Backoff::constant(Duration::from_secs(1))
                .jitter(Jitter::None)
                .build()
                .unwrap(),
        )
        .budget(budget.clone())
        .build()
        .unwrap();
    let backend = Scripted::new(&timer, &[0]);
    let mut service = RetryLayer::new(retry).layer(backend);
    let available = budget.available_at(timer.now());
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    assert!(service.poll_ready(&mut cx).is_ready());
    let mut call = Box::pin(service.call("GET"));
    assert!(call.as_mut().poll(&mut cx).is_pending()); // sleeping before attempt 2
    assert_eq!(budget.available_at(timer.now()), available - 1);
    drop(call);
    assert_eq!(budget.available_at(timer.now()), available);
    assert_eq!(timer.pending_sleeps(), 0);
}

#[test]
fn a_retry_waits_for_the_service_to_be_ready_again() {
    let timer = ManualTimer::new();
    let ready_polls = Arc::new(AtomicU32::new(0));
    let backend = Scripted::new(&timer, &[0, 200]);
    let counting = CountReady {
        inner: backend.clone(),
        polls: ready_polls.clone(),
    };
    let service = RetryLayer::new(policy(&timer, 3)).layer(counting);
    assert_eq!(timer.block_on(service.oneshot("GET")).unwrap(), 200);
    // Once for the first attempt (oneshot), once before the retry.
    assert_eq!(ready_polls.load(Ordering::SeqCst), 2);
}

#[derive(Clone)]
struct CountReady {
    inner: Scripted,
    polls: Arc<AtomicU32>,
}

impl Service<&'static str> for CountReady {
    type Response = u16;
    type Error = std::io::Error;
    type Future = <Scripted as Service<&'static str>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: &'static str) -> Self::Future {
        self.inner.call(request)
    }
}
