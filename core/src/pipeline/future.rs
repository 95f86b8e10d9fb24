//! [`PipelineFuture`]: one call through every layer, driving each layer's sans-IO state.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_core::TryFuture;
use pin_project::{pin_project, pinned_drop};

use super::calls::Inner;
use super::hedging::{launch_hedge, Round};
use super::leg::{set_sleep, Clock, Leg, LegEnd, Start};
use super::limiter::Limiter;
use super::{Attempt, PipelineError};
use crate::hedge::{AttemptOutcome, Hedge, HedgeState, TimerTime};
use crate::retry::{Classify, Grant, Next, RetryConfig, RetryState};
use crate::time::{deadline_after, Timer};

/// How the last failed attempt failed.
enum Failure<E> {
    Failed(E),
    TimedOut,
}

impl<E> Failure<E> {
    fn into_error(self) -> Option<E> {
        match self {
            Failure::Failed(error) => Some(error),
            Failure::TimedOut => None,
        }
    }
}

/// A hedge's leg, boxed (hedges exist only on the slow path); `None` once it ended.
pub(super) type HedgeLeg<'p, T, L, Fut> = Option<Pin<Box<Leg<'p, T, L, Fut>>>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not polled yet.
    Start,
    /// A round of attempts (a primary and its hedges) is in flight.
    Round,
    /// Sleeping before the next round.
    Backoff,
    /// Finished.
    Done,
}

/// The future of [`Pipeline::call`](super::Pipeline::call) and
/// [`call_until`](super::Pipeline::call_until): resolves to the first success, or to the
/// [`PipelineError`] of the layer that ended the call.
///
/// It owns the attempts in flight and one sleep, and nothing else: no task, and no allocation
/// unless a hedge is sent (hedges, on the slow path only, are boxed). Dropping it cancels every
/// attempt, releases every breaker permit and limiter slot uncounted, and refunds a retry
/// withdrawn from the budget but not yet made. It is `Send` when the operation and its future
/// are.
#[pin_project(PinnedDrop, project = FutureProj)]
#[must_use = "futures do nothing unless polled"]
pub struct PipelineFuture<'p, T: Timer, C, L: Limiter, Op, Fut: TryFuture> {
    inner: &'p Inner<T, C, L>,
    op: Op,
    retry: RetryState<&'p RetryConfig>,
    hedge: Option<HedgeState<&'p Hedge>>,
    #[pin]
    primary: Leg<'p, T, L, Fut>,
    /// The round's hedges, in start order; `None` once done.
    hedges: Vec<HedgeLeg<'p, T, L, Fut>>,
    /// The backoff sleep, or the wait for the next hedge.
    sleep: Option<T::Sleep>,
    sleep_at: Option<Instant>,
    /// The caller's deadline, if it gave one.
    given: Option<Instant>,
    /// The call's deadline, once started.
    deadline: Option<Instant>,
    /// Operations started.
    attempts: u32,
    /// The round's primary has started its operation.
    admitted: bool,
    /// Whether a hedge may still be sent this round.
    hedging: bool,
    /// The call has deposited into the budget.
    deposited: bool,
    /// A retry withdrawn from the budget and not yet made, with when.
    grant: Option<(Grant, Instant)>,
    last: Option<Failure<Fut::Error>>,
    /// The primary was polled inline by the call's first poll: the round skips it once.
    first: bool,
    phase: Phase,
}

impl<'p, T, C, L, Op, Fut> PipelineFuture<'p, T, C, L, Op, Fut>
where
    T: Timer,
    L: Limiter + 'p,
    Fut: TryFuture,
{
    pub(super) fn new(inner: &'p Inner<T, C, L>, op: Op, given: Option<Instant>) -> Self {
        PipelineFuture {
            inner,
            op,
            retry: RetryState::new(&inner.retry),
            hedge: None,
            primary: Leg::idle(),
            hedges: Vec::new(),
            sleep: None,
            sleep_at: None,
            given,
            deadline: None,
            attempts: 0,
            admitted: false,
            hedging: false,
            deposited: false,
            grant: None,
            last: None,
            first: false,
            phase: Phase::Start,
        }
    }
}

type Proj<'a, 'p, T, C, L, Op, Fut> = FutureProj<'a, 'p, T, C, L, Op, Fut>;

