use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tailguard::rate::RateLimiter;
use tailguard::time::Timer;
use tower_layer::Layer;
use tower_service::Service;

use super::{ResponseFuture, NOT_READY};
use crate::BoxError;

/// Wraps services in a [`RateLimit`]: calls no faster than the rate limiter's rate, every
/// service made from the layer (and every clone) drawing on the one bucket.
#[derive(Debug, Clone)]
pub struct RateLimitLayer<T: Timer> {
    limiter: RateLimiter<T>,
}

impl<T: Timer> RateLimitLayer<T> {
    /// Services limited by `limiter`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tailguard::rate::RateLimiter;
    /// use tailguard_tower::limit::RateLimitLayer;
    ///
    /// let limiter = RateLimiter::builder().rate(100, Duration::from_secs(1)).burst(10).build()?;
    /// let layer = RateLimitLayer::new(limiter);
    /// # let _ = layer;
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    pub fn new(limiter: RateLimiter<T>) -> Self {
        RateLimitLayer { limiter }
    }

    /// The rate limiter the services share.
    pub fn limiter(&self) -> &RateLimiter<T> {
        &self.limiter
    }
}

impl<S, T: Timer> Layer<S> for RateLimitLayer<T> {
    type Service = RateLimit<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            limiter: self.limiter.clone(),
            token: false,
            sleep: None,
        }
    }
}

/// A service behind a rate limiter; see the [module docs](super).
///
/// `poll_ready` takes a token at the timer's now if there is one; if not, it sleeps on the
/// timer (the sleep kept in the service) until the next token is due, and asks again. The token
/// is spent when taken: one reserved by `poll_ready` and never used by a `call` is lost.
#[derive(Debug)]
pub struct RateLimit<S, T: Timer> {
    inner: S,
    limiter: RateLimiter<T>,
    token: bool,
    sleep: Option<T::Sleep>,
}

impl<S: Clone, T: Timer> Clone for RateLimit<S, T> {
    /// A clone shares the bucket, but not the token this one may hold.
    fn clone(&self) -> Self {
        RateLimit {
            inner: self.inner.clone(),
            limiter: self.limiter.clone(),
            token: false,
            sleep: None,
        }
    }
}

impl<S, T: Timer> RateLimit<S, T> {
    /// The rate limiter (shared by every clone).
    pub fn limiter(&self) -> &RateLimiter<T> {
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

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }

    fn poll_token(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        loop {
            if self.token {
                return Poll::Ready(Ok(()));
            }
            if let Some(sleep) = &mut self.sleep {
                if Pin::new(sleep).poll(cx).is_pending() {
                    return Poll::Pending;
                }
            }
            let timer = self.limiter.timer();
            let now = timer.now();
            match self.limiter.try_acquire_at(now) {
                Ok(_token) => {
                    self.token = true;
                    self.sleep = None;
                }
                Err(empty) => match empty.retry_after() {
                    Some(after) => {
                        let due = crate::deadline_after(now, after);
                        match &mut self.sleep {
                            Some(sleep) => timer.reset(sleep, due),
                            None => self.sleep = Some(timer.sleep_until(due)),
                        }
                    }
                    // More tokens than the burst holds: never (cannot happen for one token).
                    None => return Poll::Ready(Err(Box::new(empty))),
                },
            }
        }
    }
}

impl<S, T, Req> Service<Req> for RateLimit<S, T>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    T: Timer,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, ()>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self.poll_token(cx) {
            Poll::Ready(Ok(())) => self.inner.poll_ready(cx).map_err(Into::into),
            other => other,
        }
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        assert!(std::mem::take(&mut self.token), "{NOT_READY}");
        ResponseFuture::new(self.inner.call(request), ())
    }
}
