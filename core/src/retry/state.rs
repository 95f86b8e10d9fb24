//! [`RetryState`]: the retry loop's decisions as a sans-IO state machine.

use std::borrow::Borrow;
use std::fmt;
use std::time::{Duration, Instant};

use super::budget::Grant;
use super::error::GaveUp;
use super::policy::{Decision, RetryConfig};
use crate::backoff::Cursor;
use crate::time::deadline_after;

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Wait this long, then make the next attempt.
    Retry(Duration),
    /// Stop: give up for this reason.
    GiveUp(GaveUp),
}

/// The decisions of one call's retry loop, without I/O: you make the attempts and the sleeps,
/// it tells you whether and when to retry.
///
/// [`Retry::run`](super::Retry::run) is this state machine plus a timer; the Python binding drives
/// the same machine with its own clock. Every method that needs the time takes `now`.
///
/// ```
/// use std::time::{Duration, Instant};
/// use tailguard::backoff::{Backoff, Jitter};
/// use tailguard::retry::{Decision, GaveUp, Next, Retry, RetryState};
/// use tailguard::time::ManualTimer;
///
/// let policy = Retry::with_timer(ManualTimer::new())
///     .max_attempts(3)
///     .backoff(Backoff::exponential(Duration::from_millis(100)).jitter(Jitter::None).build()?)
///     .build()?;
/// let mut state = RetryState::new(policy.config());
/// let mut now = Instant::now();
/// let mut delays = Vec::new();
/// loop {
///     let attempt = state.begin_attempt_at(now).unwrap();
///     // ... make attempt number `attempt`; suppose it fails with a transient error:
///     match state.on_failure_at(now, Decision::Retry) {
///         Next::Retry(delay) => {
///             delays.push(delay);
///             now += delay; // sleep
///         }
///         Next::GiveUp(reason) => {
///             assert_eq!((reason, attempt), (GaveUp::Exhausted, 3));
///             break;
///         }
///     }
/// }
/// assert_eq!(delays, [Duration::from_millis(100), Duration::from_millis(200)]);
/// # Ok::<(), tailguard::ConfigError>(())
/// ```
///
/// # The rules
///
/// - Give up with [`NotRetryable`](GaveUp::NotRetryable) on [`Decision::Stop`].
/// - Give up with [`Exhausted`](GaveUp::Exhausted) after `max_attempts` attempts or when the
///   backoff has no delay left.
/// - The delay is the backoff's next one, or the server's [`Decision::RetryAfter`] capped by
///   `max_retry_after` (the backoff still counts the retry).
/// - Give up with [`DeadlineExceeded`](GaveUp::DeadlineExceeded) if the next attempt would
///   start at or after the deadline: the loop never sleeps past it. An attempt's own time limit
///   is capped by the deadline ([`attempt_deadline_at`](RetryState::attempt_deadline_at)), and
///   [`begin_attempt_at`](RetryState::begin_attempt_at) refuses to start one at or after it.
/// - Then, with a budget, give up with [`BudgetExhausted`](GaveUp::BudgetExhausted) if it refuses
///   the retry. A granted retry that is never made (the state is dropped first, or the deadline
///   passed during the sleep) is refunded.
///
/// The call starts, for the deadline and the budget's deposit, at the first instant the state is
/// given: [`begin_attempt_at`](RetryState::begin_attempt_at), [`start_at`](RetryState::start_at),
/// or the first failure or success. An async loop can thus skip reading the clock until an
/// attempt must wait: [`Retry::run`](super::Retry::run) reads it only when an attempt waits, a
/// retry has a delay, a deadline or a budget is set, or it gives up after the call started.
pub struct RetryState<R: Borrow<RetryConfig>> {
    config: R,
    progress: Progress,
}

/// Everything a call's loop tracks. Kept small, as it lives in every retry future, and built
/// from one constant so that making a future is a block copy.
#[derive(Debug)]
struct Progress {
    started: Option<Instant>,
    /// The backoff's random state, valid once `forked` (at the first failure).
    cursor: Cursor,
    /// When a retry granted by the budget but not yet made was withdrawn, in nanoseconds after
    /// `started`; valid while `withdrawn`.
    withdrawn_after_start: u64,
    attempts: u32,
    forked: bool,
    withdrawn: bool,
    /// Where the retry held (`withdrawn`) came from, to refund it there.
    from_floor: bool,
}

impl Progress {
    const INITIAL: Progress = Progress {
        started: None,
        cursor: Cursor::PLACEHOLDER,
        withdrawn_after_start: 0,
        attempts: 0,
        forked: false,
        withdrawn: false,
        from_floor: false,
    };
}

