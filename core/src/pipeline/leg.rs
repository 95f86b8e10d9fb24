//! One attempt through the inner layers: breaker permit (taken by the caller) → limiter slot →
//! attempt timeout → operation.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_core::TryFuture;
use pin_project::pin_project;

use super::calls::Inner;
use super::limiter::{Limiter, LimiterPermit, LimiterRejected, Outcome};
use super::Attempt;
use crate::breaker::Permit;
use crate::hedge::CallTime;
use crate::time::{deadline_after, Timer};

/// The time within one poll of the call: read at most once, and only if something needs it.
pub(super) struct Clock<'a, T> {
    timer: &'a T,
    now: Cell<Option<Instant>>,
}

impl<'a, T: Timer> Clock<'a, T> {
    pub(super) fn new(timer: &'a T) -> Self {
        Clock {
            timer,
            now: Cell::new(None),
        }
    }

    /// The time, read on first use in this poll.
    #[inline]
    pub(super) fn now(&self) -> Instant {
        match self.now.get() {
            Some(now) => now,
            None => {
                let now = self.timer.now();
                self.now.set(Some(now));
                now
            }
        }
    }

    /// Forgets the time read, so that the next use reads it again (after a sleep fired).
    pub(super) fn forget(&self) {
        self.now.set(None);
    }

    /// The timer's coarse time on the process's scale ([`Timer::now_coarse_nanos`]; not kept,
    /// as it may lag): what an attempt ready at once is recorded at. Read even when the time
    /// of this poll is known: turning that `Instant` into nanoseconds (a `Timespec`
    /// subtraction, about 100 instructions) costs more than the coarse read.
    #[inline]
    pub(super) fn coarse_nanos(&self) -> u64 {
        self.timer.now_coarse_nanos()
    }

    /// The time if it has been read in this poll.
    #[inline]
    pub(super) fn known(&self) -> Option<Instant> {
        self.now.get()
    }
}

/// The call's clock as the hedge's source of time: a primary ready at once is recorded at
/// [`Clock::coarse_nanos`].
impl<T: Timer> CallTime for &Clock<'_, T> {
    #[inline]
    fn now(self) -> Instant {
        Clock::now(self)
    }

    #[inline]
    fn coarse_nanos(self) -> u64 {
        Clock::coarse_nanos(self)
    }
}

/// How a leg ended.
pub(super) enum LegEnd<V, E> {
    /// The operation succeeded.
    Ok(V),
    /// The operation failed.
    Failed(E),
    /// The attempt ran out of its own time limit.
    TimedOut,
    /// The call's deadline fell while the leg waited for a slot or ran.
    DeadlineReached,
    /// The limiter refused a slot.
    Rejected(LimiterRejected),
}

