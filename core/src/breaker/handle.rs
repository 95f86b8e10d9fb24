//! The shared handle: a state machine on a timer's clock.

use std::fmt;
use std::sync::Arc;

#[cfg(any(feature = "async-io", feature = "futures-timer"))]
use super::config::CircuitBreakerBuilder;
use super::machine::StateMachine;
use super::metrics::Metrics;
use super::permit::{OwnedPermit, Permit};
use super::state::State;
use super::ticket::Rejected;
#[cfg(any(feature = "async-io", feature = "futures-timer"))]
use crate::time::DefaultTimer;
use crate::time::Timer;

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
}

/// A circuit breaker: a cheap-to-clone, `Send + Sync` handle to one shared [`StateMachine`],
/// reading time from a [`Timer`].
#[cfg(not(any(feature = "async-io", feature = "futures-timer")))]
pub struct CircuitBreaker<T: Timer> {
    machine: Arc<StateMachine>,
    timer: T,
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
        CircuitBreaker {
            machine: Arc::new(machine),
            timer,
        }
    }

    /// Asks to make a call now: a [`Permit`] to report the outcome with, or a [`Rejected`]
    /// saying when to try again.
    ///
    /// In the closed state this is one atomic load, no lock and no allocation; it reads the
    /// clock only if slow calls are measured.
    #[inline(always)]
    pub fn try_acquire(&self) -> Result<Permit<'_, T>, Rejected> {
        let timer = &self.timer;
        let ticket = self.machine.acquire_with(&|| timer.now())?;
        Ok(Permit::new(self, ticket))
    }

    /// Like [`try_acquire`](Self::try_acquire), but the permit owns a clone of this handle
    /// instead of borrowing it, to hold across tasks; see [`OwnedPermit`]. (The clone costs a
    /// reference count and the timer's clone.)
    pub fn try_acquire_owned(&self) -> Result<OwnedPermit<T>, Rejected> {
        let timer = &self.timer;
        let ticket = self.machine.acquire_with(&|| timer.now())?;
        Ok(OwnedPermit::new(self.clone(), ticket))
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
