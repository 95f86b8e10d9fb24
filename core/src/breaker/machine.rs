//! The sans-IO breaker: every method takes the time as an argument.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::config::Config;
use super::metrics::Metrics;
use super::open_duration::OpenDurations;
use super::state::{Reason, State, Transition};
use super::ticket::{Outcome, Rejected, Ticket, UNTIMED, WINDOW};
use super::window::{thread_token, CachePadded, Counts, Record, Window};
use crate::metrics::{self, Counter, PolicyName, StateGauges, TransitionCounters};
use crate::time::deadline_after;

type Listener = Box<dyn Fn(&Transition) + Send + Sync>;

/// The state word: generation (56 bits) | state code (8 bits).
const CODE_MASK: u64 = 0xFF;
const CLOSED: u64 = State::Closed.code();
const OPEN: u64 = State::Open.code();
const HALF_OPEN: u64 = State::HalfOpen.code();
const DISABLED: u64 = State::Disabled.code();

/// The consecutive-failure word: epoch (8 bits) | count (56 bits).
const STREAK_MASK: u64 = (1 << 56) - 1;

/// A coarse clock is used for measurements only if it lags by at most this share of their
/// grain (1/25 = 4%: a 4 ms kernel tick against buckets and slow-call limits of 100 ms or more).
const COARSE_SHARE: u128 = 25;

/// Where the machine reads the time: [`now`](Clocks::now) for decisions (state transitions,
/// open periods, probes), [`measure`](Clocks::measure) for measurements only (the time bucket of
/// a record, a call's duration for slow-call timing).
pub(crate) trait Clocks {
    /// The exact time.
    fn now(&self) -> Instant;

    /// The time for a measurement, in nanoseconds since `origin` (the machine's), and the exact
    /// instant if it was read exactly (so that a decision that follows needs no second read).
    /// The default reads [`now`](Clocks::now). A coarse clock returns no instant and a time
    /// behind by a share of the measurement's grain the machine accepted
    /// ([`StateMachine::tolerates_coarse`]).
    #[inline(always)]
    fn measure(&self, origin: Instant) -> (u64, Option<Instant>) {
        let now = self.now();
        (nanos_since(origin, now), Some(now))
    }
}

/// `now` in nanoseconds since `origin` (0 before it, `u64::MAX` past 584 years).
#[inline(always)]
pub(crate) fn nanos_since(origin: Instant, now: Instant) -> u64 {
    let nanos = now.saturating_duration_since(origin).as_nanos();
    u64::try_from(nanos).unwrap_or(u64::MAX)
}

/// The sans-IO clock: one given instant, exact.
pub(crate) struct At(pub(crate) Instant);

impl Clocks for At {
    #[inline(always)]
    fn now(&self) -> Instant {
        self.0
    }
}