#[pin_project(project = StageProj)]
enum Stage<A, F> {
    /// Nothing in flight.
    Idle,
    /// The breaker admitted the attempt and the slot (if any) is held: the operation starts on
    /// the next poll.
    Admitted,
    /// Waiting for a limiter slot.
    Waiting(#[pin] A),
    /// The operation is running.
    Running(#[pin] F),
}

/// What a leg needs from its call to start the operation.
pub(super) struct Start<'a, Op> {
    pub(super) op: &'a mut Op,
    /// Operations started by the call so far; the new one is numbered after them.
    pub(super) attempts: &'a mut u32,
}

/// One attempt: its breaker permit, its limiter slot (or the wait for one), the operation and
/// the sleep that bounds the wait and the attempt. Dropping it releases both permits uncounted.
#[pin_project(project = LegProj)]
pub(super) struct Leg<'p, T: Timer, L: Limiter + 'p, Fut> {
    #[pin]
    stage: Stage<L::Acquire<'p>, Fut>,
    breaker: Option<Permit<'p, T>>,
    permit: Option<L::Permit>,
    attempt: Attempt,
    /// The call's deadline.
    call_deadline: Option<Instant>,
    /// When the operation started, if known.
    started: Option<Instant>,
    /// The operation was pending at least once (else it kept nobody waiting).
    waited: bool,
    /// Bounds the wait for a slot (by the call's deadline) and then the attempt.
    sleep: Option<T::Sleep>,
    sleep_at: Option<Instant>,
}

impl<'p, T, L, Fut> Leg<'p, T, L, Fut>
where
    T: Timer,
    L: Limiter + 'p,
    Fut: TryFuture,
{
    pub(super) fn idle() -> Self {
        Leg {
            stage: Stage::Idle,
            breaker: None,
            permit: None,
            attempt: Attempt::UNSTARTED,
            call_deadline: None,
            started: None,
            waited: false,
            sleep: None,
            sleep_at: None,
        }
    }

    /// Whether an attempt is in flight (waiting for a slot or running).
    pub(super) fn is_active(&self) -> bool {
        !matches!(self.stage, Stage::Idle)
    }

    /// Whether the operation has started.
    pub(super) fn is_running(&self) -> bool {
        matches!(self.stage, Stage::Running(_))
    }

    /// The attempt's numbers (its number is set once the operation starts).
    pub(super) fn attempt(&self) -> Attempt {
        self.attempt
    }

    /// Starts a leg admitted by the breaker (`breaker`): asks the limiter for a slot at `now`
    /// (which must be known when there is a limiter), or holds `permit` if it was already given.
    #[inline]
    pub(super) fn start(
        mut self: Pin<&mut Self>,
        inner: &'p Inner<T, impl Sized, L>,
        attempt: Attempt,
        breaker: Option<Permit<'p, T>>,
        permit: Option<L::Permit>,
        now: Option<Instant>,
        call_deadline: Option<Instant>,
    ) {
        let stage = if L::PRESENT && permit.is_none() {
            let now = now.unwrap_or_else(|| inner.timer.now());
            Stage::Waiting(inner.limiter.acquire_at(now, call_deadline))
        } else {
            Stage::Admitted
        };
        self.as_mut().project().stage.set(stage);
        let this = self.project();
        *this.breaker = breaker;
        *this.permit = permit;
        *this.attempt = attempt;
        *this.call_deadline = call_deadline;
        *this.started = None;
        *this.waited = false;
        *this.sleep_at = None;
    }

    /// Drops whatever is in flight, releasing both permits uncounted.
    pub(super) fn cancel(self: Pin<&mut Self>) {
        let mut this = self.project();
        this.stage.set(Stage::Idle);
        *this.breaker = None;
        *this.permit = None;
        *this.sleep = None;
    }

    /// Drives the leg; `Ready` once it has ended (it is then idle again).
    #[inline]
    pub(super) fn poll_leg<C, Op>(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        inner: &'p Inner<T, C, L>,
        clock: &Clock<'_, T>,
        mut start: Start<'_, Op>,
    ) -> Poll<LegEnd<Fut::Ok, Fut::Error>>
    where
        Op: FnMut(Attempt) -> Fut,
    {
        loop {
            let mut this = self.as_mut().project();
            match this.stage.as_mut().project() {
                StageProj::Idle => panic!("pipeline leg polled while idle"),
                StageProj::Admitted => {
                    let fut = begin(&mut this, inner, clock, &mut start);
                    this.stage.set(Stage::Running(fut));
                }
                StageProj::Waiting(acquire) => match acquire.poll(cx) {
                    Poll::Ready(Ok(permit)) => {
                        // Admitted: the operation starts at once (no stop at `Admitted`).
                        *this.permit = Some(permit);
                        let fut = begin(&mut this, inner, clock, &mut start);
                        this.stage.set(Stage::Running(fut));
                    }
                    Poll::Ready(Err(rejected)) => {
                        self.as_mut().cancel();
                        return Poll::Ready(LegEnd::Rejected(rejected));
                    }
                    Poll::Pending => {
                        let Some(deadline) = *this.call_deadline else {
                            return Poll::Pending;
                        };
                        if poll_sleep(inner, this.sleep, this.sleep_at, deadline, cx).is_ready() {
                            self.as_mut().cancel();
                            return Poll::Ready(LegEnd::DeadlineReached);
                        }
                        return Poll::Pending;
                    }
                },
                StageProj::Running(fut) => {
                    let (end, outcome) = match fut.try_poll(cx) {
                        Poll::Ready(Ok(value)) => (LegEnd::Ok(value), Outcome::Success),
                        Poll::Ready(Err(error)) => (LegEnd::Failed(error), Outcome::Failure),
                        Poll::Pending => {
                            if !*this.waited {
                                *this.waited = true;
                                if this.started.is_none() {
                                    *this.started = Some(clock.now());
                                }
                            }
                            let Some(limit) = this.attempt.deadline else {
                                return Poll::Pending;
                            };
                            if poll_sleep(inner, this.sleep, this.sleep_at, limit, cx).is_pending()
                            {
                                return Poll::Pending;
                            }
                            if *this.call_deadline == Some(limit) {
                                // The call's deadline, not the attempt's own limit: the work is
                                // cut, and counted as neither success nor failure.
                                self.as_mut().cancel();
                                return Poll::Ready(LegEnd::DeadlineReached);
                            }
                            (LegEnd::TimedOut, Outcome::TimedOut)
                        }
                    };
                    this.stage.set(Stage::Idle);
                    let cut = matches!(outcome, Outcome::TimedOut);
                    let latency = if *this.waited {
                        let now = clock.now();
                        let latency = now.saturating_duration_since(this.started.unwrap_or(now));
                        inner.predictor.record_at(now, latency);
                        inner.attempt_limit.record_at(now, latency, cut);
                        latency
                    } else {
                        // Ready at once: no `Instant` built, but the sample still needs its
                        // time, or it would leave the window with whichever slice was newest.
                        let at = clock.coarse_nanos();
                        inner.predictor.record_nanos_at(at, Duration::ZERO);
                        inner.attempt_limit.record_ready_at(at);
                        Duration::ZERO
                    };
                    if let Some(permit) = this.breaker.take() {
                        match outcome {
                            Outcome::Success => permit.success(),
                            Outcome::Failure | Outcome::TimedOut => permit.failure(),
                        }
                    }
                    if let Some(permit) = this.permit.take() {
                        permit.finish(outcome, latency);
                    }
                    *this.sleep = None;
                    return Poll::Ready(end);
                }
            }
        }
    }
}

/// Starts the admitted leg's operation: its start time (read if it has a timeout of its own,
/// fixed or adaptive), its deadline and number; the caller sets the stage to `Running`.
#[inline]
fn begin<'p, T, L, Fut, C, Op>(
    this: &mut LegProj<'_, 'p, T, L, Fut>,
    inner: &'p Inner<T, C, L>,
    clock: &Clock<'_, T>,
    start: &mut Start<'_, Op>,
) -> Fut
where
    T: Timer,
    L: Limiter + 'p,
    Op: FnMut(Attempt) -> Fut,
{
    let now = if inner.attempt_limit.is_set() {
        Some(clock.now())
    } else {
        clock.known()
    };
    *this.started = now;
    let own = inner
        .attempt_limit
        .limit()
        .zip(now)
        .map(|(limit, now)| deadline_after(now, limit));
    this.attempt.deadline = match (own, *this.call_deadline) {
        (Some(own), Some(call)) => Some(own.min(call)),
        (own, call) => own.or(call),
    };
    *start.attempts += 1;
    this.attempt.number = *start.attempts;
    *this.sleep_at = None;
    (start.op)(*this.attempt)
}

/// Polls `sleep` set for `at`, creating or moving it first if needed.
fn poll_sleep<T: Timer, C, L: Limiter>(
    inner: &Inner<T, C, L>,
    sleep: &mut Option<T::Sleep>,
    sleep_at: &mut Option<Instant>,
    at: Instant,
    cx: &mut Context<'_>,
) -> Poll<()> {
    if *sleep_at != Some(at) {
        set_sleep(&inner.timer, sleep, at);
        *sleep_at = Some(at);
    }
    let sleep = sleep.as_mut().expect("armed above");
    Pin::new(sleep).poll(cx).map(|_| ())
}

/// Points `sleep` at `at`, reusing its registration if there is one.
pub(super) fn set_sleep<T: Timer>(timer: &T, sleep: &mut Option<T::Sleep>, at: Instant) {
    match sleep {
        Some(sleep) => timer.reset(sleep, at),
        None => *sleep = Some(timer.sleep_until(at)),
    }
}
