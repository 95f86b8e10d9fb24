//! The sans-IO breaker: every method takes the time as an argument.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::config::Config;
use super::metrics::Metrics;
use super::open_duration::OpenDurations;
use super::state::{Reason, State, Transition};
use super::window::{thread_token, CachePadded, Counts, Record, Window};
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

/// What a call did, as reported with [`StateMachine::record_at`] or
/// [`Permit::record`](super::Permit::record).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The call worked (it may still count as slow).
    Success,
    /// The call failed in a way that says the dependency is unhealthy.
    Failure,
    /// The call says nothing about the dependency's health (for example, the caller's own
    /// invalid input): released, counted as neither.
    Ignored,
}

/// Permission for one call, from [`StateMachine::try_acquire_at`]: hand it back with
/// [`record_at`](StateMachine::record_at) or [`release`](StateMachine::release).
///
/// A ticket is plain data with no destructor; [`Permit`](super::Permit) is the guard that
/// releases on drop. A probe ticket that is never handed back is reclaimed (counted as failed)
/// once `half_open_timeout` has passed; any other lost ticket costs nothing.
#[must_use = "a ticket must be recorded or released"]
#[derive(Debug, PartialEq, Eq)]
pub struct Ticket {
    generation: u64,
    /// Nanoseconds since the machine's origin when admitted, or `UNTIMED`.
    started: u64,
    /// The probe slot, or `WINDOW` for a closed or disabled ticket.
    slot: u32,
    /// The probe's id (wrapping), to tell a probe from a later one in the same slot.
    id: u32,
}

/// `Ticket::slot` of a ticket whose outcome goes to the window (closed or disabled).
const WINDOW: u32 = u32::MAX;
/// `Ticket::started` when the call is not timed.
const UNTIMED: u64 = u64::MAX;

impl Ticket {
    /// Whether this is a half-open probe (whose outcome decides whether the breaker closes).
    pub fn is_probe(&self) -> bool {
        self.slot != WINDOW
    }
}

/// A refused call, with a hint of when to try again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejected {
    state: State,
    retry_after: Option<Duration>,
}

impl Rejected {
    /// The state that refused the call: open, half-open (all probes taken) or forced open.
    pub fn state(&self) -> State {
        self.state
    }

    /// How long until the breaker may admit calls again: the rest of the open duration, or in
    /// half-open the time until the oldest probe times out (a slot may free sooner). `None`
    /// when forced open: only [`reset`](super::CircuitBreaker::reset) or
    /// [`disable`](super::CircuitBreaker::disable) reopens the way.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.state, self.retry_after) {
            (State::HalfOpen, Some(after)) => write!(
                f,
                "circuit breaker is half-open and all its probes are in flight; retry in {after:?} at the latest"
            ),
            (_, Some(after)) => write!(f, "circuit breaker is open; retry in {after:?}"),
            (_, None) => f.write_str(
                "circuit breaker was forced open; calls are refused until it is reset or disabled",
            ),
        }
    }
}

