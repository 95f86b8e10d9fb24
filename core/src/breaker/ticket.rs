//! What passes between a caller and the state machine: the [`Ticket`] for an admitted call, the
//! [`Outcome`] it reports, and the [`Rejected`] answer for a refused one.

use std::fmt;
use std::time::Duration;

use super::state::State;

/// What a call did, as reported with [`StateMachine::record_at`](super::StateMachine::record_at) or
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

/// Permission for one call, from [`StateMachine::try_acquire_at`](super::StateMachine::try_acquire_at): hand it back with
/// [`record_at`](super::StateMachine::record_at) or [`release`](super::StateMachine::release).
///
/// A ticket is plain data with no destructor; [`Permit`](super::Permit) is the guard that
/// releases on drop. A probe ticket that is never handed back is reclaimed (counted as failed)
/// once `half_open_timeout` has passed; any other lost ticket costs nothing.
#[must_use = "a ticket must be recorded or released"]
#[derive(Debug, PartialEq, Eq)]
pub struct Ticket {
    pub(super) generation: u64,
    /// Nanoseconds since the machine's origin when admitted, or `UNTIMED`.
    pub(super) started: u64,
    /// The probe slot, or `WINDOW` for a closed or disabled ticket.
    pub(super) slot: u32,
    /// The probe's id (wrapping), to tell a probe from a later one in the same slot.
    pub(super) id: u32,
}

/// `Ticket::slot` of a ticket whose outcome goes to the window (closed or disabled).
pub(super) const WINDOW: u32 = u32::MAX;
/// `Ticket::started` when the call is not timed.
pub(super) const UNTIMED: u64 = u64::MAX;

impl Ticket {
    /// Whether this is a half-open probe (whose outcome decides whether the breaker closes).
    pub fn is_probe(&self) -> bool {
        self.slot != WINDOW
    }
}

/// A refused call, with a hint of when to try again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejected {
    pub(super) state: State,
    pub(super) retry_after: Option<Duration>,
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
