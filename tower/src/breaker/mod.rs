//! A circuit breaker in front of a service: [`CircuitBreakerLayer`] and [`CircuitBreaker`].
//!
//! Every service made from one layer (and every clone) shares one tailguard
//! [`CircuitBreaker`](tailguard::breaker::CircuitBreaker). A call takes a permit; when the
//! call's future finishes, its result is judged by a [`Classify`] (by default [`ErrorsFail`])
//! and reported; dropping the future first releases the permit, counted as neither.
//!
//! ## Readiness
//!
//! `poll_ready` tells the truth about the breaker, **without reserving anything**:
//!
//! - closed (or disabled): one atomic load, then the inner service's `poll_ready`;
//! - open, or half-open with every probe slot taken, or forced open:
//!   `Poll::Ready(Err(_))` at once, the error a boxed
//!   [`Rejected`](tailguard::breaker::Rejected) with its `retry_after`. A breaker is there to
//!   fail fast, so readiness does not wait for it (waiting would queue every caller behind an
//!   outage). tower asks a caller to drop a service whose `poll_ready` failed: this one is a
//!   handle, so dropping it costs nothing, and it (or a fresh clone) is ready again as soon as
//!   the breaker admits calls;
//! - open past its open duration: the breaker turns half-open and readiness is `Ok` while the
//!   round has a free probe slot.
//!
//! The probe slot is only taken by `call`: readiness that is never followed by a call holds no
//! slot. The price is a race: between `poll_ready` and `call`, other callers may take the last
//! slots, and the call's future then fails with `Rejected` without calling the inner service.
//!
//! ```
//! use std::time::Duration;
//! use tailguard::breaker::{CircuitBreaker, Rejected, State};
//! use tailguard::time::ManualTimer;
//! use tailguard_tower::CircuitBreakerLayer;
//! use tower::{Layer, Service, ServiceExt};
//!
//! let timer = ManualTimer::new();
//! let breaker = CircuitBreaker::builder()
//!     .count_window(4)
//!     .minimum_calls(4)
//!     .open_duration(Duration::from_secs(10))
//!     .build_with(timer.clone())?;
//! let failing = tower::service_fn(|_: ()| async { Err::<(), _>(std::io::Error::other("down")) });
//! let mut service = CircuitBreakerLayer::new(breaker.clone()).layer(failing);
//!
//! timer.block_on(async {
//!     for _ in 0..4 {
//!         assert!(service.ready().await.unwrap().call(()).await.is_err());
//!     }
//!     assert_eq!(breaker.state(), State::Open);
//!     let refused = service.ready().await.unwrap_err();
//!     let rejected = refused.downcast_ref::<Rejected>().unwrap();
//!     assert_eq!(rejected.retry_after(), Some(Duration::from_secs(10)));
//! });
//! # Ok::<(), tailguard::ConfigError>(())
//! ```

mod future;
mod layer;
mod policy;

pub use self::future::ResponseFuture;
pub use self::layer::CircuitBreakerLayer;
pub use self::policy::{Classify, ErrorsFail};

use std::task::{Context, Poll};

use tailguard::time::Timer;
use tower_service::Service;

use crate::BoxError;

/// A service behind a circuit breaker; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct CircuitBreaker<S, T: Timer, C = ErrorsFail> {
    inner: S,
    breaker: tailguard::breaker::CircuitBreaker<T>,
    classify: C,
}

impl<S, T: Timer, C> CircuitBreaker<S, T, C> {
    /// `inner` behind `breaker`, results judged by `classify`.
    pub fn new(inner: S, breaker: tailguard::breaker::CircuitBreaker<T>, classify: C) -> Self {
        CircuitBreaker {
            inner,
            breaker,
            classify,
        }
    }

    /// The breaker (shared by every clone).
    pub fn breaker(&self) -> &tailguard::breaker::CircuitBreaker<T> {
        &self.breaker
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

impl<S, T, C, Req> Service<Req> for CircuitBreaker<S, T, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    T: Timer,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, T, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if let Err(rejected) = self.breaker.check() {
            return Poll::Ready(Err(Box::new(rejected)));
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        match self.breaker.try_acquire_owned() {
            Ok(permit) => {
                ResponseFuture::called(self.inner.call(request), permit, self.classify.clone())
            }
            // Readiness took no slot: another caller may have taken the last one since.
            Err(rejected) => ResponseFuture::rejected(rejected),
        }
    }
}

#[cfg(test)]
mod tests;
