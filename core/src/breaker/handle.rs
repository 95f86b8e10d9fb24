//! The shared handle: a state machine on a timer's clock.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

#[cfg(any(feature = "async-io", feature = "futures-timer"))]
use super::config::CircuitBreakerBuilder;
use super::machine::{nanos_since, Clocks, StateMachine};
use super::metrics::Metrics;
use super::permit::{OwnedPermit, Permit};
use super::state::State;
use super::ticket::Rejected;
#[cfg(any(feature = "async-io", feature = "futures-timer"))]
use crate::time::DefaultTimer;
use crate::time::{process_nanos, Timer};

/// A circuit breaker: a cheap-to-clone, `Send + Sync` handle to one shared [`StateMachine`],
/// reading time from a [`Timer`].
///
/// Clones share the breaker. See the [module documentation](super) for the rules.
///
/// ```
/// use std::time::Duration;
/// use tailguard::breaker::{CircuitBreaker, State};
/// use tailguard::time::ManualTimer;
///
/// let timer = ManualTimer::new();
/// let breaker = CircuitBreaker::builder()
///     .count_window(10)
///     .minimum_calls(5)
///     .open_duration(Duration::from_secs(30))
///     .build_with(timer.clone())?;
///
/// for _ in 0..5 {
///     breaker.try_acquire().unwrap().failure();
/// }
/// assert_eq!(breaker.state(), State::Open);
/// let rejected = breaker.try_acquire().unwrap_err();
/// assert_eq!(rejected.retry_after(), Some(Duration::from_secs(30)));
///
/// timer.advance(Duration::from_secs(30));
/// let probe = breaker.try_acquire().unwrap();
/// assert!(probe.is_probe());
/// # Ok::<(), tailguard::ConfigError>(())
/// ```
#[cfg(any(feature = "async-io", feature = "futures-timer"))]
pub struct CircuitBreaker<T: Timer = DefaultTimer> {
    machine: Arc<StateMachine>,
    timer: T,
    /// Measurements: exact, or [`Timer::now_coarse_nanos`] (see [`CircuitBreaker::try_acquire`]).
    measure: Measure,
}

/// A circuit breaker: a cheap-to-clone, `Send + Sync` handle to one shared [`StateMachine`],
/// reading time from a [`Timer`].
#[cfg(not(any(feature = "async-io", feature = "futures-timer")))]
pub struct CircuitBreaker<T: Timer> {
    machine: Arc<StateMachine>,
    timer: T,
    measure: Measure,
}

#[cfg(any(feature = "async-io", feature = "futures-timer"))]
impl CircuitBreaker<DefaultTimer> {
    /// A builder; finish it with [`build`](CircuitBreakerBuilder::build) (the default timer)
    /// or [`build_with`](CircuitBreakerBuilder::build_with). Same as
    /// [`CircuitBreakerBuilder::new`].
    pub fn builder() -> CircuitBreakerBuilder {
        CircuitBreakerBuilder::new()
    }
}

impl<T: Timer> CircuitBreaker<T> {
    pub(crate) fn from_state_machine(machine: StateMachine, timer: T) -> Self {
        let resolution = timer.coarse_resolution();
        let measure = if !resolution.is_zero() && machine.tolerates_coarse(resolution) {
            Measure::Coarse {
                origin: process_nanos(machine.origin()),
            }
        } else {
            Measure::Exact
        };
        CircuitBreaker {
            measure,
            machine: Arc::new(machine),
            timer,
        }
    }

