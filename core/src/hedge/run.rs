use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_core::TryFuture;
use pin_project::{pin_project, pinned_drop};

use super::error::HedgeError;
use super::policy::Hedge;
use super::state::{AttemptOutcome, HedgeState, TimerTime};
use crate::time::Timer;

/// Starts attempt `n` of a hedged call (1 is the primary, 2.. are hedges).
///
/// Implemented for every `FnMut(u32) -> Fut`, which is what [`Hedge::run_with`] takes. Implement
/// it for a type of your own to give [`HedgedRun`] a maker whose type can be named (a tower
/// service's `Future` type, say), and start the call with [`HedgedRun::new`].
///
/// ```
/// use tailguard::hedge::{Hedge, HedgedRun, MakeAttempt};
/// use tailguard::time::ManualTimer;
///
/// struct Replicas;
/// impl MakeAttempt<std::future::Ready<Result<u32, ()>>> for Replicas {
///     fn make_attempt(&mut self, attempt: u32) -> std::future::Ready<Result<u32, ()>> {
///         std::future::ready(Ok(attempt))
///     }
/// }
///
/// let timer = ManualTimer::new();
/// let hedge = Hedge::builder().build()?;
/// let call: HedgedRun<Replicas, _, ManualTimer> = HedgedRun::new(hedge, timer.clone(), Replicas);
/// assert_eq!(timer.block_on(call), Ok(1));
/// # Ok::<(), tailguard::ConfigError>(())
/// ```
pub trait MakeAttempt<Fut> {
    /// Starts attempt number `attempt`.
    fn make_attempt(&mut self, attempt: u32) -> Fut;
}

impl<F: FnMut(u32) -> Fut, Fut> MakeAttempt<Fut> for F {
    #[inline(always)]
    fn make_attempt(&mut self, attempt: u32) -> Fut {
        self(attempt)
    }
}

/// One hedged call in progress, made by [`Hedge::run_with`] or [`Hedge::run`] (or
/// [`HedgedRun::new`], with a [`MakeAttempt`] of your own).
///
/// Resolves to the first `Ok` of any attempt, or to a [`HedgeError`] holding every attempt's
/// error. Dropping it drops every attempt in flight and its timer.
///
/// The primary is started and polled inline on the first poll; if it is ready then, the call
/// allocates nothing and never reads a clock or registers a timer. Hedges, which only exist on
/// the slow path, are boxed. Every decision (when, whether, what to record) is made by a
/// [`HedgeState`]; this future only polls, sleeps and drops.
#[pin_project(PinnedDrop)]
#[must_use = "futures do nothing unless polled"]
pub struct HedgedRun<F, Fut: TryFuture, T: Timer> {
    #[pin]
    primary: Option<Fut>,
    state: State<F, Fut, T>,
}

struct State<F, Fut: TryFuture, T: Timer> {
    call: HedgeState<Hedge>,
    timer: T,
    make_attempt: F,
    /// Attempts 2.. in start order (attempt `i + 2` at index `i`); `None` once done.
    hedges: Vec<Option<Pin<Box<Fut>>>>,
    errors: Vec<Fut::Error>,
    sleep: Option<(T::Sleep, Instant)>,
    /// The output was returned: polling again is a bug.
    returned: bool,
}

impl<F, Fut, T> HedgedRun<F, Fut, T>
where
    F: MakeAttempt<Fut>,
    Fut: TryFuture,
    T: Timer,
{
    /// One call under `hedge` on `timer`, starting its attempts with `make_attempt`; the same
    /// as [`Hedge::run_with`], for a maker that is not a closure.
    pub fn new(hedge: Hedge, timer: T, make_attempt: F) -> Self {
        HedgedRun {
            primary: None,
            state: State {
                call: HedgeState::new(hedge),
                timer,
                make_attempt,
                hedges: Vec::new(),
                errors: Vec::new(),
                sleep: None,
                returned: false,
            },
        }
    }
}