impl<R: Borrow<RetryConfig>> RetryState<R> {
    /// A call about to make its first attempt; reads no clock. `config` is a
    /// `&RetryConfig`, an `Arc<RetryConfig>` or anything else that borrows one.
    pub fn new(config: R) -> Self {
        RetryState {
            config,
            progress: Progress::INITIAL,
        }
    }

    /// The settings this state follows.
    pub fn config(&self) -> &RetryConfig {
        self.config.borrow()
    }

    /// What the state was made from.
    pub fn get_ref(&self) -> &R {
        &self.config
    }

    /// Marks the start of the call at `now` if not yet started: the deadline is set and the
    /// budget receives this call's deposit. Later calls do nothing.
    pub fn start_at(&mut self, now: Instant) {
        if self.progress.started.is_some() {
            return;
        }
        self.progress.started = Some(now);
        if let Some(budget) = &self.config.borrow().budget {
            budget.deposit_at(now);
        }
    }

    /// Starts the next attempt at `now` and returns its number (from 1), or gives up with
    /// [`GaveUp::DeadlineExceeded`] if `now` is at or past the deadline.
    ///
    /// # Errors
    ///
    /// [`GaveUp::DeadlineExceeded`] as above; a retry granted by the budget is then refunded.
    pub fn begin_attempt_at(&mut self, now: Instant) -> Result<u32, GaveUp> {
        self.start_at(now);
        if self.deadline().is_some_and(|deadline| now >= deadline) {
            self.refund();
            return Err(GaveUp::DeadlineExceeded);
        }
        self.progress.withdrawn = false;
        Ok(self.next_attempt_number())
    }

    /// Starts the next attempt without the time; the call starts at the first instant given
    /// later. Only valid before any attempt (no deadline can have passed yet), or when
    /// [`needs_clock_on_failure`](RetryState::needs_clock_on_failure) is false (no deadline to
    /// check, no budget retry held). Async loops outside this crate (the tower adapter) use it
    /// to keep a first-try success free of clock reads.
    ///
    /// ```
    /// use tailguard::retry::{Retry, RetryState};
    /// use tailguard::time::ManualTimer;
    ///
    /// let policy = Retry::with_timer(ManualTimer::new()).build()?;
    /// let mut state = RetryState::new(policy.config());
    /// assert_eq!(state.begin_attempt_untimed(), 1);
    /// assert_eq!(state.started_at(), None); // no clock was read
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    pub fn begin_attempt_untimed(&mut self) -> u32 {
        debug_assert!(self.progress.attempts == 0 || !self.needs_clock_on_failure());
        self.next_attempt_number()
    }

    fn next_attempt_number(&mut self) -> u32 {
        self.progress.attempts = self.progress.attempts.saturating_add(1);
        if self.progress.attempts > 1 {
            // Counted when the retry starts, not when it is scheduled: a retry that a caller
            // (the pipeline's deadline check, a dropped future) never makes is not one.
            self.config.borrow().retries.increment();
        }
        self.progress.attempts
    }

    /// The instant the current attempt must finish by, starting it at `now`: `now` plus the
    /// per-attempt timeout, capped by the call's deadline; `None` if neither is set.
    pub fn attempt_deadline_at(&mut self, now: Instant) -> Option<Instant> {
        self.start_at(now);
        let own = self
            .config
            .borrow()
            .attempt_timeout
            .map(|limit| deadline_after(now, limit));
        match (own, self.deadline()) {
            (Some(own), Some(deadline)) => Some(own.min(deadline)),
            (own, deadline) => own.or(deadline),
        }
    }

    /// Whether [`on_success_at`](RetryState::on_success_at) needs the time: only when the call
    /// has not started yet and a budget awaits its deposit.
    pub fn needs_clock_on_success(&self) -> bool {
        self.progress.started.is_none() && self.config.borrow().budget.is_some()
    }

    /// The current attempt succeeded at `now`: the call is over (deposits if it had not yet).
    pub fn on_success_at(&mut self, now: Instant) {
        self.start_at(now);
    }

    /// Whether a failure needs the time: only with a deadline (`max_elapsed`) or a budget. Without
    /// them, [`on_failure_untimed`](RetryState::on_failure_untimed) decides the same as
    /// [`on_failure_at`](RetryState::on_failure_at), and a zero delay needs no clock at all.
    pub fn needs_clock_on_failure(&self) -> bool {
        let config = self.config.borrow();
        config.max_elapsed.is_some() || config.budget.is_some()
    }