    /// The machine's clocks on this handle's timer.
    #[inline(always)]
    pub(crate) fn clocks(&self) -> TimerClocks<'_, T> {
        TimerClocks {
            timer: &self.timer,
            measure: self.measure,
        }
    }

    /// Asks to make a call now: a [`Permit`] to report the outcome with, or a [`Rejected`]
    /// saying when to try again.
    ///
    /// In the closed state this is one atomic load, no lock and no allocation; it reads the
    /// clock only if slow calls are measured.
    ///
    /// Measurements (a call's duration for slow-call timing, the bucket of a time window) read
    /// the coarse clock, [`Timer::now_coarse_nanos`], when the timer's
    /// [coarse resolution](Timer::coarse_resolution) is at most 1/25 of the slow-call limit
    /// and of a bucket (on Linux, [`AsyncIoTimer`]'s kernel tick of 1–4 ms, against limits and
    /// buckets of 100 ms or more; [`CachedTimer`]'s 2 ms); decisions (opening, the open
    /// duration, probes) always read [`Timer::now`]. A timer with a zero resolution, such as
    /// [`ManualTimer`], is exact throughout.
    ///
    /// [`AsyncIoTimer`]: crate::time::AsyncIoTimer
    /// [`CachedTimer`]: crate::time::CachedTimer
    /// [`ManualTimer`]: crate::time::ManualTimer
    #[inline(always)]
    pub fn try_acquire(&self) -> Result<Permit<'_, T>, Rejected> {
        let ticket = self.machine.acquire_with(&self.clocks())?;
        Ok(Permit::new(self, ticket))
    }

    /// Like [`try_acquire`](Self::try_acquire), but the permit owns a clone of this handle
    /// instead of borrowing it, to hold across tasks; see [`OwnedPermit`]. (The clone costs a
    /// reference count and the timer's clone.)
    pub fn try_acquire_owned(&self) -> Result<OwnedPermit<T>, Rejected> {
        let ticket = self.machine.acquire_with(&self.clocks())?;
        Ok(OwnedPermit::new(self.clone(), ticket))
    }

    /// Whether a call would be admitted now, without taking a permit or a probe slot (see
    /// [`StateMachine::check_at`]): for readiness checks such as tower's `poll_ready`. In the
    /// closed state this is one atomic load and reads no clock.
    ///
    /// ```
    /// use tailguard::breaker::CircuitBreaker;
    /// use tailguard::time::ManualTimer;
    ///
    /// let breaker = CircuitBreaker::builder().build_with(ManualTimer::new())?;
    /// assert!(breaker.check().is_ok());
    /// breaker.force_open();
    /// assert!(breaker.check().is_err());
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    #[inline(always)]
    pub fn check(&self) -> Result<(), Rejected> {
        self.machine.check_with(&self.clocks())
    }

    /// The current state (open turns half-open on the first acquire after the open duration).
    pub fn state(&self) -> State {
        self.machine.state()
    }

    /// A snapshot of the counters.
    pub fn metrics(&self) -> Metrics {
        self.machine.metrics_at(self.timer.now())
    }

    /// Opens the breaker until [`reset`](Self::reset) or [`disable`](Self::disable).
    pub fn force_open(&self) {
        self.machine.force_open_at(self.timer.now());
    }

    /// Admits every call and keeps measuring, but never trips, until [`reset`](Self::reset) or
    /// [`force_open`](Self::force_open).
    pub fn disable(&self) {
        self.machine.disable_at(self.timer.now());
    }

    /// Opens a closed breaker now as if its own window had crossed its threshold (reason
    /// [`Fleet`](super::Reason::Fleet)); see [`StateMachine::trip_at`]. Returns whether it
    /// opened it.
    ///
    /// ```
    /// use tailguard::breaker::{CircuitBreaker, State};
    /// use tailguard::time::ManualTimer;
    ///
    /// let breaker = CircuitBreaker::builder().build_with(ManualTimer::new())?;
    /// assert!(breaker.trip());
    /// assert_eq!(breaker.state(), State::Open);
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    pub fn trip(&self) -> bool {
        self.machine.trip_at(self.timer.now())
    }

    /// Closes the breaker with an empty window and the open duration back at its start.
    pub fn reset(&self) {
        self.machine.reset_at(self.timer.now());
    }

    /// The state machine behind the handle, to drive with explicit instants.
    pub fn state_machine(&self) -> &StateMachine {
        &self.machine
    }

    /// The timer the breaker reads time from.
    pub fn timer(&self) -> &T {
        &self.timer
    }
}

impl<T: Timer> Clone for CircuitBreaker<T> {
    fn clone(&self) -> Self {
        CircuitBreaker {
            machine: Arc::clone(&self.machine),
            timer: self.timer.clone(),
            measure: self.measure,
        }
    }
}

impl<T: Timer> fmt::Debug for CircuitBreaker<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("machine", &self.machine)
            .finish_non_exhaustive()
    }
}

/// How a handle's measurements read its timer.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Measure {
    /// [`Timer::now`].
    Exact,
    /// [`Timer::now_coarse_nanos`], less `origin`: the machine's origin on the process's
    /// nanosecond scale, so the reading is in the machine's nanoseconds with one subtraction.
    Coarse { origin: u64 },
}

/// A handle's timer as the machine's [`Clocks`].
pub(crate) struct TimerClocks<'a, T> {
    timer: &'a T,
    measure: Measure,
}

