use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use pin_project::pin_project;
use tailguard::bulkhead::OwnedPermit;

use crate::BoxError;

/// What a limiter's slot does when the call it admitted finishes: told the result, it records
/// it (or nothing) and gives the slot back. Dropped without being told (the response future was
/// dropped), it gives the slot back counting nothing.
pub trait Settle<Res, E> {
    /// The call finished with `result`.
    fn settle(self, result: Result<&Res, &E>);
}

/// No slot to give back (a rate limiter's token is spent when taken).
impl<Res, E> Settle<Res, E> for () {
    #[inline]
    fn settle(self, _result: Result<&Res, &E>) {}
}

/// A bulkhead's slot: given back whatever the outcome.
impl<Res, E> Settle<Res, E> for OwnedPermit {
    #[inline]
    fn settle(self, _result: Result<&Res, &E>) {}
}

/// The response of a limiter service: the inner call, holding the slot `poll_ready` took until
/// it finishes. Dropping it first releases the slot, counting nothing.
#[pin_project]
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct ResponseFuture<F, G> {
    #[pin]
    future: F,
    slot: Option<G>,
}

impl<F, G> ResponseFuture<F, G> {
    pub(super) fn new(future: F, slot: G) -> Self {
        ResponseFuture {
            future,
            slot: Some(slot),
        }
    }
}

impl<F, G, R, E> Future for ResponseFuture<F, G>
where
    F: Future<Output = Result<R, E>>,
    E: Into<BoxError>,
    G: Settle<R, E>,
{
    type Output = Result<R, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.future.poll(cx));
        if let Some(slot) = this.slot.take() {
            slot.settle(result.as_ref());
        }
        Poll::Ready(result.map_err(Into::into))
    }
}