/// The circuit breaker as a sans-IO state machine: thread-safe, lock-free on the closed path,
/// with the time passed to every method.
///
/// [`CircuitBreaker`](super::CircuitBreaker) wraps one with a [`Timer`](crate::time::Timer)
/// and a permit guard; use the bare machine to drive a breaker from another clock (a
/// simulation, another language's event loop). Build it with
/// [`build_state_machine_at`](super::CircuitBreakerBuilder::build_state_machine_at).
///
/// The instants you pass should not go backwards; if they do, nothing panics, the breaker just
/// treats time as standing still.
///
/// ```
/// use std::time::{Duration, Instant};
/// use tailguard::breaker::{CircuitBreakerBuilder, Outcome, State};
///
/// let start = Instant::now();
/// let machine = CircuitBreakerBuilder::new()
///     .count_window(4)
///     .minimum_calls(4)
///     .open_duration(Duration::from_secs(30))
///     .build_state_machine_at(start)?;
///
/// for _ in 0..4 {
///     let ticket = machine.try_acquire_at(start).unwrap();
///     machine.record_at(ticket, Outcome::Failure, start);
/// }
/// assert_eq!(machine.state(), State::Open);
/// let rejected = machine.try_acquire_at(start + Duration::from_secs(10)).unwrap_err();
/// assert_eq!(rejected.retry_after(), Some(Duration::from_secs(20)));
///
/// // After the open duration, one probe at a time (here: the default 5) tests the dependency.
/// let later = start + Duration::from_secs(30);
/// let probe = machine.try_acquire_at(later).unwrap();
/// assert!(probe.is_probe());
/// assert_eq!(machine.state(), State::HalfOpen);
/// machine.release(probe); // dropped: counted as neither, its slot is free again
/// # Ok::<(), tailguard::ConfigError>(())
/// ```
pub struct StateMachine {
    state: AtomicU64,
    /// Nanoseconds since `origin` at which the current open period ends.
    open_until: AtomicU64,
    /// Failures in a row in the current closed period.
    streak: AtomicU64,
    window: Window,
    rejections: Box<[CachePadded<AtomicU64>]>,
    control: Mutex<Control>,
    config: Config,
    /// The slow-call duration in nanoseconds, or `UNTIMED` if slow calls are not measured.
    slow_nanos: u64,
    origin: Instant,
    listener: Option<Listener>,
    /// The `name` label of the breaker's metrics.
    name: PolicyName,
    /// `tailguard_breaker_rejections_total` (see [`crate::metrics`]).
    rejected: Counter,
    /// `tailguard_breaker_state`.
    state_gauges: StateGauges,
    /// `tailguard_breaker_transitions_total`.
    transitions: TransitionCounters,
}

/// Everything only touched on transitions and in half-open, behind the lock.
struct Control {
    since: Instant,
    open_until: Option<Instant>,
    window_epoch: u8,
    probes: Box<[Option<Probe>]>,
    probes_in_flight: u32,
    probe_successes: u32,
    probe_failures: u32,
    next_probe_id: u32,
    open_durations: OpenDurations,
}

#[derive(Clone, Copy, Debug)]
struct Probe {
    id: u32,
    started: Instant,
}

/// Transitions made under the lock, reported after it is released.
#[derive(Default)]
struct Notes {
    transitions: [Option<Transition>; 4],
}

impl Notes {
    fn push(&mut self, transition: Transition) {
        if let Some(free) = self.transitions.iter_mut().find(|t| t.is_none()) {
            *free = Some(transition);
        }
    }
}

impl StateMachine {
    pub(crate) fn new(
        config: Config,
        open_durations: OpenDurations,
        listener: Option<Listener>,
        name: PolicyName,
        now: Instant,
    ) -> Self {
        let probes = (0..config.half_open_calls).map(|_| None).collect();
        StateMachine {
            state: AtomicU64::new(CLOSED),
            open_until: AtomicU64::new(0),
            streak: AtomicU64::new(0),
            window: config.make_window(),
            rejections: (0..config.stripes.max(1))
                .map(|_| CachePadded(AtomicU64::new(0)))
                .collect(),
            control: Mutex::new(Control {
                since: now,
                open_until: None,
                window_epoch: 0,
                probes,
                probes_in_flight: 0,
                probe_successes: 0,
                probe_failures: 0,
                next_probe_id: 0,
                open_durations,
            }),
            slow_nanos: config.slow_call.map_or(UNTIMED, |(limit, _)| {
                u64::try_from(limit.as_nanos()).unwrap_or(UNTIMED - 1)
            }),
            config,
            origin: now,
            listener,
            rejected: Counter::breaker(metrics::BREAKER_REJECTIONS, &name),
            state_gauges: StateGauges::new(&name),
            transitions: TransitionCounters::new(&name),
            name,
        }
    }

    /// Asks to make a call at `now`.
    ///
    /// Closed or disabled: admitted, without locking. Open: rejected until the open duration
    /// has passed, then the breaker turns half-open. Half-open: admitted as a probe while the
    /// round has room. Forced open: rejected.
    pub fn try_acquire_at(&self, now: Instant) -> Result<Ticket, Rejected> {
        self.acquire_with(&At(now))
    }

