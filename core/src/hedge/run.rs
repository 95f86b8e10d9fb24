use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_core::TryFuture;
use pin_project::{pin_project, pinned_drop};

use super::error::HedgeError;
use super::policy::{Delay, Hedge};
use super::stats::Counters;
use crate::time::{deadline_after, Timer};

/// One hedged call in progress, made by [`Hedge::run_with`] or [`Hedge::run`].
///
/// Resolves to the first `Ok` of any attempt, or to a [`HedgeError`] holding every attempt's
/// error. Dropping it drops every attempt in flight and its timer.
///
/// The primary is started and polled inline on the first poll; if it is ready then, the call
/// allocates nothing and never reads a clock or registers a timer. Hedges, which only exist on
/// the slow path, are boxed.
#[pin_project(PinnedDrop)]
#[must_use = "futures do nothing unless polled"]
pub struct HedgedRun<F, Fut: TryFuture, T: Timer> {
    #[pin]
    primary: Option<Fut>,
    state: State<F, Fut, T>,
}

struct State<F, Fut: TryFuture, T: Timer> {
    hedge: Hedge,
    timer: T,
    make_attempt: F,
    /// Attempts 1.. in start order; `None` once finished.
    hedges: Vec<Option<Pin<Box<Fut>>>>,
    errors: Vec<Fut::Error>,
    phase: Phase,
    /// Attempts started so far, the primary included.
    started: u32,
    /// Attempts started and not yet finished.
    in_flight: u32,
    /// When the primary was first seen pending. The clock is not read before that.
    primary_start: Option<Instant>,
    /// When the latest attempt started: the next hedge is due `delay` after it.
    last_start: Option<Instant>,
    /// This call's hedge delay, chosen when the primary is first seen pending; `None` means no
    /// hedging on time (adaptive policy still short of samples).
    delay: Option<Duration>,
    sleep: Option<(T::Sleep, Instant)>,
    /// The budget refused a hedge: this call sends no more.
    refused: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    NotStarted,
    Running,
    Done,
}

impl<F, Fut, T> HedgedRun<F, Fut, T>
where
    F: FnMut(u32) -> Fut,
    Fut: TryFuture,
    T: Timer,
{
    pub(crate) fn new(hedge: Hedge, timer: T, make_attempt: F) -> Self {
        HedgedRun {
            primary: None,
            state: State {
                hedge,
                timer,
                make_attempt,
                hedges: Vec::new(),
                errors: Vec::new(),
                phase: Phase::NotStarted,
                started: 0,
                in_flight: 0,
                primary_start: None,
                last_start: None,
                delay: None,
                sleep: None,
                refused: false,
            },
        }
    }
}

