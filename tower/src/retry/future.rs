use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use pin_project::pin_project;
use tailguard::retry::{AttemptError, Decision, Next, RetryState};
use tailguard::time::Timer;
use tailguard::timeout::Elapsed;
use tower_service::Service;

use super::{Handle, Policy};
use crate::BoxError;

/// An attempt's outcome, kept as it is (not boxed) until it is returned: a retried failure
/// costs no allocation.
type Outcome<R, E> = Result<R, AttemptError<E>>;

enum Phase<R, E> {
    /// An attempt is in flight; `armed` once its time limit (if any) is set.
    Attempt { armed: bool },
    /// Sleeping before the next attempt; holds the last outcome, returned if the deadline
    /// passes during the sleep.
    Backoff(Outcome<R, E>),
    /// Waiting for the service to be ready for the next attempt.
    Ready,
    /// Finished.
    Done,
}

/// The response of a [`Retry`](super::Retry) service: the first accepted outcome, or the last
/// one once retrying stops (see the [module docs](super)).
///
/// It owns the attempt in flight, a clone of the service and the request, and the sleep between
/// attempts; no allocation, no task. Dropping it cancels the attempt and refunds a budget retry
/// granted but not made.
#[pin_project(project = ResponseFutureProj)]
#[must_use = "futures do nothing unless polled"]
pub struct ResponseFuture<S: Service<Req>, Req, P, R: Handle> {
    #[pin]
    attempt: Option<S::Future>,
    service: S,
    request: Req,
    policy: P,
    state: RetryState<R>,
    phase: Phase<S::Response, S::Error>,
    /// The attempt's time limit, or the backoff sleep; reused from one to the next.
    sleep: Option<<R::Timer as Timer>::Sleep>,
}

impl<S: Service<Req>, Req, P, R: Handle> ResponseFuture<S, Req, P, R> {
    pub(super) fn new(service: S, request: Req, policy: P, retry: R, first: S::Future) -> Self {
        let mut state = RetryState::new(retry);
        // No deadline can have passed before the first attempt: no clock needed.
        state.begin_attempt_untimed();
        ResponseFuture {
            attempt: Some(first),
            service,
            request,
            policy,
            state,
            phase: Phase::Attempt { armed: false },
            sleep: None,
        }
    }
}

impl<S, Req, P, R> Future for ResponseFuture<S, Req, P, R>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    P: Policy<Req, S::Response, S::Error>,
    R: Handle,
    Req: Clone,
{
    type Output = Result<S::Response, BoxError>;

    /// An attempt's first poll is made inline, and an accepted answer returns at once;
    /// everything else (failures, waiting, sleeping) is in `poll_slow`, out of line.
    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let first = if let Phase::Attempt { armed: false } = this.phase {
            let attempt = this
                .attempt
                .as_mut()
                .as_pin_mut()
                .expect("attempt in flight");
            let polled = attempt.poll(cx);
            let mut decided = None;
            if let Poll::Ready(Ok(response)) = &polled {
                let decision = this.policy.decide(this.request, Ok(response));
                if decision == Decision::Stop {
                    // Accepted: the call is over.
                    if this.state.needs_clock_on_success() {
                        let now = this.state.get_ref().policy().timer().now();
                        this.state.on_success_at(now);
                    }
                    this.attempt.set(None);
                    *this.sleep = None;
                    *this.phase = Phase::Done;
                    return polled.map_err(Into::into);
                }
                decided = Some(decision);
            }
            Some((polled, decided))
        } else {
            None
        };
        poll_slow(this, cx, first)
    }
}

/// An attempt's first poll, made inline, with the policy's decision if it was asked.
type FirstPoll<R, E> = (Poll<Result<R, E>>, Option<Decision>);

