//! [`HedgeState`]: one hedged call's decisions as a sans-IO state machine.

use std::borrow::Borrow;
use std::fmt;
use std::time::{Duration, Instant};

use super::budget::HedgeBudget;
use super::policy::{Delay, Hedge};
use super::stats::Counters;
use crate::time::{deadline_after, process_nanos, Timer};

/// Where a call reads the time when it must: a closure that gives `now` (read only if needed),
/// or a timer ([`TimerTime`]), whose coarse clock then dates a primary that was ready at once.
pub(crate) trait CallTime: Sized {
    /// The current instant.
    fn now(self) -> Instant;
    /// The current instant on the process's nanosecond scale, as coarse as the source allows.
    fn coarse_nanos(self) -> u64 {
        process_nanos(self.now())
    }
}

impl<F: FnOnce() -> Instant> CallTime for F {
    #[inline]
    fn now(self) -> Instant {
        self()
    }
}

/// A timer as a [`CallTime`]: `now` exact, and the coarse time from
/// [`Timer::now_coarse_nanos`] (a few nanoseconds on `AsyncIoTimer`, no `Instant` built).
pub(crate) struct TimerTime<'a, T>(pub(crate) &'a T);

impl<T: Timer> CallTime for TimerTime<'_, T> {
    #[inline]
    fn now(self) -> Instant {
        self.0.now()
    }

    #[inline]
    fn coarse_nanos(self) -> u64 {
        self.0.now_coarse_nanos()
    }
}

/// How an attempt ended, for [`HedgeState::attempt_done_at`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// It succeeded: the call is won, and every other attempt should be cancelled.
    Succeeded,
    /// It failed (or was cancelled on its own): another attempt may take its place at once.
    Failed,
}

/// The decisions of one hedged call, without I/O: you start the attempts, wait and cancel; it
/// says when the next hedge is due and whether the budget allows it, and keeps the policy's
/// statistics and latency window.
///
/// [`Hedge::run_with`](super::Hedge::run_with) is this state machine plus a timer; the Python
/// binding drives the same machine with its event loop's clock. Every method that needs the time
/// takes `now`. Attempts are numbered from 1: attempt 1 is the primary, 2 and later are hedges.
///
/// ```
/// use std::time::{Duration, Instant};
/// use tailguard::hedge::{AttemptOutcome, Hedge, HedgeState};
///
/// let hedge = Hedge::builder()
///     .fixed_delay(Duration::from_millis(10))
///     .unbudgeted()
///     .build()?;
/// let mut state = HedgeState::new(&hedge);
/// let start = Instant::now();
/// // Start attempt 1, the primary; the first hedge is due 10 ms later.
/// let due = state.begin_at(start).unwrap();
/// assert_eq!(due, start + Duration::from_millis(10));
/// // ... the primary is still out when that time comes: send attempt 2.
/// assert_eq!(state.try_hedge_at(due), Some(2));
/// assert_eq!(state.next_hedge_at(), None); // two attempts is the default cap
/// // Attempt 2 answers 3 ms later: the call is won; cancel the primary.
/// let now = due + Duration::from_millis(3);
/// state.attempt_done_at(now, 2, AttemptOutcome::Succeeded);
/// assert_eq!(state.winner(), Some(2));
/// let stats = hedge.stats();
/// assert_eq!((stats.primaries, stats.hedges_sent, stats.hedges_won), (1, 1, 1));
/// # Ok::<(), tailguard::ConfigError>(())
/// ```
///
/// # The rules
///
/// - [`begin_at`](HedgeState::begin_at) starts the call: it counts the primary, credits the
///   budget with one primary's worth, and picks this call's delay
///   ([`Hedge::delay_at`](super::Hedge::delay_at)).
/// - The next hedge is due `delay` after the latest attempt started
///   ([`next_hedge_at`](HedgeState::next_hedge_at)); none is due on time while an adaptive policy
///   is short of samples, or after `max_attempts` attempts.
/// - The budget is **rationed by lateness**. A hedge at its first chance (when the delay has
///   passed) may not take the last half of the budget's savings
///   ([`HedgeBudget::try_withdraw_keeping_at`](super::HedgeBudget::try_withdraw_keeping_at)),
///   half of `max_burst`, or while the policy is young, half of what its primaries have earned;
///   a refused hedge gets another chance at twice the delay, then four times, up to
///   [`MAX_CHANCES`](HedgeState::MAX_CHANCES) chances, and those later chances may take the
///   last hedge. Calls that are merely a little slow finish before their second chance; the
///   ones stuck behind a stall come back and get the hedge. (A budget spent first-come,
///   first-served goes to the many calls just past the delay, and the stalled calls, the ones
///   hedging is for, find it empty.)
/// - A failed attempt frees its place: the caller may send the next one at once, without waiting
///   for the delay ([`try_hedge_at`](HedgeState::try_hedge_at) right after the failure).
/// - [`try_hedge_at`](HedgeState::try_hedge_at) withdraws one hedge from the budget, on the
///   budget's reserve as of `now`; a refusal is counted once per hedge due (its later chances
///   are not counted again). A refusal with nothing in flight (right after a failure) ends the
///   call: there is nothing to wait for.
/// - Only the primary's latency is recorded into an adaptive policy's window, one sample per
///   call, whether it succeeded, failed, or was cancelled (then the time it had been out, a lower
///   bound): see the [module documentation](super) for why this keeps the percentile honest.
/// - The first success wins; a hedge's win is counted. Once the call is over, every method does
///   nothing.
pub struct HedgeState<H: Borrow<Hedge>> {
    hedge: H,
    /// When the primary started, once a time is known; `None` until then.
    primary_start: Option<Instant>,
    /// When the latest attempt started: the next hedge is due `delay` after it.
    last_start: Option<Instant>,
    /// This call's hedge delay, picked with the first time given; `None` means no hedging on time
    /// (an adaptive policy still short of samples).
    delay: Option<Duration>,
    /// Attempts started so far, the primary included.
    started: u32,
    /// Attempts started and not yet done.
    in_flight: u32,
    /// The attempt that succeeded, once one has.
    winner: Option<u32>,
    phase: Phase,
    /// The primary has started and is not done: its latency is still to be recorded.
    primary_open: bool,
    /// The budget refused a hedge of this call at least once.
    refused: bool,
    /// Chances the due hedge has had and been refused (0: none yet); reset when one starts.
    chances: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    NotStarted,
    Running,
    Over,
}

