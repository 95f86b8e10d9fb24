//! A snapshot of what a breaker has seen.

use std::time::Instant;

use super::state::State;

/// What a breaker has seen, from [`CircuitBreaker::metrics`](super::CircuitBreaker::metrics).
///
/// The window counts are those of the current (or, while open or half-open, the last) closed
/// period's sliding window; `rejections` counts since the breaker was built.
///
/// ```
/// use tailguard::breaker::{CircuitBreaker, State};
/// use tailguard::time::ManualTimer;
///
/// let breaker = CircuitBreaker::builder().build_with(ManualTimer::new())?;
/// breaker.try_acquire().unwrap().success();
/// breaker.try_acquire().unwrap().failure();
/// let metrics = breaker.metrics();
/// assert_eq!(metrics.state, State::Closed);
/// assert_eq!((metrics.calls, metrics.failures), (2, 1));
/// assert_eq!(metrics.failure_rate, Some(0.5));
/// # Ok::<(), tailguard::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct Metrics {
    /// The current state.
    pub state: State,
    /// When the breaker entered it (its creation, for the first closed period).
    pub since: Instant,
    /// While open: when it will admit a probe.
    pub open_until: Option<Instant>,
    /// Calls in the window.
    pub calls: u64,
    /// Failed calls in the window.
    pub failures: u64,
    /// Slow calls in the window (failed or not).
    pub slow_calls: u64,
    /// `failures / calls`, if there were calls.
    pub failure_rate: Option<f64>,
    /// `slow_calls / calls`, if there were calls.
    pub slow_call_rate: Option<f64>,
    /// Failures in a row in the current closed period (only counted with
    /// [`consecutive_failures`](super::CircuitBreakerBuilder::consecutive_failures)).
    pub consecutive_failures: u64,
    /// Calls refused since the breaker was built.
    pub rejections: u64,
    /// Half-open probes admitted and not yet reported.
    pub probes_in_flight: u32,
}
