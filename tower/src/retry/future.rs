use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use pin_project::pin_project;
use tailguard::retry::{Decision, Next, RetryState};
use tailguard::time::Timer;
use tailguard::timeout::Elapsed;
use tower_service::Service;

use super::Policy;
use crate::BoxError;

enum Phase<R> {
    /// An attempt is in flight; `armed` once its time limit (if any) is set.
    Attempt { armed: bool },
    /// Sleeping before the next attempt; holds the last outcome, returned if the deadline
    /// passes during the sleep.
    Backoff(Result<R, BoxError>),
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
#[pin_project]
#[must_use = "futures do nothing unless polled"]
pub struct ResponseFuture<S: Service<Req>, Req, P, T: Timer> {
    #[pin]
    attempt: Option<S::Future>,
    service: S,
    request: Req,
    policy: P,
    state: RetryState<tailguard::retry::Retry<T>>,
    phase: Phase<S::Response>,
    /// The attempt's time limit, or the backoff sleep; reused from one to the next.
    sleep: Option<T::Sleep>,
}

impl<S: Service<Req>, Req, P, T: Timer> ResponseFuture<S, Req, P, T> {
    pub(super) fn new(
        service: S,
        request: Req,
        policy: P,
        retry: tailguard::retry::Retry<T>,
        first: S::Future,
    ) -> Self {
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

impl<S, Req, P, T> Future for ResponseFuture<S, Req, P, T>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    P: Policy<Req, S::Response, S::Error>,
    T: Timer,
    Req: Clone,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.phase {
                Phase::Attempt { armed } => {
                    let attempt = this
                        .attempt
                        .as_mut()
                        .as_pin_mut()
                        .expect("attempt in flight");
                    let (outcome, decision) = match attempt.poll(cx) {
                        Poll::Ready(result) => {
                            let decision = this.policy.decide(this.request, result.as_ref());
                            if let (Ok(_), Decision::Stop) = (&result, decision) {
                                // Accepted: the call is over.
                                if this.state.needs_clock_on_success() {
                                    let now = this.state.get_ref().timer().now();
                                    this.state.on_success_at(now);
                                }
                                this.attempt.set(None);
                                *this.sleep = None;
                                *this.phase = Phase::Done;
                                return Poll::Ready(result.map_err(Into::into));
                            }
                            (result.map_err(Into::into), decision)
                        }
                        Poll::Pending => {
                            if !*armed {
                                *armed = true;
                                arm_attempt_limit(this.state, this.sleep);
                            }
                            match this.sleep.as_mut().map(|sleep| Pin::new(sleep).poll(cx)) {
                                Some(Poll::Ready(_)) => (
                                    Err(Box::new(Elapsed::new()) as BoxError),
                                    this.state.config().on_timeout(),
                                ),
                                _ => return Poll::Pending,
                            }
                        }
                    };
                    this.attempt.set(None);
                    let timer = this.state.get_ref().timer().clone();
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
                            return Poll::Ready(outcome);
                        }
                    }
                }
                Phase::Backoff(_) => {
                    let sleep = this.sleep.as_mut().expect("backoff sleep");
                    ready!(Pin::new(sleep).poll(cx));
                    let now = this.state.get_ref().timer().now();
                    if this.state.begin_attempt_at(now).is_ok() {
                        *this.phase = Phase::Ready;
                    } else {
                        *this.sleep = None;
                        let Phase::Backoff(last) = std::mem::replace(this.phase, Phase::Done)
                        else {
                            unreachable!("in the backoff phase")
                        };
                        return Poll::Ready(last);
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

/// Sets the time limit of an attempt that has to wait, if it has one.
#[inline(never)]
fn arm_attempt_limit<T: Timer>(
    state: &mut RetryState<tailguard::retry::Retry<T>>,
    sleep: &mut Option<T::Sleep>,
) {
    let timer = state.get_ref().timer().clone();
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

impl<S: Service<Req>, Req, P, T: Timer> fmt::Debug for ResponseFuture<S, Req, P, T> {
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