impl<'p, T, C, L, Op, Fut> Future for PipelineFuture<'p, T, C, L, Op, Fut>
where
    T: Timer,
    C: Classify<Fut::Error>,
    L: Limiter + 'p,
    Op: FnMut(Attempt) -> Fut,
    Fut: TryFuture,
{
    type Output = Result<Fut::Ok, PipelineError<Fut::Error>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let inner: &'p Inner<T, C, L> = this.inner;
        let clock = Clock::new(&inner.timer);
        if *this.phase == Phase::Start {
            if inner.needs_start_time || this.given.is_some() {
                let now = clock.now();
                let total = inner.total_timeout.map(|t| deadline_after(now, t));
                *this.deadline = match (*this.given, total) {
                    (Some(given), Some(total)) => Some(given.min(total)),
                    (given, total) => given.or(total),
                };
                if this.deadline.is_some_and(|deadline| now >= deadline) {
                    *this.phase = Phase::Done;
                    inner.deadline_refusals[0].increment();
                    return Poll::Ready(Err(PipelineError::DeadlinePassed));
                }
            }
            if let Err(error) = start_round(&mut this, &clock) {
                return Poll::Ready(Err(error));
            }
            // The first attempt, inline: an operation ready at once ends the call here, without
            // the round's loop (hedges, retries) that only a wait or a failure needs.
            let start = Start {
                op: &mut *this.op,
                attempts: &mut *this.attempts,
            };
            let polled = this.primary.as_mut().poll_leg(cx, inner, &clock, start);
            if this.primary.is_running() || polled.is_ready() {
                admit(&mut this, &clock, polled.is_ready());
            }
            match polled {
                Poll::Ready(LegEnd::Ok(value)) => {
                    if let Some(hedge) = this.hedge.as_mut() {
                        hedge.attempt_done(&clock, 1, AttemptOutcome::Succeeded);
                    }
                    *this.phase = Phase::Done;
                    return Poll::Ready(Ok(value));
                }
                Poll::Ready(ended) => {
                    if let Some(done) = leg_ended(&mut this, &clock, 1, ended) {
                        return Poll::Ready(done);
                    }
                    *this.first = true;
                }
                Poll::Pending => *this.first = true,
            }
        }
        loop {
            match *this.phase {
                Phase::Start | Phase::Done => panic!("`PipelineFuture` polled after completion"),
                Phase::Backoff => {
                    let sleep = this.sleep.as_mut().expect("backoff sleep");
                    if Pin::new(sleep).poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    *this.sleep_at = None;
                    clock.now();
                    if let Err(error) = start_round(&mut this, &clock) {
                        return Poll::Ready(Err(error));
                    }
                }
                Phase::Round => {
                    if let Some(done) = poll_round(&mut this, cx, &clock) {
                        return Poll::Ready(done);
                    }
                    if *this.phase == Phase::Round {
                        return Poll::Pending;
                    }
                }
            }
        }
    }
}

/// Starts a round: the retry's next attempt number, the breaker's permit, then the primary leg
/// (which asks the limiter). A refusal ends the call.
#[inline]
fn start_round<'p, T, C, L, Op, Fut>(
    this: &mut Proj<'_, 'p, T, C, L, Op, Fut>,
    clock: &Clock<'_, T>,
) -> Result<(), PipelineError<Fut::Error>>
where
    T: Timer,
    L: Limiter + 'p,
    Fut: TryFuture,
{
    let inner: &'p Inner<T, C, L> = this.inner;
    let round = this.retry.begin_attempt_untimed();
    let breaker = match &inner.breaker {
        Some(breaker) => match breaker.try_acquire() {
            Ok(permit) => Some(permit),
            Err(rejected) => {
                return Err(fail(this, |attempts, last| PipelineError::BreakerOpen {
                    rejected,
                    attempts,
                    last,
                }))
            }
        },
        None => None,
    };
    *this.admitted = false;
    *this.hedging = inner.hedge.is_some();
    *this.hedge = inner.hedge.as_ref().map(HedgeState::new);
    let attempt = Attempt::new(round, 1);
    this.primary
        .as_mut()
        .start(inner, attempt, breaker, None, clock.known(), *this.deadline);
    *this.phase = Phase::Round;
    Ok(())
}

/// Ends the call with an error built from the attempts and the last failure: drops everything
/// in flight and refunds a retry withdrawn but not made.
#[inline(never)]
fn fail<T, C, L, Op, Fut>(
    this: &mut Proj<'_, '_, T, C, L, Op, Fut>,
    error: impl FnOnce(u32, Option<Fut::Error>) -> PipelineError<Fut::Error>,
) -> PipelineError<Fut::Error>
where
    T: Timer,
    L: Limiter,
    Fut: TryFuture,
{
    refund(this.inner, this.grant);
    this.primary.as_mut().cancel();
    this.hedges.clear();
    *this.sleep = None;
    *this.phase = Phase::Done;
    let last = this.last.take().and_then(Failure::into_error);
    error(*this.attempts, last)
}

fn refund<T: Timer, C, L>(inner: &Inner<T, C, L>, grant: &mut Option<(Grant, Instant)>) {
    if let (Some((grant, at)), Some(budget)) = (grant.take(), &inner.budget) {
        budget.refund_grant(grant, at);
    }
}