impl<T: Timer> Clocks for TimerClocks<'_, T> {
    #[inline(always)]
    fn now(&self) -> Instant {
        self.timer.now()
    }

    #[inline(always)]
    fn measure(&self, origin: Instant) -> (u64, Option<Instant>) {
        match self.measure {
            Measure::Coarse { origin } => {
                (self.timer.now_coarse_nanos().saturating_sub(origin), None)
            }
            Measure::Exact => {
                let now = self.timer.now();
                (nanos_since(origin, now), Some(now))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::breaker::CircuitBreakerBuilder;
    use crate::time::{CachedTimer, ManualTimer};

    const MS: Duration = Duration::from_millis(1);
    const TICK: Duration = Duration::from_millis(4);

    /// Virtual time whose coarse clock moves in ticks of 4 ms, as the kernel's does.
    #[derive(Clone)]
    struct TickingTimer {
        manual: ManualTimer,
        start: Instant,
    }

    impl TickingTimer {
        fn new() -> Self {
            let manual = ManualTimer::new();
            let start = manual.now();
            TickingTimer { manual, start }
        }
    }

    impl Timer for TickingTimer {
        type Sleep = <ManualTimer as Timer>::Sleep;

        fn now(&self) -> Instant {
            self.manual.now()
        }

        fn sleep_until(&self, deadline: Instant) -> Self::Sleep {
            self.manual.sleep_until(deadline)
        }

        fn now_coarse(&self) -> Instant {
            let elapsed = self.manual.now() - self.start;
            let ticks = elapsed.as_nanos() / TICK.as_nanos();
            self.start + TICK * u32::try_from(ticks).unwrap()
        }

        fn coarse_resolution(&self) -> Duration {
            TICK
        }
    }

    /// A call of 999 ms, from 3 ms (coarse: 0) to 1002 ms (coarse: 1000), against `limit`.
    fn one_call(limit: Duration) -> (CircuitBreaker<TickingTimer>, TickingTimer) {
        let timer = TickingTimer::new();
        let breaker = CircuitBreakerBuilder::new()
            .count_window(10)
            .minimum_calls(1)
            .slow_calls(limit, 1.0)
            .build_with(timer.clone())
            .unwrap();
        timer.manual.advance(3 * MS);
        let permit = breaker.try_acquire().unwrap();
        timer.manual.advance(999 * MS);
        permit.success();
        (breaker, timer)
    }

    #[test]
    fn slow_calls_are_timed_on_the_coarse_clock_when_its_tick_is_small_beside_the_limit() {
        // 4 ms is 1/250 of a second: the coarse clock measures 1000 ms, a slow call.
        let (breaker, timer) = one_call(Duration::from_secs(1));
        assert_eq!(breaker.metrics().slow_calls, 1);
        // The decision to open is taken at the exact time, not the coarse one.
        assert_eq!(breaker.state(), State::Open);
        assert_eq!(breaker.metrics().since, timer.now());
    }

    #[test]
    fn slow_calls_are_timed_exactly_when_the_tick_is_too_coarse_for_the_limit() {
        // 4 ms is more than 1/25 of 90 ms: the exact clock times the call.
        let timer = TickingTimer::new();
        let breaker = CircuitBreakerBuilder::new()
            .count_window(10)
            .minimum_calls(1)
            .slow_calls(90 * MS, 1.0)
            .build_with(timer.clone())
            .unwrap();
        timer.manual.advance(3 * MS);
        let permit = breaker.try_acquire().unwrap();
        timer.manual.advance(89 * MS); // exact: 89 ms, not slow; coarse: 0 -> 92 ms, slow
        permit.success();
        assert_eq!(breaker.metrics().slow_calls, 0);
        assert_eq!(breaker.state(), State::Closed);
    }

    #[test]
    fn a_virtual_clock_times_exactly() {
        // ManualTimer has no coarse clock: 999 ms is not a slow call against 1 s.
        let timer = ManualTimer::new();
        let breaker = CircuitBreakerBuilder::new()
            .slow_calls(Duration::from_secs(1), 1.0)
            .build_with(timer.clone())
            .unwrap();
        timer.advance(3 * MS);
        let permit = breaker.try_acquire().unwrap();
        timer.advance(999 * MS);
        permit.success();
        assert_eq!(breaker.metrics().slow_calls, 0);
    }

    /// A call of 120 s in virtual time against `limit`, on a [`CachedTimer`] over the virtual
    /// clock: its coarse clock is real time (a moment), `now` is virtual, so the slow-call
    /// count says which clock timed the call.
    fn cached_call(limit: Duration) -> CircuitBreaker<CachedTimer<ManualTimer>> {
        let manual = ManualTimer::new();
        let breaker = CircuitBreakerBuilder::new()
            .count_window(10)
            .minimum_calls(10)
            .slow_calls(limit, 1.0)
            .build_with(CachedTimer::new(manual.clone()))
            .unwrap();
        let permit = breaker.try_acquire().unwrap();
        manual.advance(Duration::from_secs(120));
        permit.success();
        breaker
    }

    #[test]
    fn a_cached_clock_times_calls_when_its_lag_is_small_beside_the_limit() {
        // 2 ms declared against 60 s: the cached (real) time measures the call, a moment.
        assert_eq!(cached_call(Duration::from_secs(60)).metrics().slow_calls, 0);
        // Against 40 ms (less than 25 × 2 ms) the exact clock does: 120 s, slow.
        assert_eq!(cached_call(40 * MS).metrics().slow_calls, 1);
    }
}