impl<H: Borrow<Hedge>> HedgeState<H> {
    /// How many chances a due hedge gets when the budget refuses it: at the delay, then at 2,
    /// 4, 8 and 16 times the delay after the latest attempt started.
    pub const MAX_CHANCES: u32 = 5;

    /// A call about to start; does nothing yet. `hedge` is a `&Hedge`, a `Hedge` (a clone shares
    /// everything with the original) or anything else that borrows one.
    pub fn new(hedge: H) -> Self {
        HedgeState {
            hedge,
            primary_start: None,
            last_start: None,
            delay: None,
            started: 0,
            in_flight: 0,
            winner: None,
            phase: Phase::NotStarted,
            primary_open: false,
            refused: false,
            chances: 0,
        }
    }

    /// The policy this call follows.
    pub fn hedge(&self) -> &Hedge {
        self.hedge.borrow()
    }

    /// Starts the call at `now` with its primary, attempt 1: counts the primary, credits the
    /// budget, picks the delay. Returns when the first hedge is due, or `None` if none will be
    /// sent on time (see [`next_hedge_at`](HedgeState::next_hedge_at)). A second call changes
    /// nothing and returns [`next_hedge_at`](HedgeState::next_hedge_at).
    pub fn begin_at(&mut self, now: Instant) -> Option<Instant> {
        self.begin();
        self.arm_at(now);
        self.next_hedge_at()
    }

    /// Starts the call without the time: the async runner polls the primary before it reads a
    /// clock, and gives the time to [`arm_at`](Self::arm_at) only if the primary is pending.
    pub(crate) fn begin(&mut self) {
        if self.phase != Phase::NotStarted {
            return;
        }
        self.phase = Phase::Running;
        self.started = 1;
        self.in_flight = 1;
        self.primary_open = true;
        let inner = &self.hedge.borrow().inner;
        inner.counters.primary();
        if let Some(budget) = &inner.budget {
            budget.deposit();
        }
    }