    /// The current attempt failed at `now`; `decision` is the classifier's verdict. Says whether
    /// to retry and after which delay; see the rules on [`RetryState`].
    pub fn on_failure_at(&mut self, now: Instant, decision: Decision) -> Next {
        self.start_at(now);
        let delay = match self.retry_delay(decision) {
            Ok(delay) => delay,
            Err(reason) => return Next::GiveUp(reason),
        };
        if let Some(deadline) = self.deadline() {
            if deadline_after(now, delay) >= deadline {
                return Next::GiveUp(GaveUp::DeadlineExceeded);
            }
        }
        if let Some(budget) = &self.config.borrow().budget {
            let Some(grant) = budget.try_grant_at(now) else {
                self.config.borrow().budget_refusals.increment();
                return Next::GiveUp(GaveUp::BudgetExhausted);
            };
            self.progress.from_floor = grant == Grant::Floor;
            let since_start = now.saturating_duration_since(self.progress.started.unwrap_or(now));
            self.progress.withdrawn_after_start =
                u64::try_from(since_start.as_nanos()).unwrap_or(u64::MAX);
            self.progress.withdrawn = true;
        }
        Next::Retry(delay)
    }

    /// [`on_failure_at`](RetryState::on_failure_at) without the time, for a state with neither a
    /// deadline nor a budget (see [`needs_clock_on_failure`](RetryState::needs_clock_on_failure)):
    /// the same decision, and the call does not start. The async loop uses it so that failures
    /// followed by zero delays read no clock.
    ///
    /// ```
    /// use tailguard::retry::{Decision, GaveUp, Next, Retry, RetryState};
    /// use tailguard::time::ManualTimer;
    ///
    /// let policy = Retry::with_timer(ManualTimer::new()).max_attempts(1).build()?;
    /// let mut state = RetryState::new(policy.config());
    /// assert!(!state.needs_clock_on_failure());
    /// state.begin_attempt_untimed();
    /// assert_eq!(state.on_failure_untimed(Decision::Retry), Next::GiveUp(GaveUp::Exhausted));
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    pub fn on_failure_untimed(&mut self, decision: Decision) -> Next {
        debug_assert!(!self.needs_clock_on_failure());
        match self.retry_delay(decision) {
            Ok(delay) => Next::Retry(delay),
            Err(reason) => Next::GiveUp(reason),
        }
    }

    /// The rules that need no time: the classifier's verdict, the attempts left, the backoff's
    /// next delay (moving it on) or the server's.
    fn retry_delay(&mut self, decision: Decision) -> Result<Duration, GaveUp> {
        let config = self.config.borrow();
        let requested = match decision {
            Decision::Stop => return Err(GaveUp::NotRetryable),
            Decision::Retry => None,
            Decision::RetryAfter(delay) => Some(delay.min(config.max_retry_after)),
        };
        if self.progress.attempts >= config.max_attempts {
            return Err(GaveUp::Exhausted);
        }
        if !self.progress.forked {
            self.progress.cursor = config.fork_backoff();
            self.progress.forked = true;
        }
        let retry = self.progress.attempts.saturating_sub(1);
        let Some(backoff_delay) = config.backoff.next_at(retry, &mut self.progress.cursor) else {
            return Err(GaveUp::Exhausted);
        };
        Ok(requested.unwrap_or(backoff_delay))
    }

    /// Attempts started so far.
    pub fn attempts(&self) -> u32 {
        self.progress.attempts
    }

    /// When the call started, if it has.
    pub fn started_at(&self) -> Option<Instant> {
        self.progress.started
    }

    /// The call's deadline, once started, if `max_elapsed` is set.
    pub fn deadline(&self) -> Option<Instant> {
        let max_elapsed = self.config.borrow().max_elapsed?;
        Some(deadline_after(self.progress.started?, max_elapsed))
    }

    /// Time since the call started (zero if it has not).
    pub fn elapsed_at(&self, now: Instant) -> Duration {
        self.progress
            .started
            .map_or(Duration::ZERO, |start| now.saturating_duration_since(start))
    }

    fn refund(&mut self) {
        if !std::mem::take(&mut self.progress.withdrawn) {
            return;
        }
        if let (Some(started), Some(budget)) = (self.progress.started, &self.config.borrow().budget)
        {
            let at = deadline_after(
                started,
                Duration::from_nanos(self.progress.withdrawn_after_start),
            );
            let grant = if self.progress.from_floor {
                Grant::Floor
            } else {
                Grant::Window
            };
            budget.refund_grant(grant, at);
        }
    }
}

impl<R: Borrow<RetryConfig>> Drop for RetryState<R> {
    /// Refunds a retry granted by the budget but never made.
    fn drop(&mut self) {
        self.refund();
    }
}

impl<R: Borrow<RetryConfig>> fmt::Debug for RetryState<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryState")
            .field("attempts", &self.progress.attempts)
            .field("started", &self.progress.started)
            .field("deadline", &self.deadline())
            .field("holds_budget_retry", &self.progress.withdrawn)
            .finish()
    }
}