    /// Whether a call asked for at `now` would be admitted, without taking a ticket or a probe
    /// slot: `Ok` where [`try_acquire_at`](Self::try_acquire_at) would admit, the same
    /// [`Rejected`] (counted as a rejection) where it would refuse. The bookkeeping an acquire
    /// does on the way is done too: an open breaker past its open duration turns half-open, and
    /// probes out longer than `half_open_timeout` count as failed. As nothing is reserved, an
    /// acquire that follows may still be refused if other callers took the last probe slots in
    /// between. This is what a readiness check (tower's `poll_ready`) needs.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use tailguard::breaker::{CircuitBreakerBuilder, Outcome, State};
    ///
    /// let start = Instant::now();
    /// let machine = CircuitBreakerBuilder::new()
    ///     .count_window(2)
    ///     .minimum_calls(2)
    ///     .open_duration(Duration::from_secs(30))
    ///     .half_open_calls(1)
    ///     .build_state_machine_at(start)?;
    /// assert!(machine.check_at(start).is_ok());
    /// for _ in 0..2 {
    ///     let ticket = machine.try_acquire_at(start).unwrap();
    ///     machine.record_at(ticket, Outcome::Failure, start);
    /// }
    /// let rejected = machine.check_at(start).unwrap_err();
    /// assert_eq!(rejected.retry_after(), Some(Duration::from_secs(30)));
    ///
    /// // Past the open duration: a probe would be admitted, and checking takes no slot.
    /// let later = start + Duration::from_secs(30);
    /// assert!(machine.check_at(later).is_ok());
    /// assert!(machine.check_at(later).is_ok());
    /// assert_eq!(machine.state(), State::HalfOpen);
    /// let probe = machine.try_acquire_at(later).unwrap();
    /// assert!(machine.check_at(later).is_err()); // the one probe is out
    /// machine.release(probe);
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    pub fn check_at(&self, now: Instant) -> Result<(), Rejected> {
        self.check_with(&At(now))
    }

    /// Reports what the call of `ticket` did, at `now`. A ticket issued before the breaker last
    /// changed state is ignored: its call was made under other rules.
    pub fn record_at(&self, ticket: Ticket, outcome: Outcome, now: Instant) {
        self.record_with(ticket, outcome, &At(now));
    }

    /// Hands back a ticket whose call was abandoned: counted as neither success nor failure;
    /// a probe's slot is freed for another caller.
    #[inline]
    pub fn release(&self, ticket: Ticket) {
        if ticket.slot != WINDOW {
            self.release_probe(ticket.generation, ticket.slot, ticket.id);
        }
    }

    /// The breaker's name, the `name` label of its [metrics](crate::metrics).
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// The current state. Open turns half-open on the first acquire after the open duration,
    /// not by itself.
    pub fn state(&self) -> State {
        State::from_code(self.state.load(Ordering::Acquire) & CODE_MASK)
    }

    /// A snapshot of the counters at `now`.
    pub fn metrics_at(&self, now: Instant) -> Metrics {
        let (since, open_until, epoch, probes_in_flight) = {
            let control = self.lock();
            (
                control.since,
                control.open_until,
                control.window_epoch,
                control.probes_in_flight,
            )
        };
        let state = self.state();
        let Counts {
            calls,
            failures,
            slow,
        } = self.window.counts(epoch, self.nanos(now));
        let rate = |count: u64| (calls > 0).then(|| count as f64 / calls as f64);
        let streak = self.streak.load(Ordering::Acquire);
        Metrics {
            state,
            since,
            open_until: if state == State::Open {
                open_until
            } else {
                None
            },
            calls,
            failures,
            slow_calls: slow,
            failure_rate: rate(failures),
            slow_call_rate: rate(slow),
            consecutive_failures: if (streak >> 56) as u8 == epoch {
                streak & STREAK_MASK
            } else {
                0
            },
            rejections: self
                .rejections
                .iter()
                .map(|count| count.0.load(Ordering::Relaxed))
                .sum(),
            probes_in_flight,
        }
    }