impl<F, Fut, T> Future for HedgedRun<F, Fut, T>
where
    F: FnMut(u32) -> Fut,
    Fut: TryFuture,
    T: Timer,
{
    type Output = Result<Fut::Ok, HedgeError<Fut::Error>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let state = this.state;
        match state.phase {
            Phase::Done => panic!("`HedgedRun` polled after completion"),
            Phase::NotStarted => {
                state.phase = Phase::Running;
                let inner = &state.hedge.inner;
                Counters::bump(&inner.counters.primaries);
                if let Some(budget) = &inner.budget {
                    budget.deposit();
                }
                this.primary.set(Some((state.make_attempt)(0)));
                state.started = 1;
                state.in_flight = 1;
            }
            Phase::Running => {}
        }
        loop {
            let mut failed = false;

            if let Some(primary) = this.primary.as_mut().as_pin_mut() {
                match primary.try_poll(cx) {
                    Poll::Ready(Ok(output)) => {
                        state.record_primary_finished();
                        this.primary.set(None);
                        state.finish();
                        return Poll::Ready(Ok(output));
                    }
                    Poll::Ready(Err(error)) => {
                        state.record_primary_finished();
                        this.primary.set(None);
                        state.attempt_failed(error);
                        failed = true;
                    }
                    Poll::Pending => {}
                }
            }

            for slot in state.hedges.iter_mut() {
                let Some(attempt) = slot else { continue };
                match attempt.as_mut().try_poll(cx) {
                    Poll::Ready(Ok(output)) => {
                        Counters::bump(&state.hedge.inner.counters.hedges_won);
                        if this.primary.is_some() {
                            state.record_primary_cancelled();
                            this.primary.set(None);
                        }
                        state.finish();
                        return Poll::Ready(Ok(output));
                    }
                    Poll::Ready(Err(error)) => {
                        *slot = None;
                        state.in_flight -= 1;
                        state.errors.push(error);
                        failed = true;
                    }
                    Poll::Pending => {}
                }
            }

            // A failure frees a slot at once: the next attempt need not wait for the delay.
            if failed && state.may_launch() {
                let now = state.timer.now();
                if state.launch(now) {
                    continue;
                }
            }
            if state.in_flight == 0 {
                state.finish();
                let errors = std::mem::take(&mut state.errors);
                return Poll::Ready(Err(HedgeError::new(errors)));
            }

            let now = state.timer.now();
            if state.primary_start.is_none() {
                state.primary_start = Some(now);
                state.last_start = Some(now);
                state.delay = state.hedge.delay_at(now);
            }
            if !state.may_launch() {
                state.sleep = None;
                return Poll::Pending;
            }
            let (Some(delay), Some(last_start)) = (state.delay, state.last_start) else {
                return Poll::Pending;
            };
            let due = deadline_after(last_start, delay);
            if now >= due {
                if state.launch(now) {
                    continue;
                }
                state.sleep = None;
                return Poll::Pending;
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
    F: FnMut(u32) -> Fut,
    Fut: TryFuture,
    T: Timer,
{
    /// Whether another attempt could start, budget aside.
    fn may_launch(&self) -> bool {
        !self.refused && self.started < self.hedge.inner.max_attempts
    }

    /// Starts the next attempt if the budget allows; `false` (and no more hedging for this
    /// call) if it refuses.
    fn launch(&mut self, now: Instant) -> bool {
        let inner = &self.hedge.inner;
        if let Some(budget) = &inner.budget {
            if !budget.try_withdraw_at(now) {
                Counters::bump(&inner.counters.budget_refusals);
                self.refused = true;
                return false;
            }
        }
        Counters::bump(&inner.counters.hedges_sent);
        let attempt = (self.make_attempt)(self.started);
        self.started += 1;
        self.in_flight += 1;
        self.last_start = Some(now);
        self.hedges.push(Some(Box::pin(attempt)));
        true
    }

    fn attempt_failed(&mut self, error: Fut::Error) {
        self.in_flight -= 1;
        self.errors.push(error);
    }

    /// Drops every attempt still in flight and the timer.
    fn finish(&mut self) {
        self.phase = Phase::Done;
        self.hedges.clear();
        self.sleep = None;
    }

    /// The primary finished (either way): record its exact latency. A primary that finished on
    /// its first poll took no time we waited for; it is recorded as zero without reading a clock.
    fn record_primary_finished(&mut self) {
        if let Delay::Adaptive(adaptive) = &self.hedge.inner.delay {
            match self.primary_start {
                None => adaptive.record(Duration::ZERO),
                Some(start) => {
                    let now = self.timer.now();
                    adaptive.record_at(now, now.saturating_duration_since(start));
                }
            }
        }
    }

    /// The primary is being cancelled: record how long it had been out, a lower bound on its
    /// latency (see the module documentation for why this keeps percentiles honest).
    fn record_primary_cancelled(&mut self) {
        if let (Delay::Adaptive(adaptive), Some(start)) =
            (&self.hedge.inner.delay, self.primary_start)
        {
            let now = self.timer.now();
            adaptive.record_at(now, now.saturating_duration_since(start));
        }
    }
}

#[pinned_drop]
impl<F, Fut: TryFuture, T: Timer> PinnedDrop for HedgedRun<F, Fut, T> {
    fn drop(self: Pin<&mut Self>) {
        let this = self.project();
        let state = this.state;
        if state.phase == Phase::Running && this.primary.is_some() {
            if let (Delay::Adaptive(adaptive), Some(start)) =
                (&state.hedge.inner.delay, state.primary_start)
            {
                let now = state.timer.now();
                adaptive.record_at(now, now.saturating_duration_since(start));
            }
        }
    }
}

impl<F, Fut: TryFuture, T: Timer> fmt::Debug for HedgedRun<F, Fut, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = &self.state;
        f.debug_struct("HedgedRun")
            .field("phase", &state.phase)
            .field("started", &state.started)
            .field("in_flight", &state.in_flight)
            .field("failed", &state.errors.len())
            .field("delay", &state.delay)
            .field("budget_refused", &state.refused)
            .finish()
    }
}
