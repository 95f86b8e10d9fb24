use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use pin_project::pin_project;
use tailguard::hedge::{HedgedRun, MakeAttempt};
use tailguard::time::Timer;
use tower_service::Service;

/// One attempt of a hedged call: the primary, already called; or a hedge, which waits for its
/// clone of the service to be ready before calling it.
#[pin_project(project = AttemptProj)]
pub enum Attempt<S: Service<Req>, Req> {
    /// Called: the inner service's response future.
    Called(#[pin] S::Future),
    /// Waiting for the service's readiness, then calls it with the request.
    Waiting {
        /// The service (a clone) the attempt goes to.
        service: S,
        /// The request (a clone), until it is sent.
        request: Option<Req>,
    },
}

impl<S: Service<Req>, Req> Future for Attempt<S, Req> {
    type Output = Result<S::Response, S::Error>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let called = match self.as_mut().project() {
            AttemptProj::Called(future) => return future.poll(cx),
            AttemptProj::Waiting { service, request } => {
                ready!(service.poll_ready(cx))?;
                service.call(request.take().expect("request sent once"))
            }
        };
        self.set(Attempt::Called(called));
        self.project_called(cx)
    }
}

impl<S: Service<Req>, Req> Attempt<S, Req> {
    fn project_called(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<<Self as Future>::Output> {
        match self.project() {
            AttemptProj::Called(future) => future.poll(cx),
            AttemptProj::Waiting { .. } => unreachable!("just called"),
        }
    }
}

impl<S: Service<Req>, Req> fmt::Debug for Attempt<S, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Attempt::Called(_) => "Attempt::Called",
            Attempt::Waiting { .. } => "Attempt::Waiting",
        })
    }
}

/// Starts the attempts of one hedged call: the primary (already called), then hedges, each on
/// a clone of the service with a clone of the request.
pub struct Attempts<S: Service<Req>, Req> {
    service: S,
    request: Req,
    primary: Option<S::Future>,
}

impl<S, Req> MakeAttempt<Attempt<S, Req>> for Attempts<S, Req>
where
    S: Service<Req> + Clone,
    Req: Clone,
{
    #[inline]
    fn make_attempt(&mut self, attempt: u32) -> Attempt<S, Req> {
        match self.primary.take() {
            Some(primary) => Attempt::Called(primary),
            None => {
                debug_assert!(attempt > 1, "the primary is attempt 1");
                Attempt::Waiting {
                    service: self.service.clone(),
                    request: Some(self.request.clone()),
                }
            }
        }
    }
}

impl<S: Service<Req>, Req> fmt::Debug for Attempts<S, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attempts")
            .field("primary_started", &self.primary.is_none())
            .finish_non_exhaustive()
    }
}

/// The response of a [`Hedge`](super::Hedge) service: the first attempt to succeed, or the last
/// attempt's error if every one fails. Dropping it cancels every attempt in flight.
#[pin_project]
#[must_use = "futures do nothing unless polled"]
pub struct ResponseFuture<S: Service<Req>, Req, T: Timer> {
    #[pin]
    run: HedgedRun<Attempts<S, Req>, Attempt<S, Req>, T>,
}

impl<S, Req, T> ResponseFuture<S, Req, T>
where
    S: Service<Req> + Clone,
    Req: Clone,
    T: Timer,
{
    pub(super) fn new(
        hedge: tailguard::hedge::Hedge,
        timer: T,
        service: S,
        request: Req,
        primary: S::Future,
    ) -> Self {
        let attempts = Attempts {
            service,
            request,
            primary: Some(primary),
        };
        ResponseFuture {
            run: HedgedRun::new(hedge, timer, attempts),
        }
    }
}

impl<S, Req, T> Future for ResponseFuture<S, Req, T>
where
    S: Service<Req> + Clone,
    Req: Clone,
    T: Timer,
{
    type Output = Result<S::Response, S::Error>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(match ready!(self.project().run.poll(cx)) {
            Ok(response) => Ok(response),
            Err(failed) => Err(failed
                .into_errors()
                .pop()
                .expect("a failed hedged call has an error per attempt")),
        })
    }
}

impl<S: Service<Req>, Req, T: Timer> fmt::Debug for ResponseFuture<S, Req, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