    /// Opens the breaker until [`reset_at`](Self::reset_at) or [`disable_at`](Self::disable_at).
    pub fn force_open_at(&self, now: Instant) {
        self.manual(State::ForcedOpen, now);
    }

    /// Admits every call and keeps measuring, but never trips, until
    /// [`reset_at`](Self::reset_at) or [`force_open_at`](Self::force_open_at).
    pub fn disable_at(&self, now: Instant) {
        self.manual(State::Disabled, now);
    }

    /// Closes the breaker with an empty window and the open duration back at its start.
    /// Permits issued before the reset no longer count.
    pub fn reset_at(&self, now: Instant) {
        self.manual(State::Closed, now);
    }

    fn manual(&self, to: State, now: Instant) {
        let mut notes = Notes::default();
        {
            let mut control = self.lock();
            let word = self.state.load(Ordering::Acquire);
            if word & CODE_MASK != to.code() || to == State::Closed {
                self.enter(&mut control, word, to, Reason::Manual, now, &mut notes);
            }
        }
        self.notify(notes);
    }

    // -----------------------------------------------------------------------------------------
    // Acquire

    /// `try_acquire_at`, reading the clock only when it must: a closed breaker that does not
    /// time its calls never does.
    #[inline(always)]
    pub(crate) fn acquire_with(&self, clocks: &impl Clocks) -> Result<Ticket, Rejected> {
        let word = self.state.load(Ordering::Acquire);
        let code = word & CODE_MASK;
        if code == CLOSED || code == DISABLED {
            Ok(self.window_ticket(word, clocks))
        } else {
            self.acquire_slow(word, clocks)
        }
    }

    /// `check_at`, reading the clock only when it must: a closed breaker never does.
    #[inline(always)]
    pub(crate) fn check_with(&self, clocks: &impl Clocks) -> Result<(), Rejected> {
        let code = self.state.load(Ordering::Acquire) & CODE_MASK;
        if code == CLOSED || code == DISABLED {
            Ok(())
        } else {
            self.check_slow(clocks.now())
        }
    }

    #[cold]
    #[inline(never)]
    fn check_slow(&self, now: Instant) -> Result<(), Rejected> {
        let word = self.state.load(Ordering::Acquire);
        if word & CODE_MASK == OPEN {
            let until = self.open_until.load(Ordering::Acquire);
            let nanos = self.nanos(now);
            if nanos < until {
                return Err(self.reject(State::Open, Some(Duration::from_nanos(until - nanos))));
            }
        }
        self.locked(now, false).map(drop)
    }

    /// Whether a clock lagging by up to `resolution` may serve this breaker's measurements
    /// (see [`Clocks::coarse`]): its lag is at most 1/25 of the slow-call limit and of a time
    /// bucket. A zero resolution (an exact clock) always may.
    pub(crate) fn tolerates_coarse(&self, resolution: Duration) -> bool {
        let needed = resolution.as_nanos().saturating_mul(COARSE_SHARE);
        let slow_ok = self.slow_nanos == UNTIMED || needed <= u128::from(self.slow_nanos);
        let bucket_ok = self
            .window
            .bucket_nanos()
            .is_none_or(|bucket| needed <= u128::from(bucket));
        slow_ok && bucket_ok
    }

    #[inline(always)]
    fn window_ticket(&self, word: u64, clocks: &impl Clocks) -> Ticket {
        Ticket {
            generation: word >> 8,
            started: if self.slow_nanos == UNTIMED {
                UNTIMED
            } else {
                clocks.measure(self.origin).0
            },
            slot: WINDOW,
            id: 0,
        }
    }

