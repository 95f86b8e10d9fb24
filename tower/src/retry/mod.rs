//! Retries with backoff, a deadline and a budget: [`RetryLayer`] and [`Retry`].
//!
//! The limits, the backoff, the deadline (`max_elapsed`), the per-attempt time limit
//! (`attempt_timeout`) and the [`RetryBudget`](tailguard::retry::RetryBudget) come from a
//! tailguard [`Retry`](tailguard::retry::Retry) policy; which outcomes are worth another attempt
//! is a [`Policy`]'s call (by default [`RetryErrors`]: every error, no response). Each call runs
//! the core's sans-IO [`RetryState`](tailguard::retry::RetryState), so a retry through tower
//! and one through [`Retry::run`](tailguard::retry::Retry::run) decide alike.
//!
//! Requests must be `Clone`: each attempt gets a clone, and the original stays with the call.
//! Before each retry the service (a clone of the one the first attempt went to) is polled
//! ready again.
//!
//! What the caller gets:
//!
//! - the first response the policy accepts ([`Decision::Stop`](tailguard::retry::Decision));
//! - once retrying stops (attempts spent, the deadline, the budget, or a `Stop` on an error),
//!   the last attempt's outcome: its response, or its error boxed; an attempt cut short by
//!   `attempt_timeout` or the deadline fails with [`Elapsed`](tailguard::timeout::Elapsed);
//! - the inner service's readiness error, if a retry's `poll_ready` fails.
//!
//! A call that succeeds at once reads no clock (unless a budget needs its deposit) and
//! allocates nothing. Dropping the response future cancels the attempt in flight and refunds a
//! budget retry granted but not yet made.
//!
//! ```
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tailguard::backoff::{Backoff, Jitter};
//! use tailguard::retry::{Decision, Retry};
//! use tailguard::time::ManualTimer;
//! use tailguard_tower::RetryLayer;
//! use tower::{Layer, ServiceExt};
//!
//! // Answers 503 twice, then 200.
//! let calls = Arc::new(AtomicU32::new(0));
//! let counter = calls.clone();
//! let backend = tower::service_fn(move |_: ()| {
//!     let n = counter.fetch_add(1, Ordering::Relaxed);
//!     async move { Ok::<u16, std::io::Error>(if n < 2 { 503 } else { 200 }) }
//! });
//!
//! let timer = ManualTimer::new();
//! let retry = Retry::with_timer(timer.clone())
//!     .max_attempts(4)
//!     .backoff(Backoff::constant(Duration::from_millis(100)).jitter(Jitter::None).build()?)
//!     .build()?;
//! let busy = |_: &(), result: Result<&u16, &std::io::Error>| match result {
//!     Ok(&503) | Err(_) => Decision::Retry,
//!     Ok(_) => Decision::Stop,
//! };
//! let service = RetryLayer::new(retry).policy(busy).layer(backend);
//!
//! assert_eq!(timer.block_on(service.oneshot(())).unwrap(), 200);
//! assert_eq!(calls.load(Ordering::Relaxed), 3);
//! assert_eq!(timer.elapsed(), Duration::from_millis(200));
//! # Ok::<(), tailguard::ConfigError>(())
//! ```

mod future;
mod layer;
mod policy;

pub use self::future::ResponseFuture;
pub use self::layer::RetryLayer;
pub use self::policy::{Policy, RetryErrors};

use std::task::{Context, Poll};

use tailguard::time::Timer;
use tower_service::Service;

use crate::BoxError;

/// A service that retries its calls; see the [module docs](self).
#[derive(Debug)]
pub struct Retry<S, P, T> {
    inner: S,
    retry: tailguard::retry::Retry<T>,
    policy: P,
}

impl<S: Clone, P: Clone, T> Clone for Retry<S, P, T> {
    fn clone(&self) -> Self {
        Retry {
            inner: self.inner.clone(),
            retry: self.retry.clone(),
            policy: self.policy.clone(),
        }
    }
}

impl<S, P, T: Timer> Retry<S, P, T> {
    /// `inner`, retried under `retry` where `policy` says so.
    pub fn new(inner: S, retry: tailguard::retry::Retry<T>, policy: P) -> Self {
        Retry {
            inner,
            retry,
            policy,
        }
    }

    /// The tailguard policy this service follows.
    pub fn retry(&self) -> &tailguard::retry::Retry<T> {
        &self.retry
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, P, T, Req> Service<Req> for Retry<S, P, T>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    P: Policy<Req, S::Response, S::Error> + Clone,
    T: Timer,
    Req: Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req, P, T>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        // The ready service takes the first attempt; the clone left in its place waits for the
        // next call's `poll_ready`.
        let clone = self.inner.clone();
        let mut service = std::mem::replace(&mut self.inner, clone);
        let first = service.call(request.clone());
        ResponseFuture::new(
            service,
            request,
            self.policy.clone(),
            self.retry.clone(),
            first,
        )
    }
}

#[cfg(test)]
mod tests;