/// Polls the round's legs, sends hedges when due, and decides after the last leg failed.
/// `Some` once the call is over.
#[inline(never)]
fn poll_round<'p, T, C, L, Op, Fut>(
    this: &mut Proj<'_, 'p, T, C, L, Op, Fut>,
    cx: &mut Context<'_>,
    clock: &Clock<'_, T>,
) -> Option<Result<Fut::Ok, PipelineError<Fut::Error>>>
where
    T: Timer,
    C: Classify<Fut::Error>,
    L: Limiter + 'p,
    Op: FnMut(Attempt) -> Fut,
    Fut: TryFuture,
{
    let inner: &'p Inner<T, C, L> = this.inner;
    loop {
        if std::mem::take(this.first) {
            // The primary was polled (or ended) inline in this same poll.
        } else if this.primary.is_active() {
            let start = Start {
                op: &mut *this.op,
                attempts: &mut *this.attempts,
            };
            let polled = this.primary.as_mut().poll_leg(cx, inner, clock, start);
            if !*this.admitted && (this.primary.is_running() || polled.is_ready()) {
                admit(this, clock, polled.is_ready());
            }
            if let Poll::Ready(ended) = polled {
                if let Some(done) = leg_ended(this, clock, 1, ended) {
                    return Some(done);
                }
            }
        }
        let mut index = 0;
        while index < this.hedges.len() {
            let polled = match &mut this.hedges[index] {
                Some(leg) => {
                    let start = Start {
                        op: &mut *this.op,
                        attempts: &mut *this.attempts,
                    };
                    leg.as_mut().poll_leg(cx, inner, clock, start)
                }
                None => Poll::Pending,
            };
            if let Poll::Ready(ended) = polled {
                this.hedges[index] = None;
                if let Some(done) = leg_ended(this, clock, index as u32 + 2, ended) {
                    return Some(done);
                }
            }
            index += 1;
        }
        let in_flight = this.primary.is_active() || this.hedges.iter().any(Option::is_some);
        if !in_flight {
            this.hedges.clear();
            match round_failed(this, clock) {
                Err(error) => return Some(Err(error)),
                // A retry without delay: its attempt starts in this same poll.
                Ok(()) if *this.phase == Phase::Round => continue,
                Ok(()) => return None,
            }
        }
        if !*this.hedging || !*this.admitted {
            return None;
        }
        let hedge = this.hedge.as_mut()?;
        if !hedge.is_armed() {
            hedge.arm_at(clock.now());
        }
        let due = hedge.next_hedge_at()?;
        let now = clock.now();
        if now >= due {
            let round = Round {
                inner,
                deadline: *this.deadline,
                hedge: this.hedge.as_mut().expect("hedging"),
                round: this.retry.attempts(),
                hedges: this.hedges,
            };
            if !launch_hedge(round, cx, now) {
                // A hedge the budget refused at its first chance has later ones (rationing by
                // lateness, see `HedgeState`): keep hedging and sleep until the next. Any other
                // refusal (deadline, breaker, limiter) ends hedging for this round.
                let next = this.hedge.as_ref().and_then(HedgeState::next_hedge_at);
                if next.is_some_and(|next| next > now) {
                    continue;
                }
                *this.hedging = false;
                *this.sleep = None;
                *this.sleep_at = None;
                return None;
            }
            continue;
        }
        if *this.sleep_at != Some(due) {
            set_sleep(&inner.timer, this.sleep, due);
            *this.sleep_at = Some(due);
        }
        let sleep = this.sleep.as_mut().expect("hedge sleep");
        if Pin::new(sleep).poll(cx).is_pending() {
            return None;
        }
        // Due: loop, find `now >= due` on a fresh read, and send the hedge.
        clock.forget();
    }
}

/// The round's primary has started its operation (or ended before it could, `ended`): the
/// call deposits into the budget once, the withdrawn retry is spent, the hedge starts.
#[inline]
fn admit<T, C, L, Op, Fut>(
    this: &mut Proj<'_, '_, T, C, L, Op, Fut>,
    clock: &Clock<'_, T>,
    ended: bool,
) where
    T: Timer,
    L: Limiter,
    Fut: TryFuture,
{
    if ended && !this.primary.attempt().is_started() {
        // Refused (or out of time) before the operation started: nothing to admit.
        return;
    }
    *this.admitted = true;
    *this.grant = None;
    if !*this.deposited {
        *this.deposited = true;
        if let Some(budget) = &this.inner.budget {
            budget.deposit_at(clock.now());
        }
    }
    if let Some(hedge) = this.hedge.as_mut() {
        hedge.begin();
    }
}