/// Drives the loop; `first` is the result of an attempt's first poll (and the policy's decision,
/// if it was asked) when that poll was made inline and not handled there.
#[inline(never)]
fn poll_slow<S, Req, P, R>(
    mut this: ResponseFutureProj<'_, S, Req, P, R>,
    cx: &mut Context<'_>,
    mut first: Option<FirstPoll<S::Response, S::Error>>,
) -> Poll<Result<S::Response, BoxError>>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    P: Policy<Req, S::Response, S::Error>,
    R: Handle,
    Req: Clone,
{
    {
        loop {
            match this.phase {
                Phase::Attempt { armed } => {
                    let (polled, decided) = match first.take() {
                        Some(first) => first,
                        None => (
                            this.attempt
                                .as_mut()
                                .as_pin_mut()
                                .expect("attempt in flight")
                                .poll(cx),
                            None,
                        ),
                    };
                    let (outcome, decision) = match polled {
                        Poll::Ready(result) => {
                            let decision = decided.unwrap_or_else(|| {
                                this.policy.decide(this.request, result.as_ref())
                            });
                            if let (Ok(_), Decision::Stop) = (&result, decision) {
                                // Accepted: the call is over.
                                if this.state.needs_clock_on_success() {
                                    let now = this.state.get_ref().policy().timer().now();
                                    this.state.on_success_at(now);
                                }
                                this.attempt.set(None);
                                *this.sleep = None;
                                *this.phase = Phase::Done;
                                return Poll::Ready(result.map_err(Into::into));
                            }
                            (result.map_err(AttemptError::Failed), decision)
                        }
                        Poll::Pending => {
                            if !*armed {
                                *armed = true;
                                arm_attempt_limit(this.state, this.sleep);
                            }
                            match this.sleep.as_mut().map(|sleep| Pin::new(sleep).poll(cx)) {
                                Some(Poll::Ready(_)) => (
                                    Err(AttemptError::TimedOut(Elapsed::new())),
                                    this.state.config().on_timeout(),
                                ),
                                _ => return Poll::Pending,
                            }
                        }
                    };
                    this.attempt.set(None);
                    let timer = this.state.get_ref().policy().timer().clone();
                    let (next, now) = if this.state.needs_clock_on_failure() {
                        let now = timer.now();
                        (this.state.on_failure_at(now, decision), Some(now))
                    } else {
                        (this.state.on_failure_untimed(decision), None)
                    };
                    match next {
                        Next::Retry(delay) if delay.is_zero() => {
                            match now {
                                Some(now) => {
                                    this.state
                                        .begin_attempt_at(now)
                                        .expect("on_failure_at checked the deadline at `now`");
                                }
                                None => {
                                    this.state.begin_attempt_untimed();
                                }
                            }
                            *this.phase = Phase::Ready;
                        }
                        Next::Retry(delay) => {
                            let now = now.unwrap_or_else(|| timer.now());
                            this.state.start_at(now);
                            set_sleep(&timer, this.sleep, crate::deadline_after(now, delay));
                            *this.phase = Phase::Backoff(outcome);
                        }
                        Next::GiveUp(_) => {
                            *this.sleep = None;
                            *this.phase = Phase::Done;
                            return Poll::Ready(finish(outcome));
                        }
                    }
                }
                Phase::Backoff(_) => {
                    let sleep = this.sleep.as_mut().expect("backoff sleep");
                    ready!(Pin::new(sleep).poll(cx));
                    let now = this.state.get_ref().policy().timer().now();
                    if this.state.begin_attempt_at(now).is_ok() {
                        *this.phase = Phase::Ready;
                    } else {
                        *this.sleep = None;
                        let Phase::Backoff(last) = std::mem::replace(this.phase, Phase::Done)
                        else {
                            unreachable!("in the backoff phase")
                        };
                        return Poll::Ready(finish(last));
                    }
                }
                Phase::Ready => {
                    if let Err(error) = ready!(this.service.poll_ready(cx)) {
                        *this.sleep = None;
                        *this.phase = Phase::Done;
                        return Poll::Ready(Err(error.into()));
                    }
                    let attempt = this.service.call(this.request.clone());
                    this.attempt.set(Some(attempt));
                    *this.phase = Phase::Attempt { armed: false };
                }
                Phase::Done => panic!("retry ResponseFuture polled after completion"),
            }
        }
    }
}

/// The caller's answer from an attempt's outcome: its response, or its error boxed.
fn finish<R, E: Into<BoxError>>(outcome: Outcome<R, E>) -> Result<R, BoxError> {
    match outcome {
        Ok(response) => Ok(response),
        Err(AttemptError::Failed(error)) => Err(error.into()),
        Err(AttemptError::TimedOut(elapsed)) => Err(Box::new(elapsed)),
    }
}

/// Sets the time limit of an attempt that has to wait, if it has one.
#[inline(never)]
fn arm_attempt_limit<R: Handle>(
    state: &mut RetryState<R>,
    sleep: &mut Option<<R::Timer as Timer>::Sleep>,
) {
    let timer = state.get_ref().policy().timer().clone();
    match state.attempt_deadline_at(timer.now()) {
        Some(limit) => set_sleep(&timer, sleep, limit),
        None => *sleep = None,
    }
}

/// Points `sleep` at `deadline`, reusing its registration if there is one.
fn set_sleep<T: Timer>(timer: &T, sleep: &mut Option<T::Sleep>, deadline: Instant) {
    match sleep {
        Some(sleep) => timer.reset(sleep, deadline),
        None => *sleep = Some(timer.sleep_until(deadline)),
    }
}

impl<S: Service<Req>, Req, P, R: Handle> fmt::Debug for ResponseFuture<S, Req, P, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("state", &self.state)
            .field(
                "phase",
                &match self.phase {
                    Phase::Attempt { .. } => "attempt",
                    Phase::Backoff(_) => "backoff",
                    Phase::Ready => "ready",
                    Phase::Done => "done",
                },
            )
            .finish_non_exhaustive()
    }
}
