//! A whole tailguard [`Pipeline`](tailguard::pipeline::Pipeline) in front of a service:
//! [`PipelineLayer`] and [`Pipeline`].
//!
//! Each request runs through the pipeline (deadline → budget → retry → hedge → breaker →
//! limiter → attempt timeout) with [`call_owned`](tailguard::pipeline::Pipeline::call_owned).
//! Every attempt (a retry, a hedge) is made on a **clone** of the inner service with a clone
//! of the request, as tower's own `Hedge` does: the clone's readiness is awaited inside the
//! attempt, so the attempt's timeout and the call's deadline bound that wait too, and a clone
//! whose `poll_ready` fails fails that attempt (which the pipeline may retry). The request must
//! therefore be `Clone`, and the inner service `Clone`. An
//! [adaptive attempt timeout](tailguard::pipeline::PipelineBuilder::attempt_timeout_adaptive)
//! works as in the core: it learns from each attempt, that wait for readiness included.
//!
//! ## Readiness
//!
//! `poll_ready` reflects the pipeline's circuit breaker, if it has one
//! ([`CircuitBreaker::check`](tailguard::breaker::CircuitBreaker::check): one atomic load when
//! closed), failing at once with [`PipelineError::BreakerOpen`] while it refuses calls. It
//! reserves nothing, and does not ask the inner service (each attempt asks its own clone). The
//! limiter's slot is taken per attempt, inside the pipeline, after the breaker.
//!
//! ## Errors
//!
//! Every error is a boxed [`PipelineError`] of the inner service's error (recovered with
//! `downcast_ref::<PipelineError<S::Error>>()`), so the inner error must be a `std::error::Error`.
//! The response future is boxed (the pipeline's owned future has no name to put in
//! `Service::Future`): one allocation per call.
//!
//! ```
//! use std::time::Duration;
//! use tailguard::bulkhead::Bulkhead;
//! use tailguard::pipeline::Pipeline;
//! use tailguard::time::ManualTimer;
//! use tailguard_tower::PipelineLayer;
//! use tower::{Layer, ServiceExt};
//!
//! let timer = ManualTimer::new();
//! let pipeline = Pipeline::with_timer(timer.clone())
//!     .attempt_timeout(Duration::from_millis(100))
//!     .max_attempts(3)
//!     .limiter(Bulkhead::builder().max_concurrent(8).build_with(timer.clone())?)
//!     .build()?;
//! let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
//! let flaky = tower::service_fn(move |name: &'static str| {
//!     let n = calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
//!     async move {
//!         if n == 0 { Err(std::io::Error::other("flaky")) } else { Ok(format!("hello, {name}")) }
//!     }
//! });
//! let service = PipelineLayer::new(pipeline).layer(flaky);
//! assert_eq!(timer.block_on(service.oneshot("world")).unwrap(), "hello, world");
//! # Ok::<(), tailguard::ConfigError>(())
//! ```

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};

use tailguard::pipeline::{Limiter, PipelineError};
use tailguard::retry::{Classify, RetryAll};
use tailguard::time::Timer;
use tower_layer::Layer;
use tower_service::Service;

use crate::BoxError;

/// The response future of a [`Pipeline`] service: the whole call (boxed), its
/// [`PipelineError`] boxed into a [`BoxError`] when it ends.
#[must_use = "futures do nothing unless polled"]
pub struct ResponseFuture<R, E> {
    call: Pin<Box<dyn Future<Output = Result<R, PipelineError<E>>> + Send>>,
}

impl<R, E> std::fmt::Debug for ResponseFuture<R, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<R, E: std::error::Error + Send + Sync + 'static> Future for ResponseFuture<R, E> {
    type Output = Result<R, BoxError>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.call
            .as_mut()
            .poll(cx)
            .map_err(|error| Box::new(error) as BoxError)
    }
}

/// Wraps services in a [`Pipeline`]; every service made from it shares the one pipeline (its
/// breaker, budget, limiter and latency window).
#[derive(Debug, Clone)]
pub struct PipelineLayer<T: Timer, C = RetryAll, L = ()> {
    pipeline: tailguard::pipeline::Pipeline<T, C, L>,
}

impl<T: Timer, C, L> PipelineLayer<T, C, L> {
    /// Services whose requests run through `pipeline`.
    pub fn new(pipeline: tailguard::pipeline::Pipeline<T, C, L>) -> Self {
        PipelineLayer { pipeline }
    }

    /// The pipeline the services share.
    pub fn pipeline(&self) -> &tailguard::pipeline::Pipeline<T, C, L> {
        &self.pipeline
    }
}

impl<S, T: Timer, C, L> Layer<S> for PipelineLayer<T, C, L> {
    type Service = Pipeline<S, T, C, L>;

    fn layer(&self, inner: S) -> Self::Service {
        Pipeline {
            inner,
            pipeline: self.pipeline.clone(),
        }
    }
}

/// A service whose requests run through a tailguard pipeline; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Pipeline<S, T: Timer, C = RetryAll, L = ()> {
    inner: S,
    pipeline: tailguard::pipeline::Pipeline<T, C, L>,
}

impl<S, T: Timer, C, L> Pipeline<S, T, C, L> {
    /// `inner` behind `pipeline`.
    pub fn new(inner: S, pipeline: tailguard::pipeline::Pipeline<T, C, L>) -> Self {
        Pipeline { inner, pipeline }
    }

    /// The pipeline (shared by every clone).
    pub fn pipeline(&self) -> &tailguard::pipeline::Pipeline<T, C, L> {
        &self.pipeline
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

impl<S, T, C, L, Req> Service<Req> for Pipeline<S, T, C, L>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send,
    S::Response: Send + 'static,
    S::Error: std::error::Error + Send + Sync + 'static,
    Req: Clone + Send + 'static,
    T: Timer,
    C: Classify<S::Error> + Send + Sync + 'static,
    L: Limiter + Send + Sync + 'static,
    L::Permit: Send,
    for<'a> L::Acquire<'a>: Send,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Response, S::Error>;

    #[inline]
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if let Some(breaker) = self.pipeline.breaker() {
            if let Err(rejected) = breaker.check() {
                return Poll::Ready(Err(Box::new(PipelineError::<S::Error>::BreakerOpen {
                    rejected,
                    attempts: 0,
                    last: None,
                })));
            }
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let inner = self.inner.clone();
        let call = self.pipeline.call_owned(move |_attempt| {
            let mut service = inner.clone();
            let request = request.clone();
            async move {
                poll_fn(|cx| service.poll_ready(cx)).await?;
                service.call(request).await
            }
        });
        ResponseFuture {
            call: Box::pin(call),
        }
    }
}

#[cfg(test)]
mod tests;
