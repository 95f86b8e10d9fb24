use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tailguard::bulkhead::{AcquireOwned, OwnedPermit};
use tailguard::time::Timer;
use tower_layer::Layer;
use tower_service::Service;

use super::{ResponseFuture, NOT_READY};
use crate::{deadline_after, BoxError};

/// Wraps services in a [`Bulkhead`]: at most the bulkhead's `max_concurrent` calls at once,
/// every service made from the layer (and every clone) sharing the one bulkhead.
#[derive(Debug, Clone)]
pub struct BulkheadLayer<T: Timer> {
    bulkhead: tailguard::bulkhead::Bulkhead<T>,
    max_wait: Option<Duration>,
}

impl<T: Timer> BulkheadLayer<T> {
    /// Services limited by `bulkhead`. If it has a queue, `poll_ready` waits in it for a slot
    /// as long as it takes (see [`max_wait`](Self::max_wait)).
    ///
    /// ```
    /// use tailguard::bulkhead::Bulkhead;
    /// use tailguard_tower::limit::BulkheadLayer;
    ///
    /// let layer = BulkheadLayer::new(Bulkhead::builder().max_concurrent(64).build()?);
    /// # let _ = layer;
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    pub fn new(bulkhead: tailguard::bulkhead::Bulkhead<T>) -> Self {
        BulkheadLayer {
            bulkhead,
            max_wait: None,
        }
    }

    /// The same layer, `poll_ready` waiting in the queue at most `max_wait` (then failing with
    /// the bulkhead's `Rejected`).
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = Some(max_wait);
        self
    }

    /// The bulkhead the services share.
    pub fn bulkhead(&self) -> &tailguard::bulkhead::Bulkhead<T> {
        &self.bulkhead
    }
}

impl<S, T: Timer> Layer<S> for BulkheadLayer<T> {
    type Service = Bulkhead<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        Bulkhead {
            inner,
            bulkhead: self.bulkhead.clone(),
            max_wait: self.max_wait,
            permit: None,
            waiting: None,
        }
    }
}

/// A service behind a bulkhead; see the [module docs](super).
///
/// `poll_ready` takes a slot at once if one is free (no clock read, no allocation); when the
/// bulkhead is full and has a queue, it waits in the queue (the wait kept in the service,
/// cancel-safe: dropping the service leaves the queue); when it has none, it fails with the
/// bulkhead's [`Rejected`](tailguard::bulkhead::Rejected). The slot is kept until `call`, then
/// held by the response future until it finishes or is dropped.
#[derive(Debug)]
pub struct Bulkhead<S, T: Timer> {
    inner: S,
    bulkhead: tailguard::bulkhead::Bulkhead<T>,
    max_wait: Option<Duration>,
    permit: Option<OwnedPermit>,
    waiting: Option<AcquireOwned<T>>,
}

impl<S: Clone, T: Timer> Clone for Bulkhead<S, T> {
    /// A clone shares the bulkhead, but not the slot this one may hold.
    fn clone(&self) -> Self {
        Bulkhead {
            inner: self.inner.clone(),
            bulkhead: self.bulkhead.clone(),
            max_wait: self.max_wait,
            permit: None,
            waiting: None,
        }
    }
}

impl<S, T: Timer> Bulkhead<S, T> {
    /// The bulkhead (shared by every clone).
    pub fn bulkhead(&self) -> &tailguard::bulkhead::Bulkhead<T> {
        &self.bulkhead
    }

    /// Whether this service holds a slot (reserved by `poll_ready`, not yet used by `call`).
    pub fn holds_slot(&self) -> bool {
        self.permit.is_some()
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service (releasing a slot it held).
    pub fn into_inner(self) -> S {
        self.inner
    }

    fn poll_slot(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if self.permit.is_some() {
            return Poll::Ready(Ok(()));
        }
        let wait = match &mut self.waiting {
            Some(wait) => wait,
            None => match self.bulkhead.try_acquire_owned() {
                Ok(permit) => {
                    self.permit = Some(permit);
                    return Poll::Ready(Ok(()));
                }
                Err(full) if self.bulkhead.max_queue() == 0 => {
                    return Poll::Ready(Err(Box::new(full)))
                }
                Err(_) => {
                    let deadline = match self.max_wait {
                        Some(wait) => deadline_after(self.bulkhead.timer().now(), wait),
                        None => deadline_after(self.bulkhead.timer().now(), Duration::MAX),
                    };
                    self.waiting
                        .insert(self.bulkhead.acquire_until_owned(deadline))
                }
            },
        };
        let answer = match Pin::new(wait).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(answer) => answer,
        };
        self.waiting = None;
        match answer {
            Ok(permit) => {
                self.permit = Some(permit);
                Poll::Ready(Ok(()))
            }
            Err(refused) => Poll::Ready(Err(Box::new(refused))),
        }
    }
}

impl<S, T, Req> Service<Req> for Bulkhead<S, T>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    T: Timer,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, OwnedPermit>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self.poll_slot(cx) {
            Poll::Ready(Ok(())) => self.inner.poll_ready(cx).map_err(Into::into),
            other => other,
        }
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        let permit = self.permit.take().expect(NOT_READY);
        ResponseFuture::new(self.inner.call(request), permit)
    }
}
