//! A time limit on every call: [`TimeoutLayer`] and [`Timeout`].
//!
//! The limit runs from the call's first poll, on a tailguard [`Timer`].
//! The response future is the core's [`Timeout`](tailguard::timeout::Timeout): the inner future
//! is polled first, so a response that is ready at once never arms a timer. A call that runs
//! out of time fails with [`Elapsed`](tailguard::timeout::Elapsed), boxed, and the inner future
//! is dropped (cancelled).
//!
//! ```
//! use std::time::Duration;
//! use tailguard::time::{ManualTimer, Timer};
//! use tailguard::timeout::Elapsed;
//! use tailguard_tower::TimeoutLayer;
//! use tower::{Layer, ServiceExt};
//!
//! let timer = ManualTimer::new();
//! let sleeper = timer.clone();
//! let slow = tower::service_fn(move |ms: u64| {
//!     let sleep = sleeper.sleep(Duration::from_millis(ms));
//!     async move {
//!         sleep.await;
//!         Ok::<_, std::io::Error>(ms)
//!     }
//! });
//! let service = TimeoutLayer::new_with(timer.clone(), Duration::from_millis(100)).layer(slow);
//!
//! assert_eq!(timer.block_on(service.clone().oneshot(10)).unwrap(), 10);
//! let err = timer.block_on(service.oneshot(500)).unwrap_err();
//! assert!(err.is::<Elapsed>());
//! ```

mod future;
mod layer;

pub use self::future::ResponseFuture;
pub use self::layer::TimeoutLayer;

use std::task::{Context, Poll};
use std::time::Duration;

#[cfg(feature = "async-io")]
use tailguard::time::DefaultTimer;
use tailguard::time::Timer;
use tower_service::Service;

use crate::BoxError;

/// A service whose calls must finish within a time limit; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Timeout<S, T> {
    inner: S,
    timer: T,
    limit: Duration,
}

#[cfg(feature = "async-io")]
impl<S> Timeout<S, DefaultTimer> {
    /// `inner` with calls limited to `limit`, on the default timer.
    pub fn new(inner: S, limit: Duration) -> Self {
        Timeout::new_with(DefaultTimer::default(), inner, limit)
    }
}

impl<S, T: Timer> Timeout<S, T> {
    /// `inner` with calls limited to `limit`, on `timer`.
    pub fn new_with(timer: T, inner: S, limit: Duration) -> Self {
        Timeout {
            inner,
            timer,
            limit,
        }
    }

    /// The time limit of each call.
    pub fn limit(&self) -> Duration {
        self.limit
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

impl<S, T, Req> Service<Req> for Timeout<S, T>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    T: Timer,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, T>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        let response = self.inner.call(request);
        ResponseFuture::new(tailguard::timeout::timeout_with(
            self.timer.clone(),
            self.limit,
            response,
        ))
    }
}

#[cfg(test)]
mod tests;
