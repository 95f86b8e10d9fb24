use std::task::{Context, Poll};

use tailguard::limit::Outcome;
use tailguard::time::Timer;
use tower_layer::Layer;
use tower_service::Service;

use super::{Classify, ErrorsDrop, ResponseFuture, Settle, NOT_READY};
use crate::BoxError;

/// Wraps services in a [`Throttle`]: client-side throttling by a tailguard
/// [`Throttle`](tailguard::throttle::Throttle), every service made from the layer (and every
/// clone) sharing its window.
#[derive(Debug, Clone)]
pub struct ThrottleLayer<T: Timer, C = ErrorsDrop> {
    throttle: tailguard::throttle::Throttle<T>,
    classify: C,
}

impl<T: Timer> ThrottleLayer<T> {
    /// Services throttled by `throttle`; an error counts as a refusal by the backend
    /// ([`ErrorsDrop`]).
    ///
    /// ```
    /// use tailguard::throttle::Throttle;
    /// use tailguard_tower::limit::ThrottleLayer;
    ///
    /// let layer = ThrottleLayer::new(Throttle::builder().k(2.0).build()?);
    /// # let _ = layer;
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    pub fn new(throttle: tailguard::throttle::Throttle<T>) -> Self {
        ThrottleLayer {
            throttle,
            classify: ErrorsDrop,
        }
    }
}

impl<T: Timer, C> ThrottleLayer<T, C> {
    /// The same layer, judging results with `classify`: [`Outcome::Success`] is an accept,
    /// [`Outcome::Dropped`] a refusal, [`Outcome::Ignored`] not counted.
    pub fn classify<C2>(self, classify: C2) -> ThrottleLayer<T, C2> {
        ThrottleLayer {
            throttle: self.throttle,
            classify,
        }
    }

    /// The throttle the services share.
    pub fn throttle(&self) -> &tailguard::throttle::Throttle<T> {
        &self.throttle
    }
}

impl<S, T: Timer, C: Clone> Layer<S> for ThrottleLayer<T, C> {
    type Service = Throttle<S, T, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Throttle {
            inner,
            throttle: self.throttle.clone(),
            classify: self.classify.clone(),
            admitted: false,
        }
    }
}

/// A service behind a client-side throttle; see the [module docs](super).
///
/// `poll_ready` draws against the throttle's refusal probability at the timer's now, and fails
/// at once with its [`Rejected`](tailguard::throttle::Rejected) (counted by the throttle as a
/// request not accepted). When the response future finishes, the classifier says whether the
/// backend accepted the request; dropped first, it counts as nothing.
#[derive(Debug)]
pub struct Throttle<S, T: Timer, C = ErrorsDrop> {
    inner: S,
    throttle: tailguard::throttle::Throttle<T>,
    classify: C,
    admitted: bool,
}

impl<S: Clone, T: Timer, C: Clone> Clone for Throttle<S, T, C> {
    /// A clone shares the throttle, but not the admission this one may hold.
    fn clone(&self) -> Self {
        Throttle {
            inner: self.inner.clone(),
            throttle: self.throttle.clone(),
            classify: self.classify.clone(),
            admitted: false,
        }
    }
}

impl<S, T: Timer, C> Throttle<S, T, C> {
    /// The throttle (shared by every clone).
    pub fn throttle(&self) -> &tailguard::throttle::Throttle<T> {
        &self.throttle
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

/// The admission of a [`Throttle`] call: on completion, records at the timer's now whether the
/// backend accepted it; dropped first, records nothing.
#[derive(Debug)]
pub struct ThrottleSlot<T: Timer, C> {
    throttle: tailguard::throttle::Throttle<T>,
    classify: C,
}

impl<T: Timer, C: Classify<Res, E>, Res, E> Settle<Res, E> for ThrottleSlot<T, C> {
    #[inline]
    fn settle(self, result: Result<&Res, &E>) {
        let accepted = match self.classify.classify(result) {
            Outcome::Success => true,
            Outcome::Dropped => false,
            _ => return,
        };
        let now = self.throttle.timer().now();
        self.throttle.record_at(accepted, now);
    }
}

impl<S, T, C, Req> Service<Req> for Throttle<S, T, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    T: Timer,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, ThrottleSlot<T, C>>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if !self.admitted {
            let now = self.throttle.timer().now();
            // The throttle's own permit records nothing when dropped; the slot records through
            // a clone of the handle, so that it can outlive this borrow.
            match self.throttle.try_acquire_at(now) {
                Ok(_permit) => self.admitted = true,
                Err(refused) => return Poll::Ready(Err(Box::new(refused))),
            }
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        assert!(std::mem::take(&mut self.admitted), "{NOT_READY}");
        let slot = ThrottleSlot {
            throttle: self.throttle.clone(),
            classify: self.classify.clone(),
        };
        ResponseFuture::new(self.inner.call(request), slot)
    }
}