    #[cold]
    #[inline(never)]
    fn acquire_slow(&self, word: u64, clocks: &impl Clocks) -> Result<Ticket, Rejected> {
        match word & CODE_MASK {
            CLOSED | DISABLED => Ok(self.window_ticket(word, clocks)),
            OPEN => {
                let now = clocks.now();
                let until = self.open_until.load(Ordering::Acquire);
                let nanos = self.nanos(now);
                if nanos < until {
                    Err(self.reject(State::Open, Some(Duration::from_nanos(until - nanos))))
                } else {
                    self.acquire_locked(now)
                }
            }
            HALF_OPEN => self.acquire_locked(clocks.now()),
            _ => Err(self.reject(State::ForcedOpen, None)),
        }
    }

    #[cold]
    #[inline(never)]
    fn acquire_locked(&self, now: Instant) -> Result<Ticket, Rejected> {
        self.locked(now, true)
            .map(|ticket| ticket.expect("a reserving acquire returns a ticket"))
    }

    /// The acquire under the lock: with `reserve`, a ticket (a probe slot in half-open);
    /// without, only whether one would be given (`Ok(None)`).
    fn locked(&self, now: Instant, reserve: bool) -> Result<Option<Ticket>, Rejected> {
        let mut notes = Notes::default();
        let result = {
            let mut control = self.lock();
            let mut word = self.state.load(Ordering::Acquire);
            loop {
                match word & CODE_MASK {
                    CLOSED | DISABLED => {
                        break Ok(reserve.then(|| self.window_ticket(word, &At(now))))
                    }
                    OPEN => {
                        let until = control.open_until.unwrap_or(now);
                        if now < until {
                            break Err(self.reject(State::Open, Some(until - now)));
                        }
                        word = self.enter(
                            &mut control,
                            word,
                            State::HalfOpen,
                            Reason::OpenDurationElapsed,
                            now,
                            &mut notes,
                        );
                    }
                    HALF_OPEN => {
                        if let Some(reopened) =
                            self.expire_probes(&mut control, word, now, &mut notes)
                        {
                            word = reopened;
                            continue;
                        }
                        if reserve {
                            break self.admit_probe(&mut control, word, now).map(Some);
                        }
                        break self.probe_room(&control, now).map(|_| None);
                    }
                    _ => break Err(self.reject(State::ForcedOpen, None)),
                }
            }
        };
        self.notify(notes);
        result
    }

    fn reject(&self, state: State, retry_after: Option<Duration>) -> Rejected {
        let stripe = &self.rejections[thread_token() & (self.rejections.len() - 1)];
        stripe.0.fetch_add(1, Ordering::Relaxed);
        self.rejected.increment();
        Rejected { state, retry_after }
    }

    // -----------------------------------------------------------------------------------------
    // Record

    /// `record_at`, reading the clock only when it must.
    #[inline(always)]
    pub(crate) fn record_with(&self, ticket: Ticket, outcome: Outcome, clocks: &impl Clocks) {
        if ticket.slot == WINDOW {
            self.record_window(ticket, outcome, clocks);
        } else {
            self.record_probe(ticket, outcome, clocks.now());
        }
    }

    #[inline(always)]
    fn record_window(&self, ticket: Ticket, outcome: Outcome, clocks: &impl Clocks) {
        let word = self.state.load(Ordering::Acquire);
        if outcome == Outcome::Ignored || word >> 8 != ticket.generation {
            return;
        }
        let (nanos, now) = if ticket.started != UNTIMED || self.window.needs_time() {
            clocks.measure(self.origin)
        } else {
            (0, None)
        };
        let slow =
            ticket.started != UNTIMED && nanos.saturating_sub(ticket.started) >= self.slow_nanos;
        let failed = outcome == Outcome::Failure;
        let epoch = ticket.generation as u8;
        if !self.window.record(epoch, Record { failed, slow }, nanos) || word & CODE_MASK != CLOSED
        {
            return;
        }
        self.after_closed_record(word, failed, slow, now, clocks);
    }

