use std::task::{Context, Poll};

use tailguard::limit::{AdaptiveLimiter, Outcome, Permit};
#[cfg(feature = "async-io")]
use tailguard::time::DefaultTimer;
use tailguard::time::Timer;
use tower_layer::Layer;
use tower_service::Service;

use super::{Classify, ErrorsDrop, ResponseFuture, Settle, NOT_READY};
use crate::BoxError;

/// Wraps services in an [`AdaptiveLimit`]: admission control by a tailguard
/// [`AdaptiveLimiter`], every service made from the layer (and every clone) sharing it.
#[derive(Debug, Clone)]
pub struct AdaptiveLimitLayer<T, C = ErrorsDrop> {
    limiter: AdaptiveLimiter,
    timer: T,
    classify: C,
}

#[cfg(feature = "async-io")]
impl AdaptiveLimitLayer<DefaultTimer> {
    /// Services admitted by `limiter`, latencies measured on the default timer, errors counted
    /// as drops ([`ErrorsDrop`]).
    ///
    /// ```
    /// use tailguard::limit::AdaptiveLimiter;
    /// use tailguard_tower::limit::AdaptiveLimitLayer;
    ///
    /// let layer = AdaptiveLimitLayer::new(AdaptiveLimiter::builder().initial_limit(20).build()?);
    /// # let _ = layer;
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    pub fn new(limiter: AdaptiveLimiter) -> Self {
        AdaptiveLimitLayer::new_with(DefaultTimer::default(), limiter)
    }
}

impl<T: Timer> AdaptiveLimitLayer<T> {
    /// Services admitted by `limiter`, latencies measured on `timer`.
    pub fn new_with(timer: T, limiter: AdaptiveLimiter) -> Self {
        AdaptiveLimitLayer {
            limiter,
            timer,
            classify: ErrorsDrop,
        }
    }
}

impl<T, C> AdaptiveLimitLayer<T, C> {
    /// The same layer, judging results with `classify` (see [`Classify`]).
    pub fn classify<C2>(self, classify: C2) -> AdaptiveLimitLayer<T, C2> {
        AdaptiveLimitLayer {
            limiter: self.limiter,
            timer: self.timer,
            classify,
        }
    }

    /// The limiter the services share.
    pub fn limiter(&self) -> &AdaptiveLimiter {
        &self.limiter
    }
}

impl<S, T: Timer, C: Clone> Layer<S> for AdaptiveLimitLayer<T, C> {
    type Service = AdaptiveLimit<S, T, C>;

    fn layer(&self, inner: S) -> Self::Service {
        AdaptiveLimit {
            inner,
            limiter: self.limiter.clone(),
            timer: self.timer.clone(),
            classify: self.classify.clone(),
            permit: Unused(None),
        }
    }
}

/// A permit reserved by `poll_ready`: released without a sample if never used.
#[derive(Debug)]
struct Unused(Option<Permit>);

impl Drop for Unused {
    fn drop(&mut self) {
        if let Some(permit) = self.0.take() {
            permit.ignore();
        }
    }
}

/// A service admitted by an adaptive limiter; see the [module docs](super).
///
/// `poll_ready` takes a slot at the timer's now, or fails at once with the limiter's
/// [`Rejected`](tailguard::limit::Rejected) when the limit is reached: an adaptive limiter sheds,
/// it does not queue. The call's latency (from the moment the slot was taken) and outcome
/// (by the [`Classify`]) are the limiter's sample when the response future finishes; dropped
/// first, the slot is released without a sample.
#[derive(Debug)]
pub struct AdaptiveLimit<S, T, C = ErrorsDrop> {
    inner: S,
    limiter: AdaptiveLimiter,
    timer: T,
    classify: C,
    permit: Unused,
}

impl<S: Clone, T: Clone, C: Clone> Clone for AdaptiveLimit<S, T, C> {
    /// A clone shares the limiter, but not the slot this one may hold.
    fn clone(&self) -> Self {
        AdaptiveLimit {
            inner: self.inner.clone(),
            limiter: self.limiter.clone(),
            timer: self.timer.clone(),
            classify: self.classify.clone(),
            permit: Unused(None),
        }
    }
}

impl<S, T, C> AdaptiveLimit<S, T, C> {
    /// The limiter (shared by every clone).
    pub fn limiter(&self) -> &AdaptiveLimiter {
        &self.limiter
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
}

/// The slot of an [`AdaptiveLimit`] call: on completion, the call's latency and its outcome by
/// the classifier are the limiter's sample; dropped first, the slot is released with none.
#[derive(Debug)]
pub struct AdaptiveSlot<T, C> {
    permit: Unused,
    timer: T,
    classify: C,
}

impl<T: Timer, C: Classify<Res, E>, Res, E> Settle<Res, E> for AdaptiveSlot<T, C> {
    #[inline]
    fn settle(mut self, result: Result<&Res, &E>) {
        if let Some(permit) = self.permit.0.take() {
            match self.classify.classify(result) {
                Outcome::Ignored => permit.ignore(),
                outcome => permit.record_at(outcome, self.timer.now()),
            }
        }
    }
}

impl<S, T, C, Req> Service<Req> for AdaptiveLimit<S, T, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    T: Timer,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, AdaptiveSlot<T, C>>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.permit.0.is_none() {
            match self.limiter.try_acquire_at(self.timer.now()) {
                Ok(permit) => self.permit.0 = Some(permit),
                Err(refused) => return Poll::Ready(Err(Box::new(refused))),
            }
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        let permit = self.permit.0.take().expect(NOT_READY);
        let slot = AdaptiveSlot {
            permit: Unused(Some(permit)),
            timer: self.timer.clone(),
            classify: self.classify.clone(),
        };
        ResponseFuture::new(self.inner.call(request), slot)
    }
}
