use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use pin_project::pin_project;
use tailguard::time::Timer;

use crate::BoxError;

/// The response of a [`Timeout`](super::Timeout) service: the core's
/// [`Timeout`](tailguard::timeout::Timeout) future, with its errors boxed.
#[pin_project]
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct ResponseFuture<F, T: Timer> {
    #[pin]
    inner: tailguard::timeout::Timeout<F, T>,
}

impl<F, T: Timer> ResponseFuture<F, T> {
    pub(super) fn new(inner: tailguard::timeout::Timeout<F, T>) -> Self {
        ResponseFuture { inner }
    }
}

impl<F, T, R, E> Future for ResponseFuture<F, T>
where
    F: Future<Output = Result<R, E>>,
    E: Into<BoxError>,
    T: Timer,
{
    type Output = Result<R, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(match ready!(self.project().inner.poll(cx)) {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => Err(error.into()),
            Err(elapsed) => Err(Box::new(elapsed)),
        })
    }
}