impl std::error::Error for Rejected {}

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
        }
    }

    /// Asks to make a call at `now`.
    ///
    /// Closed or disabled: admitted, without locking. Open: rejected until the open duration
    /// has passed, then the breaker turns half-open. Half-open: admitted as a probe while the
    /// round has room. Forced open: rejected.
    pub fn try_acquire_at(&self, now: Instant) -> Result<Ticket, Rejected> {
        self.acquire_with(&|| now)
    }

    /// Reports what the call of `ticket` did, at `now`. A ticket issued before the breaker last
    /// changed state is ignored: its call was made under other rules.
    pub fn record_at(&self, ticket: Ticket, outcome: Outcome, now: Instant) {
        self.record_with(ticket, outcome, &|| now);
    }

    /// Hands back a ticket whose call was abandoned: counted as neither success nor failure;
    /// a probe's slot is freed for another caller.
    #[inline]
    pub fn release(&self, ticket: Ticket) {
        if ticket.slot != WINDOW {
            self.release_probe(ticket.generation, ticket.slot, ticket.id);
        }
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
    pub(crate) fn acquire_with(&self, clock: &impl Fn() -> Instant) -> Result<Ticket, Rejected> {
        let word = self.state.load(Ordering::Acquire);
        let code = word & CODE_MASK;
        if code == CLOSED || code == DISABLED {
            Ok(self.window_ticket(word, clock))
        } else {
            self.acquire_slow(word, clock)
        }
    }

    #[inline(always)]
    fn window_ticket(&self, word: u64, clock: &impl Fn() -> Instant) -> Ticket {
        Ticket {
            generation: word >> 8,
            started: if self.slow_nanos == UNTIMED {
                UNTIMED
            } else {
                self.nanos(clock())
            },
            slot: WINDOW,
            id: 0,
        }
    }

    #[cold]
    #[inline(never)]
    fn acquire_slow(&self, word: u64, clock: &impl Fn() -> Instant) -> Result<Ticket, Rejected> {
        match word & CODE_MASK {
            CLOSED | DISABLED => Ok(self.window_ticket(word, clock)),
            OPEN => {
                let now = clock();
                let until = self.open_until.load(Ordering::Acquire);
                let nanos = self.nanos(now);
                if nanos < until {
                    Err(self.reject(State::Open, Some(Duration::from_nanos(until - nanos))))
                } else {
                    self.acquire_locked(now)
                }
            }
            HALF_OPEN => self.acquire_locked(clock()),
            _ => Err(self.reject(State::ForcedOpen, None)),
        }
    }

    #[cold]
    #[inline(never)]
    fn acquire_locked(&self, now: Instant) -> Result<Ticket, Rejected> {
        let mut notes = Notes::default();
        let result = {
            let mut control = self.lock();
            let mut word = self.state.load(Ordering::Acquire);
            loop {
                match word & CODE_MASK {
                    CLOSED | DISABLED => break Ok(self.window_ticket(word, &|| now)),
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
                        break self.admit_probe(&mut control, word, now);
                    }
                    _ => break Err(self.reject(State::ForcedOpen, None)),
                }
            }
        };
        self.notify(notes);
        result
    }

    fn admit_probe(
        &self,
        control: &mut Control,
        word: u64,
        now: Instant,
    ) -> Result<Ticket, Rejected> {
        let taken = control.probes_in_flight + control.probe_successes + control.probe_failures;
        let free = control.probes.iter().position(Option::is_none);
        match free {
            Some(slot) if taken < self.config.half_open_calls => {
                let id = control.next_probe_id;
                control.next_probe_id = id.wrapping_add(1);
                control.probes[slot] = Some(Probe { id, started: now });
                control.probes_in_flight += 1;
                Ok(Ticket {
                    generation: word >> 8,
                    started: self.nanos(now),
                    slot: slot as u32,
                    id,
                })
            }
            _ => {
                let oldest = control.probes.iter().flatten().map(|p| p.started).min();
                let retry_after = oldest.map_or(Duration::ZERO, |started| {
                    deadline_after(started, self.config.half_open_timeout)
                        .saturating_duration_since(now)
                });
                Err(self.reject(State::HalfOpen, Some(retry_after)))
            }
        }
    }

    /// Counts every probe older than `half_open_timeout` as failed. Returns the new state word
    /// if that reopened the breaker.
    fn expire_probes(
        &self,
        control: &mut Control,
        word: u64,
        now: Instant,
        notes: &mut Notes,
    ) -> Option<u64> {
        let timeout = self.config.half_open_timeout;
        let mut expired = 0;
        for probe in control.probes.iter_mut() {
            if matches!(probe, Some(p) if deadline_after(p.started, timeout) <= now) {
                *probe = None;
                expired += 1;
            }
        }
        if expired == 0 {
            return None;
        }
        control.probes_in_flight -= expired;
        control.probe_failures += expired;
        self.judge_round(control, word, now, Reason::ProbeTimedOut, notes)
    }

    /// Closes or reopens once the probe round is decided. Returns the new state word if it did.
    fn judge_round(
        &self,
        control: &mut Control,
        word: u64,
        now: Instant,
        failure: Reason,
        notes: &mut Notes,
    ) -> Option<u64> {
        let probes = self.config.half_open_calls;
        let needed = self.config.probes_to_close;
        if control.probe_successes >= needed {
            Some(self.enter(
                control,
                word,
                State::Closed,
                Reason::ProbesSucceeded,
                now,
                notes,
            ))
        } else if control.probe_failures > probes - needed {
            Some(self.enter(control, word, State::Open, failure, now, notes))
        } else {
            None
        }
    }

    fn reject(&self, state: State, retry_after: Option<Duration>) -> Rejected {
        let stripe = &self.rejections[thread_token() & (self.rejections.len() - 1)];
        stripe.0.fetch_add(1, Ordering::Relaxed);
        Rejected { state, retry_after }
    }

    // -----------------------------------------------------------------------------------------
    // Record

    /// `record_at`, reading the clock only when it must.
    #[inline(always)]
    pub(crate) fn record_with(
        &self,
        ticket: Ticket,
        outcome: Outcome,
        clock: &impl Fn() -> Instant,
    ) {
        if ticket.slot == WINDOW {
            self.record_window(ticket, outcome, clock);
        } else {
            self.record_probe(ticket, outcome, clock());
        }
    }

    #[inline(always)]
    fn record_window(&self, ticket: Ticket, outcome: Outcome, clock: &impl Fn() -> Instant) {
        let word = self.state.load(Ordering::Acquire);
        if outcome == Outcome::Ignored || word >> 8 != ticket.generation {
            return;
        }
        let now = if ticket.started != UNTIMED || self.window.needs_time() {
            Some(clock())
        } else {
            None
        };
        let nanos = now.map_or(0, |now| self.nanos(now));
        let slow =
            ticket.started != UNTIMED && nanos.saturating_sub(ticket.started) >= self.slow_nanos;
        let failed = outcome == Outcome::Failure;
        let epoch = ticket.generation as u8;
        if !self.window.record(epoch, Record { failed, slow }, nanos) || word & CODE_MASK != CLOSED
        {
            return;
        }
        self.after_closed_record(word, failed, slow, now, clock);
    }

    /// The consecutive-failure streak and, after a bad outcome, the verdict.
    #[inline(always)]
    fn after_closed_record(
        &self,
        word: u64,
        failed: bool,
        slow: bool,
        now: Option<Instant>,
        clock: &impl Fn() -> Instant,
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
            self.judge_window(word, streak_tripped, now.unwrap_or_else(clock));
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

    fn extend_streak(&self, epoch: u8) -> u64 {
        let mut streak = self.streak.load(Ordering::Relaxed);
        loop {
            if (streak >> 56) as u8 != epoch {
                return 0;
            }
            let next = (streak & STREAK_MASK).saturating_add(1).min(STREAK_MASK);
            match self.streak.compare_exchange_weak(
                streak,
                u64::from(epoch) << 56 | next,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return next,
                Err(actual) => streak = actual,
            }
        }
    }

    #[inline]
    fn end_streak(&self, epoch: u8) {
        // Read first: in the common case there is no streak and the line stays shared.
        let streak = self.streak.load(Ordering::Relaxed);
        if streak & STREAK_MASK != 0 && (streak >> 56) as u8 == epoch {
            let _ = self.streak.compare_exchange(
                streak,
                u64::from(epoch) << 56,
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
    }

    #[cold]
    #[inline(never)]
    fn record_probe(&self, ticket: Ticket, outcome: Outcome, now: Instant) {
        let mut notes = Notes::default();
        {
            let mut control = self.lock();
            let word = self.state.load(Ordering::Acquire);
            let Some(started) = self.take_probe(
                &mut control,
                word,
                ticket.generation,
                ticket.slot,
                ticket.id,
            ) else {
                return;
            };
            let slow = match self.config.slow_call {
                Some((limit, _)) => now.saturating_duration_since(started) >= limit,
                None => false,
            };
            match outcome {
                Outcome::Ignored => return,
                Outcome::Success if !slow => control.probe_successes += 1,
                Outcome::Success | Outcome::Failure => control.probe_failures += 1,
            }
            self.judge_round(&mut control, word, now, Reason::ProbeFailed, &mut notes);
        }
        self.notify(notes);
    }

    #[cold]
    #[inline(never)]
    fn release_probe(&self, generation: u64, slot: u32, id: u32) {
        let mut control = self.lock();
        let word = self.state.load(Ordering::Acquire);
        self.take_probe(&mut control, word, generation, slot, id);
    }

    /// Frees the probe's slot if the probe is still current; returns when it started.
    fn take_probe(
        &self,
        control: &mut Control,
        word: u64,
        generation: u64,
        slot: u32,
        id: u32,
    ) -> Option<Instant> {
        if word != generation << 8 | HALF_OPEN {
            return None;
        }
        let entry = control.probes.get_mut(slot as usize)?;
        match *entry {
            Some(probe) if probe.id == id => {
                *entry = None;
                control.probes_in_flight -= 1;
                Some(probe.started)
            }
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
        if let Some(listener) = &self.listener {
            for transition in notes.transitions.iter().flatten() {
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
        let nanos = now.saturating_duration_since(self.origin).as_nanos();
        u64::try_from(nanos).unwrap_or(u64::MAX)
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::breaker::CircuitBreakerBuilder;

    const SEC: Duration = Duration::from_secs(1);

    fn machine(builder: CircuitBreakerBuilder, start: Instant) -> StateMachine {
        builder.stripes(1).build_state_machine_at(start).unwrap()
    }

    fn small() -> CircuitBreakerBuilder {
        CircuitBreakerBuilder::new()
            .count_window(4)
            .minimum_calls(4)
            .failure_rate(0.5)
            .open_duration(10 * SEC)
            .half_open_calls(2)
            .half_open_timeout(5 * SEC)
    }

    fn call(machine: &StateMachine, outcome: Outcome, now: Instant) {
        let ticket = machine.try_acquire_at(now).expect("admitted");
        machine.record_at(ticket, outcome, now);
    }

    fn trip(machine: &StateMachine, now: Instant) {
        for _ in 0..4 {
            call(machine, Outcome::Failure, now);
        }
        assert_eq!(machine.state(), State::Open);
    }

    #[test]
    fn opens_at_the_failure_rate_once_minimum_calls_are_in() {
        let t0 = Instant::now();
        let m = machine(small(), t0);
        call(&m, Outcome::Failure, t0);
        call(&m, Outcome::Failure, t0);
        call(&m, Outcome::Success, t0);
        assert_eq!(m.state(), State::Closed); // 3 calls < minimum 4
        call(&m, Outcome::Success, t0);
        assert_eq!(m.state(), State::Closed); // a success never opens
        call(&m, Outcome::Failure, t0); // window: F S S F = 50%
        assert_eq!(m.state(), State::Open);
    }

    #[test]
    fn open_rejects_until_the_open_duration_then_probes() {
        let t0 = Instant::now();
        let m = machine(small(), t0);
        trip(&m, t0);
        let rejected = m.try_acquire_at(t0 + 4 * SEC).unwrap_err();
        assert_eq!(rejected.state(), State::Open);
        assert_eq!(rejected.retry_after(), Some(6 * SEC));
        let t1 = t0 + 10 * SEC;
        let a = m.try_acquire_at(t1).unwrap();
        let b = m.try_acquire_at(t1).unwrap();
        assert!(a.is_probe() && b.is_probe());
        let full = m.try_acquire_at(t1 + SEC).unwrap_err();
        assert_eq!(full.state(), State::HalfOpen);
        assert_eq!(full.retry_after(), Some(4 * SEC));
        m.record_at(a, Outcome::Success, t1);
        assert_eq!(m.state(), State::HalfOpen);
        m.record_at(b, Outcome::Success, t1);
        assert_eq!(m.state(), State::Closed);
        assert_eq!(m.metrics_at(t1).calls, 0, "closing starts a fresh window");
    }

    #[test]
    fn a_failed_probe_reopens_for_longer() {
        let t0 = Instant::now();
        let policy = crate::backoff::Backoff::exponential(10 * SEC)
            .max_delay(60 * SEC)
            .jitter(crate::backoff::Jitter::None)
            .build()
            .unwrap();
        let m = machine(small().open_backoff(policy), t0);
        trip(&m, t0);
        let t1 = t0 + 10 * SEC;
        let probe = m.try_acquire_at(t1).unwrap();
        m.record_at(probe, Outcome::Failure, t1);
        assert_eq!(m.state(), State::Open);
        assert_eq!(
            m.try_acquire_at(t1).unwrap_err().retry_after(),
            Some(20 * SEC)
        );
        // Closing starts the sequence over.
        let t2 = t1 + 20 * SEC;
        for _ in 0..2 {
            call(&m, Outcome::Success, t2);
        }
        assert_eq!(m.state(), State::Closed);
        trip(&m, t2);
        assert_eq!(
            m.try_acquire_at(t2).unwrap_err().retry_after(),
            Some(10 * SEC)
        );
    }

    #[test]
    fn dropped_probes_free_their_slot_and_count_as_neither() {
        let t0 = Instant::now();
        let m = machine(small(), t0);
        trip(&m, t0);
        let t1 = t0 + 10 * SEC;
        let a = m.try_acquire_at(t1).unwrap();
        let b = m.try_acquire_at(t1).unwrap();
        m.release(a);
        let c = m.try_acquire_at(t1).unwrap();
        assert!(m.try_acquire_at(t1).is_err());
        m.record_at(b, Outcome::Success, t1);
        m.record_at(c, Outcome::Success, t1);
        assert_eq!(m.state(), State::Closed);
    }

    #[test]
    fn a_probe_that_never_reports_times_out_as_a_failure() {
        let t0 = Instant::now();
        let m = machine(small(), t0);
        trip(&m, t0);
        let t1 = t0 + 10 * SEC;
        let lost = m.try_acquire_at(t1).unwrap();
        let ok = m.try_acquire_at(t1).unwrap();
        m.record_at(ok, Outcome::Success, t1);
        // The lost probe is never handed back; 5 s later it counts as failed.
        let t2 = t1 + 5 * SEC;
        let rejected = m.try_acquire_at(t2).unwrap_err();
        assert_eq!(rejected.state(), State::Open);
        assert_eq!(m.state(), State::Open);
        // Its late report is ignored.
        m.record_at(lost, Outcome::Success, t2);
        assert_eq!(m.state(), State::Open);
    }

    #[test]
    fn success_rate_lets_a_round_close_despite_a_failure() {
        let t0 = Instant::now();
        let m = machine(small().half_open_calls(4).half_open_success_rate(0.75), t0);
        trip(&m, t0);
        let t1 = t0 + 10 * SEC;
        let probes: Vec<_> = (0..4).map(|_| m.try_acquire_at(t1).unwrap()).collect();
        let outcomes = [
            Outcome::Failure,
            Outcome::Success,
            Outcome::Success,
            Outcome::Success,
        ];
        for (probe, outcome) in probes.into_iter().zip(outcomes) {
            m.record_at(probe, outcome, t1);
        }
        assert_eq!(m.state(), State::Closed);
    }

    #[test]
    fn stale_permits_do_not_count() {
        let t0 = Instant::now();
        let m = machine(small(), t0);
        let old: Vec<_> = (0..4).map(|_| m.try_acquire_at(t0).unwrap()).collect();
        trip(&m, t0);
        let t1 = t0 + 10 * SEC;
        call(&m, Outcome::Success, t1);
        call(&m, Outcome::Success, t1);
        assert_eq!(m.state(), State::Closed);
        // Permits from the previous closed period fail now: ignored.
        for ticket in old {
            m.record_at(ticket, Outcome::Failure, t1);
        }
        assert_eq!(m.state(), State::Closed);
        assert_eq!(m.metrics_at(t1).calls, 0);
    }

    #[test]
    fn slow_calls_open_the_breaker() {
        let t0 = Instant::now();
        let m = machine(small().slow_calls(2 * SEC, 0.5), t0);
        for _ in 0..4 {
            let ticket = m.try_acquire_at(t0).unwrap();
            m.record_at(ticket, Outcome::Success, t0 + 3 * SEC);
        }
        assert_eq!(m.state(), State::Open);
        assert_eq!(m.metrics_at(t0).slow_calls, 4);
    }

    #[test]
    fn consecutive_failures_open_before_minimum_calls() {
        let t0 = Instant::now();
        let m = machine(
            small()
                .count_window(100)
                .minimum_calls(100)
                .consecutive_failures(3),
            t0,
        );
        call(&m, Outcome::Failure, t0);
        call(&m, Outcome::Failure, t0);
        call(&m, Outcome::Success, t0);
        call(&m, Outcome::Failure, t0);
        call(&m, Outcome::Failure, t0);
        assert_eq!(m.state(), State::Closed);
        assert_eq!(m.metrics_at(t0).consecutive_failures, 2);
        call(&m, Outcome::Failure, t0);
        assert_eq!(m.state(), State::Open);
    }

    #[test]
    fn time_window_forgets_old_failures() {
        let t0 = Instant::now();
        let m = machine(small().time_window(10 * SEC, 10).minimum_calls(3), t0);
        call(&m, Outcome::Failure, t0);
        call(&m, Outcome::Failure, t0);
        // Eleven seconds later both failures have left the window.
        let t1 = t0 + 11 * SEC;
        call(&m, Outcome::Success, t1);
        call(&m, Outcome::Success, t1);
        call(&m, Outcome::Failure, t1);
        assert_eq!(m.state(), State::Closed);
        assert_eq!(m.metrics_at(t1).calls, 3);
        call(&m, Outcome::Failure, t1);
        assert_eq!(m.state(), State::Open);
    }

    #[test]
    fn forced_open_disabled_and_reset() {
        let t0 = Instant::now();
        let m = machine(small(), t0);
        m.force_open_at(t0);
        let rejected = m.try_acquire_at(t0 + 1000 * SEC).unwrap_err();
        assert_eq!(
            (rejected.state(), rejected.retry_after()),
            (State::ForcedOpen, None)
        );
        m.disable_at(t0);
        for _ in 0..10 {
            call(&m, Outcome::Failure, t0);
        }
        assert_eq!(m.state(), State::Disabled, "disabled never trips");
        assert_eq!(m.metrics_at(t0).failures, 4, "but keeps measuring");
        m.reset_at(t0);
        assert_eq!(m.state(), State::Closed);
        assert_eq!(m.metrics_at(t0).calls, 0);
        trip(&m, t0);
    }

    #[test]
    fn ignored_outcomes_count_as_neither() {
        let t0 = Instant::now();
        let m = machine(small(), t0);
        for _ in 0..10 {
            call(&m, Outcome::Ignored, t0);
        }
        assert_eq!(m.metrics_at(t0).calls, 0);
    }

    #[test]
    fn rejections_are_counted() {
        let t0 = Instant::now();
        let m = machine(small(), t0);
        trip(&m, t0);
        for _ in 0..3 {
            assert!(m.try_acquire_at(t0).is_err());
        }
        assert_eq!(m.metrics_at(t0).rejections, 3);
    }

    #[test]
    fn the_listener_sees_every_transition_and_may_call_back() {
        let t0 = Instant::now();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let machine_slot: Arc<Mutex<Option<Arc<StateMachine>>>> = Arc::default();
        let listener = {
            let seen = Arc::clone(&seen);
            let machine_slot = Arc::clone(&machine_slot);
            move |t: &Transition| {
                // Calling back into the breaker from the listener must not deadlock.
                if let Some(m) = machine_slot.lock().unwrap().as_ref() {
                    let _ = m.metrics_at(t.at);
                    assert_eq!(m.state(), t.to);
                }
                seen.lock()
                    .unwrap()
                    .push((t.from, t.to, t.reason, t.generation));
            }
        };
        let m = Arc::new(machine(small().on_transition(listener), t0));
        *machine_slot.lock().unwrap() = Some(Arc::clone(&m));
        trip(&m, t0);
        let t1 = t0 + 10 * SEC;
        call(&m, Outcome::Success, t1);
        call(&m, Outcome::Success, t1);
        m.force_open_at(t1);
        m.reset_at(t1);
        use Reason::*;
        use State::*;
        assert_eq!(
            *seen.lock().unwrap(),
            [
                (Closed, Open, FailureRate, 1),
                (Open, HalfOpen, OpenDurationElapsed, 2),
                (HalfOpen, Closed, ProbesSucceeded, 3),
                (Closed, ForcedOpen, Manual, 4),
                (ForcedOpen, Closed, Manual, 5),
            ]
        );
        *machine_slot.lock().unwrap() = None;
    }

    #[test]
    fn time_going_backwards_does_not_panic() {
        let t0 = Instant::now() + 100 * SEC;
        let m = machine(small().time_window(10 * SEC, 5).slow_calls(SEC, 0.5), t0);
        let ticket = m.try_acquire_at(t0).unwrap();
        m.record_at(ticket, Outcome::Failure, t0 - 50 * SEC);
        let _ = m.metrics_at(t0 - 100 * SEC);
        for back in 1..10 {
            if let Ok(ticket) = m.try_acquire_at(t0 - back * SEC) {
                m.record_at(ticket, Outcome::Failure, t0 - 2 * back * SEC);
            }
        }
        assert_eq!(m.state(), State::Open);
        assert!(m.try_acquire_at(t0 - 90 * SEC).is_err());
    }
}
