use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::TryFuture;
use pin_project::pin_project;

/// A future that remembers its position in the caller's list.
#[pin_project]
pub(crate) struct Indexed<F> {
    index: usize,
    #[pin]
    future: F,
}

impl<F> Indexed<F> {
    pub(crate) fn new(index: usize, future: F) -> Self {
        Indexed { index, future }
    }
}

impl<F: Future> Future for Indexed<F> {
    type Output = (usize, F::Output);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let index = *this.index;
        this.future.poll(cx).map(|output| (index, output))
    }
}

/// [`Indexed`] for a fallible future: yields `(index, Result<Ok, Error>)`.
#[pin_project]
pub(crate) struct IndexedTry<F> {
    index: usize,
    #[pin]
    future: F,
}

impl<F> IndexedTry<F> {
    pub(crate) fn new(index: usize, future: F) -> Self {
        IndexedTry { index, future }
    }
}

impl<F: TryFuture> Future for IndexedTry<F> {
    type Output = (usize, Result<F::Ok, F::Error>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let index = *this.index;
        this.future.try_poll(cx).map(|output| (index, output))
    }
}
