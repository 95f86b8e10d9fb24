use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use pin_project::pin_project;
use tailguard::breaker::{OwnedPermit, Rejected};
use tailguard::time::Timer;

use super::Classify;
use crate::BoxError;

/// The response of a [`CircuitBreaker`](super::CircuitBreaker) service: the inner call, its
/// outcome reported to the breaker when it finishes; or the breaker's [`Rejected`], boxed.
///
/// Dropping it before the call finishes releases the permit counted as neither success nor
/// failure (a half-open probe's slot is free again at once).
#[pin_project]
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct ResponseFuture<F, T: Timer, C> {
    #[pin]
    kind: Kind<F, T, C>,
}

#[pin_project(project = KindProj)]
#[derive(Debug)]
enum Kind<F, T: Timer, C> {
    Called {
        #[pin]
        future: F,
        permit: Option<OwnedPermit<T>>,
        classify: C,
    },
    Rejected(Option<Rejected>),
}

impl<F, T: Timer, C> ResponseFuture<F, T, C> {
    pub(super) fn called(future: F, permit: OwnedPermit<T>, classify: C) -> Self {
        ResponseFuture {
            kind: Kind::Called {
                future,
                permit: Some(permit),
                classify,
            },
        }
    }

    pub(super) fn rejected(rejected: Rejected) -> Self {
        ResponseFuture {
            kind: Kind::Rejected(Some(rejected)),
        }
    }
}

impl<F, T, C, R, E> Future for ResponseFuture<F, T, C>
where
    F: Future<Output = Result<R, E>>,
    E: Into<BoxError>,
    T: Timer,
    C: Classify<R, E>,
{
    type Output = Result<R, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Called {
                future,
                permit,
                classify,
            } => {
                let result = ready!(future.poll(cx));
                if let Some(permit) = permit.take() {
                    permit.record(classify.classify(result.as_ref()));
                }
                Poll::Ready(result.map_err(Into::into))
            }
            KindProj::Rejected(rejected) => {
                let rejected = rejected.take().expect("polled after completion");
                Poll::Ready(Err(Box::new(rejected)))
            }
        }
    }
}
