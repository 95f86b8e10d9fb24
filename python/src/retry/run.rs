//! `RetryRun`: one async call's retry state, for the coroutine in `tailguard/_retry.py`.

use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use tailguard::retry::{GaveUp, Next, RetryConfig, RetryState};

use super::RetryPolicy;
use crate::{convert, errors};

/// One async call's retry state, driven by the coroutine in `tailguard/_retry.py`.
#[pyclass(frozen, module = "tailguard")]
pub(crate) struct RetryRun {
    pub(super) policy: Py<RetryPolicy>,
    pub(super) state: Mutex<RetryState<Arc<RetryConfig>>>,
    /// The last attempt's exception, the cause of a `RetryError` raised by `begin`.
    pub(super) last: Mutex<Option<Py<PyAny>>>,
}

#[pymethods]
impl RetryRun {
    /// Starts the next attempt: returns its time limit in seconds (`None` if unlimited), or
    /// raises `RetryError` if the deadline has passed.
    fn begin(&self, py: Python<'_>) -> PyResult<Option<f64>> {
        let policy = self.policy.get();
        let now = policy.clock.now();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match state.begin_attempt(now) {
            Ok(_) => Ok(state
                .attempt_deadline(now)
                .map(|deadline| deadline.saturating_duration_since(now).as_secs_f64())),
            Err(reason) => {
                let attempts = state.attempts();
                let elapsed = state.elapsed(now).as_secs_f64();
                drop(state);
                let last = self.last.lock().unwrap_or_else(|p| p.into_inner()).take();
                let last = match last {
                    Some(exc) => PyErr::from_value(exc.into_bound(py)),
                    None => pyo3::exceptions::PyTimeoutError::new_err("the deadline passed"),
                };
                Err(errors::retry_error(py, reason, attempts, elapsed, last))
            }
        }
    }

    /// The attempt failed with `exc` (`timed_out`: by its own time limit). Returns the delay to
    /// wait before the next attempt, `None` to re-raise `exc` (not retryable), or raises
    /// `RetryError`.
    #[pyo3(signature = (exc, timed_out = false))]
    fn failed(
        &self,
        py: Python<'_>,
        exc: &Bound<'_, PyAny>,
        timed_out: bool,
    ) -> PyResult<Option<f64>> {
        if !exc.is_instance_of::<PyException>() {
            return Ok(None);
        }
        let policy = self.policy.get();
        // The classifier and the hook are user code: no lock is held while they run.
        let decision = policy.classify(py, exc, timed_out)?;
        let now = policy.clock.now();
        let (next, attempts, elapsed) = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let next = state.on_failure(now, decision);
            (next, state.attempts(), state.elapsed(now).as_secs_f64())
        };
        match next {
            Next::Retry(delay) => {
                *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(exc.clone().unbind());
                if let Some(hook) = &policy.on_retry {
                    let event = RetryEvent {
                        attempt: attempts,
                        delay: delay.as_secs_f64(),
                        elapsed,
                        exception: exc.clone().unbind(),
                    };
                    hook.bind(py).call1((event,))?;
                }
                Ok(Some(policy.clock.sleep_for(delay).as_secs_f64()))
            }
            Next::GiveUp(GaveUp::NotRetryable) => Ok(None),
            Next::GiveUp(reason) => Err(errors::retry_error(
                py,
                reason,
                attempts,
                elapsed,
                PyErr::from_value(exc.clone()),
            )),
        }
    }

    /// The call is abandoned (cancelled): a retry the budget granted but that was never made
    /// is refunded at once, rather than whenever this object is collected.
    fn close(&self) {
        let policy = self.policy.get();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        // Dropping the old state refunds; the fresh one holds nothing.
        drop(std::mem::replace(
            &mut *state,
            RetryState::new(policy.config.clone()),
        ));
    }

    /// Attempts started so far.
    #[getter]
    fn attempts(&self) -> u32 {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .attempts()
    }
}

/// What an `on_retry` hook receives before each retry.
#[pyclass(frozen, module = "tailguard", get_all)]
pub(crate) struct RetryEvent {
    /// The attempt that just failed, counting from 1.
    pub(super) attempt: u32,
    /// The wait before the next attempt, in seconds.
    pub(super) delay: f64,
    /// Seconds since the call started.
    pub(super) elapsed: f64,
    /// How the attempt failed.
    pub(super) exception: Py<PyAny>,
}

#[pymethods]
impl RetryEvent {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "RetryEvent(attempt={}, delay={}, elapsed={}, exception={})",
            self.attempt,
            self.delay,
            self.elapsed,
            convert::short_repr(self.exception.bind(py))
        )
    }
}