    /// The consecutive-failure streak and, after a bad outcome, the verdict.
    #[inline(always)]
    fn after_closed_record(
        &self,
        word: u64,
        failed: bool,
        slow: bool,
        now: Option<Instant>,
        clocks: &impl Clocks,
    ) {
        let epoch = (word >> 8) as u8;
        let mut streak_tripped = false;
        if let Some(limit) = self.config.consecutive_failures {
            if failed {
                streak_tripped = self.extend_streak(epoch) >= limit;
            } else {
                self.end_streak(epoch);
            }
        }
        if failed || slow {
            // A coarse measurement gives no instant: it is not one to decide at.
            let now = now.unwrap_or_else(|| clocks.now());
            self.judge_window(word, streak_tripped, now);
        }
    }

    /// After a failure or a slow call: opens if the window (or the streak) says so.
    #[cold]
    #[inline(never)]
    fn judge_window(&self, word: u64, streak_tripped: bool, now: Instant) {
        let reason = if streak_tripped {
            Some(Reason::ConsecutiveFailures)
        } else {
            let counts = self.window.counts((word >> 8) as u8, self.nanos(now));
            self.trip_reason(counts)
        };
        let Some(reason) = reason else {
            return;
        };
        let mut notes = Notes::default();
        {
            let mut control = self.lock();
            if self.state.load(Ordering::Acquire) == word {
                self.enter(&mut control, word, State::Open, reason, now, &mut notes);
            }
        }
        self.notify(notes);
    }

    fn trip_reason(&self, counts: Counts) -> Option<Reason> {
        if counts.calls == 0 || counts.calls < self.config.minimum_calls {
            return None;
        }
        let calls = counts.calls as f64;
        if counts.failures as f64 >= self.config.failure_rate * calls {
            return Some(Reason::FailureRate);
        }
        match self.config.slow_call {
            Some((_, rate)) if counts.slow as f64 >= rate * calls => Some(Reason::SlowCallRate),
            _ => None,
        }
    }

    // -----------------------------------------------------------------------------------------
    // Transitions

    /// Moves from the state in `word` to `to`, under the lock. Allocates nothing. Returns the
    /// new state word.
    fn enter(
        &self,
        control: &mut Control,
        word: u64,
        to: State,
        reason: Reason,
        now: Instant,
        notes: &mut Notes,
    ) -> u64 {
        let generation = (word >> 8) + 1;
        let from = State::from_code(word & CODE_MASK);
        control.open_until = None;
        if from == State::HalfOpen {
            control.probes.iter_mut().for_each(|probe| *probe = None);
            control.probes_in_flight = 0;
        }
        match to {
            State::Open => {
                let until = deadline_after(now, control.open_durations.next_duration());
                control.open_until = Some(until);
                self.open_until.store(self.nanos(until), Ordering::Release);
            }
            State::HalfOpen => {
                control.probe_successes = 0;
                control.probe_failures = 0;
            }
            State::Closed | State::Disabled => {
                let epoch = generation as u8;
                self.window.reset(epoch);
                self.streak.store(u64::from(epoch) << 56, Ordering::Release);
                control.window_epoch = epoch;
                if to == State::Closed {
                    control.open_durations.restart();
                }
            }
            State::ForcedOpen => {}
        }
        control.since = now;
        let new = generation << 8 | to.code();
        self.state.store(new, Ordering::Release);
        if from != to {
            notes.push(Transition {
                from,
                to,
                reason,
                at: now,
                generation,
            });
        }
        new
    }

    fn notify(&self, notes: Notes) {
        for transition in notes.transitions.iter().flatten() {
            self.transitions.count(transition.from, transition.to);
            self.state_gauges.moved(transition.from, transition.to);
            if let Some(listener) = &self.listener {
                listener(transition);
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Control> {
        // Only a user's open-duration iterator can panic under the lock, between consistent
        // states; keep going after one.
        self.control
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    #[inline(always)]
    fn nanos(&self, now: Instant) -> u64 {
        nanos_since(self.origin, now)
    }

    /// The instant the machine measures from: its nanoseconds count from here.
    pub(crate) fn origin(&self) -> Instant {
        self.origin
    }
}

impl fmt::Debug for StateMachine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateMachine")
            .field("state", &self.state())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

mod probes;
mod remote;
mod streak;
#[cfg(test)]
mod tests;