    /// Gives the call its start time, once: the primary's start, and the delay as of `now`.
    pub(crate) fn arm_at(&mut self, now: Instant) {
        if self.phase == Phase::NotStarted || self.primary_start.is_some() {
            return;
        }
        self.primary_start = Some(now);
        self.last_start = Some(now);
        self.delay = self.hedge.borrow().delay_at(now);
    }

    /// Whether the call has been given a time (the primary's start).
    pub(crate) fn is_armed(&self) -> bool {
        self.primary_start.is_some()
    }

    /// Whether another attempt may start, the budget aside: the call is running, the due hedge
    /// has not used up its [`MAX_CHANCES`](HedgeState::MAX_CHANCES), and fewer than
    /// `max_attempts` have started.
    pub fn may_hedge(&self) -> bool {
        self.phase == Phase::Running
            && self.chances < Self::MAX_CHANCES
            && self.started < self.hedge.borrow().inner.max_attempts
    }

    /// When the next hedge is due: the delay after the latest attempt started, or after a
    /// refusal, 2, 4, 8 ... times the delay (its next chance). `None` if no hedge will start
    /// on time: the call is not running, [`may_hedge`](HedgeState::may_hedge) says no, or the
    /// policy has no delay yet (an adaptive one short of samples hedges only after a failure).
    pub fn next_hedge_at(&self) -> Option<Instant> {
        if !self.may_hedge() {
            return None;
        }
        let wait = self.delay?.saturating_mul(1 << self.chances);
        Some(deadline_after(self.last_start?, wait))
    }

    /// Asks to start another attempt at `now` (the delay passed, or an attempt just failed):
    /// returns its number if the attempt cap and the budget allow it, and counts it as a hedge
    /// sent. `None` if [`may_hedge`](HedgeState::may_hedge) says no; also `None` if the budget
    /// refuses: counted (once per hedge due), and the hedge's next chance is due at twice the
    /// wait ([`next_hedge_at`](HedgeState::next_hedge_at)).
    ///
    /// At its first chance a hedge may not take the last half of the budget's savings; at a
    /// later chance, or right after a failure, it may take the last one (see the rules above).
    pub fn try_hedge_at(&mut self, now: Instant) -> Option<u32> {
        if !self.may_hedge() {
            return None;
        }
        self.arm_at(now);
        let inner = &self.hedge.borrow().inner;
        if let Some(budget) = &inner.budget {
            // A failover (nothing in flight) or a later chance is as late as a call gets.
            let first_chance = self.chances == 0 && self.in_flight > 0;
            let granted = if first_chance {
                budget.try_withdraw_keeping_at(now, first_chance_keep(budget, &inner.counters))
            } else {
                budget.try_withdraw_at(now)
            };
            if !granted {
                if self.chances == 0 {
                    inner.counters.budget_refused();
                }
                self.refused = true;
                self.chances += 1;
                if self.in_flight == 0 {
                    // Nothing running to wait on: the call has failed.
                    self.chances = Self::MAX_CHANCES;
                }
                self.end_if_all_failed();
                return None;
            }
        }
        inner.counters.hedge_sent();
        self.chances = 0;
        self.started += 1;
        self.in_flight += 1;
        self.last_start = Some(now);
        Some(self.started)
    }

    /// Attempt `attempt` ended at `now`. The primary's latency is recorded (for an adaptive
    /// delay); a success ends the call (a hedge's win is counted, and a primary still out is
    /// recorded at the time it had been out, as it is about to be cancelled). After a failure,
    /// the caller may send the next attempt at once with [`try_hedge_at`](Self::try_hedge_at);
    /// once nothing is in flight and no attempt may follow, the call has failed
    /// ([`all_failed`](HedgeState::all_failed)).
    ///
    /// Does nothing if the call is not running or `attempt` was never started.
    pub fn attempt_done_at(&mut self, now: Instant, attempt: u32, outcome: AttemptOutcome) {
        self.attempt_done(|| now, attempt, outcome);
    }

