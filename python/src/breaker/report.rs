//! What a breaker tells the outside: metrics snapshots, and transitions for listeners.

use pyo3::prelude::*;
use tailguard::breaker::Transition;

use super::{reason_name, state_name, Listeners};

/// Calls the listeners with a transition. Called by the core after its lock is released, on
/// the thread that made the transition (which holds the GIL: every breaker operation is called
/// from Python).
pub(super) fn notify(listeners: &Listeners, transition: &Transition) {
    Python::attach(|py| {
        let callbacks: Vec<Py<PyAny>> = listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|l| l.clone_ref(py))
            .collect();
        if callbacks.is_empty() {
            return;
        }
        let event = match Py::new(
            py,
            BreakerTransition {
                from_state: state_name(transition.from),
                to_state: state_name(transition.to),
                reason: reason_name(transition.reason),
                generation: transition.generation,
            },
        ) {
            Ok(event) => event,
            Err(err) => return err.write_unraisable(py, None),
        };
        for callback in callbacks {
            let callback = callback.bind(py);
            if let Err(err) = callback.call1((event.clone_ref(py),)) {
                err.write_unraisable(py, Some(callback));
            }
        }
    });
}

/// A snapshot of a breaker's counters.
#[pyclass(frozen, module = "tailguard", get_all)]
pub(crate) struct BreakerMetrics {
    /// The state: `"closed"`, `"open"`, `"half_open"`, `"forced_open"` or `"disabled"`.
    pub(super) state: &'static str,
    /// Calls in the window (of the current closed period or, while open or half-open, the last).
    pub(super) calls: u64,
    /// Failed calls in the window.
    pub(super) failures: u64,
    /// Slow calls in the window, failed or not (those that took `slow_call_duration` or longer).
    pub(super) slow_calls: u64,
    /// `failures / calls` over the window, or `None` if there were no calls.
    pub(super) failure_rate: Option<f64>,
    /// `slow_calls / calls` over the window, or `None` if there were no calls.
    pub(super) slow_call_rate: Option<f64>,
    /// Failures in a row in the current closed period (counted only with `consecutive_failures`).
    pub(super) consecutive_failures: u64,
    /// Calls refused without running, since the breaker was built.
    pub(super) rejections: u64,
    /// Half-open probes admitted and not yet reported.
    pub(super) probes_in_flight: u32,
    /// Seconds since the breaker entered its state.
    pub(super) in_state_for: f64,
    /// While open: seconds until it admits a probe.
    pub(super) open_for: Option<f64>,
}

#[pymethods]
impl BreakerMetrics {
    fn __repr__(&self) -> String {
        format!(
            "BreakerMetrics(state={:?}, calls={}, failures={}, slow_calls={}, rejections={}, probes_in_flight={})",
            self.state, self.calls, self.failures, self.slow_calls, self.rejections, self.probes_in_flight
        )
    }
}

/// A change of state, as given to listeners.
#[pyclass(frozen, module = "tailguard", get_all)]
pub(crate) struct BreakerTransition {
    /// The state left: `"closed"`, `"open"`, `"half_open"`, `"forced_open"` or `"disabled"`.
    from_state: &'static str,
    /// The state entered, one of the same names.
    to_state: &'static str,
    /// Why: `"failure_rate"`, `"slow_call_rate"`, `"consecutive_failures"`,
    /// `"open_duration_elapsed"`, `"probes_succeeded"`, `"probe_failed"`, `"probe_timed_out"`,
    /// `"manual"`, `"fleet"` (opened from outside, by a sharing layer), or `"other"` for a
    /// reason a newer core gives that this binding does not name.
    reason: &'static str,
    /// Counts transitions since the breaker was built; orders reports from several threads.
    generation: u64,
}

#[pymethods]
impl BreakerTransition {
    fn __repr__(&self) -> String {
        format!(
            "BreakerTransition({} -> {}, reason={:?}, generation={})",
            self.from_state, self.to_state, self.reason, self.generation
        )
    }
}