/// Leg number `number` of the round (1 the primary) ended: a success ends the call, a failure
/// is remembered, a deadline or a refusal ends the call.
#[inline]
fn leg_ended<T, C, L, Op, Fut>(
    this: &mut Proj<'_, '_, T, C, L, Op, Fut>,
    clock: &Clock<'_, T>,
    number: u32,
    ended: LegEnd<Fut::Ok, Fut::Error>,
) -> Option<Result<Fut::Ok, PipelineError<Fut::Error>>>
where
    T: Timer,
    L: Limiter,
    Fut: TryFuture,
{
    let outcome = match &ended {
        LegEnd::Ok(_) => AttemptOutcome::Succeeded,
        _ => AttemptOutcome::Failed,
    };
    if let Some(hedge) = this.hedge.as_mut() {
        hedge.attempt_done(clock, number, outcome);
    }
    match ended {
        LegEnd::Ok(value) => {
            if this.primary.is_active() {
                this.primary.as_mut().cancel();
            }
            this.hedges.clear();
            *this.sleep = None;
            *this.phase = Phase::Done;
            Some(Ok(value))
        }
        LegEnd::Failed(error) => {
            *this.last = Some(Failure::Failed(error));
            None
        }
        LegEnd::TimedOut => {
            *this.last = Some(Failure::TimedOut);
            None
        }
        LegEnd::DeadlineReached => Some(Err(fail(this, |attempts, last| {
            PipelineError::DeadlineReached { attempts, last }
        }))),
        LegEnd::Rejected(rejected) => Some(Err(fail(this, |attempts, last| {
            PipelineError::LimiterFull {
                rejected,
                attempts,
                last,
            }
        }))),
    }
}

/// Every attempt of the round failed: retry (after the backoff, if the deadline leaves time
/// for an attempt and the budget allows) or give up.
#[inline(never)]
fn round_failed<'p, T, C, L, Op, Fut>(
    this: &mut Proj<'_, 'p, T, C, L, Op, Fut>,
    clock: &Clock<'_, T>,
) -> Result<(), PipelineError<Fut::Error>>
where
    T: Timer,
    C: Classify<Fut::Error>,
    L: Limiter + 'p,
    Fut: TryFuture,
{
    let inner: &'p Inner<T, C, L> = this.inner;
    let decision = match this.last.as_ref().expect("a failed round has a failure") {
        Failure::Failed(error) => inner.classifier.classify(error),
        Failure::TimedOut => inner.retry.on_timeout(),
    };
    let delay = match this.retry.on_failure_untimed(decision) {
        Next::Retry(delay) => delay,
        Next::GiveUp(_) => {
            return Err(fail(this, |attempts, last| match last {
                Some(error) => PipelineError::GaveUp { attempts, error },
                None => PipelineError::AttemptTimedOut { attempts },
            }));
        }
    };
    let now = clock.now();
    let resume = deadline_after(now, delay);
    if let Some(deadline) = *this.deadline {
        let remaining = deadline.saturating_duration_since(resume);
        let predicted = inner.predictor.predict_at(now);
        if remaining.is_zero() || remaining < predicted {
            inner.deadline_refusals[1].increment();
            return Err(fail(this, |attempts, last| {
                PipelineError::DeadlineTooShort {
                    remaining,
                    predicted,
                    attempts,
                    last,
                }
            }));
        }
    }
    if let Some(budget) = &inner.budget {
        match budget.try_grant_at(now) {
            Some(grant) => *this.grant = Some((grant, now)),
            None => {
                return Err(fail(this, |attempts, last| PipelineError::BudgetEmpty {
                    attempts,
                    last,
                }))
            }
        }
    }
    if delay.is_zero() {
        return start_round(this, clock);
    }
    set_sleep(&inner.timer, this.sleep, resume);
    *this.sleep_at = Some(resume);
    *this.phase = Phase::Backoff;
    Ok(())
}

#[pinned_drop]
impl<'p, T, C, L, Op, Fut> PinnedDrop for PipelineFuture<'p, T, C, L, Op, Fut>
where
    T: Timer,
    L: Limiter + 'p,
    Fut: TryFuture,
{
    fn drop(self: Pin<&mut Self>) {
        let this = self.project();
        refund(this.inner, this.grant);
        if let Some(hedge) = this.hedge.as_mut() {
            hedge.cancel(TimerTime(&this.inner.timer));
        }
    }
}

impl<T: Timer, C, L: Limiter, Op, Fut: TryFuture> fmt::Debug
    for PipelineFuture<'_, T, C, L, Op, Fut>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineFuture")
            .field("phase", &self.phase)
            .field("attempts", &self.attempts)
            .field("deadline", &self.deadline)
            .field("hedges", &self.hedges.len())
            .finish_non_exhaustive()
    }
}