impl<F, Fut, T> Future for HedgedRun<F, Fut, T>
where
    F: MakeAttempt<Fut>,
    Fut: TryFuture,
    T: Timer,
{
    type Output = Result<Fut::Ok, HedgeError<Fut::Error>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let state = this.state;
        assert!(!state.returned, "`HedgedRun` polled after completion");
        if state.call.attempts() == 0 {
            // No clock yet: the primary may well be ready on its first poll.
            state.call.begin();
            this.primary.set(Some(state.make_attempt.make_attempt(1)));
        }
        loop {
            let mut failed = false;

            if let Some(primary) = this.primary.as_mut().as_pin_mut() {
                match primary.try_poll(cx) {
                    Poll::Ready(Ok(output)) => {
                        let timer = &state.timer;
                        state
                            .call
                            .attempt_done(TimerTime(timer), 1, AttemptOutcome::Succeeded);
                        this.primary.set(None);
                        state.finish();
                        return Poll::Ready(Ok(output));
                    }
                    Poll::Ready(Err(error)) => {
                        let timer = &state.timer;
                        state
                            .call
                            .attempt_done(TimerTime(timer), 1, AttemptOutcome::Failed);
                        this.primary.set(None);
                        state.errors.push(error);
                        failed = true;
                    }
                    Poll::Pending => {}
                }
            }

            for (index, slot) in state.hedges.iter_mut().enumerate() {
                let Some(attempt) = slot else { continue };
                let number = index as u32 + 2;
                match attempt.as_mut().try_poll(cx) {
                    Poll::Ready(Ok(output)) => {
                        let timer = &state.timer;
                        // Records the primary, if still out, before it is dropped.
                        state.call.attempt_done(
                            TimerTime(timer),
                            number,
                            AttemptOutcome::Succeeded,
                        );
                        this.primary.set(None);
                        state.finish();
                        return Poll::Ready(Ok(output));
                    }
                    Poll::Ready(Err(error)) => {
                        *slot = None;
                        let timer = &state.timer;
                        state
                            .call
                            .attempt_done(TimerTime(timer), number, AttemptOutcome::Failed);
                        state.errors.push(error);
                        failed = true;
                    }
                    Poll::Pending => {}
                }
            }

            // A failure frees a slot at once: the next attempt need not wait for the delay.
            if failed && state.call.may_hedge() {
                let now = state.timer.now();
                if state.launch(now) {
                    continue;
                }
            }
            if state.call.in_flight() == 0 {
                state.finish();
                let errors = std::mem::take(&mut state.errors);
                return Poll::Ready(Err(HedgeError::new(errors)));
            }

            let now = state.timer.now();
            if !state.call.is_armed() {
                state.call.arm_at(now);
            }
            let Some(due) = state.call.next_hedge_at() else {
                state.sleep = None;
                return Poll::Pending;
            };
            if now >= due {
                // Launched, or refused by the budget: either way the next due time moved on
                // (a refused hedge's next chance comes later; past the last one, none).
                state.launch(now);
                continue;
            }
            let timer = &state.timer;
            let (sleep, armed_for) = state
                .sleep
                .get_or_insert_with(|| (timer.sleep_until(due), due));
            if *armed_for != due {
                timer.reset(sleep, due);
                *armed_for = due;
            }
            match Pin::new(sleep).poll(cx) {
                // Due now: loop, find `now >= due` and launch.
                Poll::Ready(_) => continue,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<F, Fut, T> State<F, Fut, T>
where
    F: MakeAttempt<Fut>,
    Fut: TryFuture,
    T: Timer,
{
    /// Starts the next attempt if the state allows; `false` if it refuses (a budget refusal
    /// moves the hedge to its next chance).
    fn launch(&mut self, now: Instant) -> bool {
        let Some(number) = self.call.try_hedge_at(now) else {
            return false;
        };
        let attempt = self.make_attempt.make_attempt(number);
        self.hedges.push(Some(Box::pin(attempt)));
        true
    }

    /// Drops every attempt still in flight and the timer.
    fn finish(&mut self) {
        self.returned = true;
        self.hedges.clear();
        self.sleep = None;
    }
}

#[pinned_drop]
impl<F, Fut: TryFuture, T: Timer> PinnedDrop for HedgedRun<F, Fut, T> {
    fn drop(self: Pin<&mut Self>) {
        let this = self.project();
        let state = this.state;
        // A call dropped with attempts out records its primary's time out (a lower bound); the
        // state reads no clock if there is nothing to record.
        let timer = &state.timer;
        state.call.cancel(TimerTime(timer));
    }
}

impl<F, Fut: TryFuture, T: Timer> fmt::Debug for HedgedRun<F, Fut, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = &self.state;
        f.debug_struct("HedgedRun")
            .field("call", &state.call)
            .field("failed", &state.errors.len())
            .finish()
    }
}