    /// [`attempt_done_at`](Self::attempt_done_at), reading the time only if it is needed: to
    /// record a primary that was given a start time.
    pub(crate) fn attempt_done(
        &mut self,
        now: impl CallTime,
        attempt: u32,
        outcome: AttemptOutcome,
    ) {
        if self.phase != Phase::Running || attempt == 0 || attempt > self.started {
            return;
        }
        self.in_flight = self.in_flight.saturating_sub(1);
        // The primary's latency: exact if it is the one done, else (a hedge won) the time it
        // had been out, as it is about to be cancelled.
        if attempt == 1 || outcome == AttemptOutcome::Succeeded {
            self.record_primary(now);
        }
        match outcome {
            AttemptOutcome::Succeeded => {
                if attempt > 1 {
                    self.hedge.borrow().inner.counters.hedge_won();
                }
                self.winner = Some(attempt);
                self.phase = Phase::Over;
            }
            AttemptOutcome::Failed => self.end_if_all_failed(),
        }
    }

    /// The caller gives up on the call at `now` (cancelled, or dropped) with attempts still out:
    /// a primary still out is recorded at the time it had been out, a lower bound on its latency.
    /// The call is over. Does nothing once the call is over.
    pub fn cancel_at(&mut self, now: Instant) {
        self.cancel(|| now);
    }

    /// [`cancel_at`](Self::cancel_at), reading the time only if it is needed.
    pub(crate) fn cancel(&mut self, now: impl CallTime) {
        if self.phase != Phase::Running {
            return;
        }
        self.record_primary(now);
        self.phase = Phase::Over;
    }

    /// Attempts started so far, the primary included.
    pub fn attempts(&self) -> u32 {
        self.started
    }

    /// Attempts started and not yet done.
    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// This call's hedge delay, once the call has begun; `None` before, or while an adaptive
    /// policy is short of samples.
    pub fn delay(&self) -> Option<Duration> {
        self.delay
    }

    /// When the primary started, if the call has been given a time.
    pub fn started_at(&self) -> Option<Instant> {
        self.primary_start
    }

    /// The attempt that succeeded, once one has.
    pub fn winner(&self) -> Option<u32> {
        self.winner
    }

    /// Whether every attempt failed and none may follow: the call failed.
    pub fn all_failed(&self) -> bool {
        self.phase == Phase::Over && self.winner.is_none() && self.in_flight == 0
    }

    /// Whether the call is over: won, failed, or cancelled.
    pub fn is_over(&self) -> bool {
        self.phase == Phase::Over
    }

    /// Whether the budget refused a hedge of this call (at least once; a later chance may have
    /// sent it).
    pub fn budget_refused(&self) -> bool {
        self.refused
    }

    fn end_if_all_failed(&mut self) {
        if self.in_flight == 0 && !self.may_hedge() {
            self.phase = Phase::Over;
        }
    }

    /// Records the primary's latency, once: exact if it just finished, a lower bound if it is
    /// being cancelled. A primary done before the call was given a time (ready on its first poll)
    /// kept nobody waiting: it is recorded as zero, at the coarse time (without it, the sample
    /// would go into whichever slice was newest, and leave the window with it).
    fn record_primary(&mut self, now: impl CallTime) {
        if !std::mem::take(&mut self.primary_open) {
            return;
        }
        if let Delay::Adaptive(adaptive) = &self.hedge.borrow().inner.delay {
            match self.primary_start {
                None => adaptive.record_nanos_at(now.coarse_nanos(), Duration::ZERO),
                Some(start) => {
                    let now = now.now();
                    adaptive.record_at(now, now.saturating_duration_since(start));
                }
            }
        }
    }
}

/// What a hedge at its first chance must leave saved: half of what the budget can save
/// (`max_burst`), and while the policy is young, half of what its primaries have earned so far.
/// A fresh budget holds nothing: keeping half of `max_burst` from the start would leave first
/// chances only the floor until that much was saved, and the calls stalled in a policy's first
/// seconds would all wait for their second chance (live, 70 keys in the first 5 s against 15 for
/// a fixed delay crossed less often). Reads one counter, only when a hedge is due.
fn first_chance_keep(budget: &HedgeBudget, counters: &Counters) -> u64 {
    let earned = counters.primaries() as f64 * budget.ratio();
    (budget.max_burst() / 2).min((earned / 2.0) as u64)
}

impl<H: Borrow<Hedge>> fmt::Debug for HedgeState<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeState")
            .field("phase", &self.phase)
            .field("attempts", &self.started)
            .field("in_flight", &self.in_flight)
            .field("delay", &self.delay)
            .field("started_at", &self.primary_start)
            .field("winner", &self.winner)
            .field("budget_refused", &self.refused)
            .finish()
    }
}
