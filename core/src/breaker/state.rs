//! The breaker's states and the transitions between them.

use std::fmt;
use std::time::Instant;

/// Where a breaker stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Calls flow; outcomes are measured over the sliding window.
    Closed,
    /// Calls are rejected until the open duration has passed.
    Open,
    /// A limited number of probe calls are let through to test the dependency.
    HalfOpen,
    /// Opened by hand ([`force_open`](super::CircuitBreaker::force_open)): every call is
    /// rejected until [`reset`](super::CircuitBreaker::reset) or
    /// [`disable`](super::CircuitBreaker::disable).
    ForcedOpen,
    /// Switched off by hand ([`disable`](super::CircuitBreaker::disable)): every call is
    /// admitted and measured, and the breaker never trips.
    Disabled,
}

impl State {
    pub(crate) const fn code(self) -> u64 {
        match self {
            State::Closed => 0,
            State::Open => 1,
            State::HalfOpen => 2,
            State::ForcedOpen => 3,
            State::Disabled => 4,
        }
    }

    pub(crate) const fn from_code(code: u64) -> State {
        match code {
            0 => State::Closed,
            1 => State::Open,
            2 => State::HalfOpen,
            3 => State::ForcedOpen,
            _ => State::Disabled,
        }
    }

    /// A short lowercase name: `closed`, `open`, `half_open`, `forced_open`, `disabled`.
    pub const fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
            State::ForcedOpen => "forced_open",
            State::Disabled => "disabled",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a transition happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// The failure rate over the window reached its threshold.
    FailureRate,
    /// The slow-call rate over the window reached its threshold.
    SlowCallRate,
    /// The configured number of failures in a row was reached.
    ConsecutiveFailures,
    /// The open duration passed; probing starts.
    OpenDurationElapsed,
    /// Enough probes succeeded.
    ProbesSucceeded,
    /// Too many probes failed (or were slow) for the round to succeed.
    ProbeFailed,
    /// A probe neither reported nor was dropped within `half_open_timeout`; it counts as failed.
    ProbeTimedOut,
    /// [`force_open`](super::CircuitBreaker::force_open),
    /// [`disable`](super::CircuitBreaker::disable) or [`reset`](super::CircuitBreaker::reset).
    Manual,
    /// Tripped from outside, as if the window had crossed its threshold:
    /// [`trip_at`](super::StateMachine::trip_at), called by a sharing layer (such as the
    /// `tailguard-fleet` crate) when the fleet's counts cross it.
    Fleet,
}

/// A change of state, as reported to the listener set with
/// [`on_transition`](super::CircuitBreakerBuilder::on_transition).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    /// The state left.
    pub from: State,
    /// The state entered.
    pub to: State,
    /// Why.
    pub reason: Reason,
    /// When, on the breaker's clock.
    pub at: Instant,
    /// Counts transitions since the breaker was built (the first is 1). Listeners on several
    /// threads may see transitions out of order; this number puts them back in order.
    pub generation: u64,
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "circuit breaker {} -> {} ({:?})",
            self.from, self.to, self.reason
        )
    }
}
