//! `RetryRun`: one async call's retry state, for the coroutine in `tailguard/_retry.py`.

use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyException;
use pyo3::gc::{PyTraverseError, PyVisit};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use tailguard::retry::{GaveUp, Next, RetryConfig, RetryState};

use super::RetryPolicy;
use crate::{convert, errors};

/// One async call's retry state, driven by the coroutine in `tailguard/_retry.py`.
#[pyclass(frozen, module = "tailguard")]
pub(crate) struct RetryRun {
    pub(super) policy: Py<RetryPolicy>,
    pub(super) state: Mutex<RetryState<Arc<RetryConfig>>>,
    /// The last attempt's exception, the cause of a `RetryError` raised by `begin`; kept only
    /// while waiting for the next attempt (its traceback holds the frames of the call, so a call
    /// that goes on or ends must not keep it).
    pub(super) last: Mutex<Option<Py<PyAny>>>,
}

impl RetryRun {
    /// Takes the last attempt's exception out (to drop or raise it outside the lock).
    fn take_last(&self) -> Option<Py<PyAny>> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

#[pymethods]
impl RetryRun {
    /// Starts the next attempt: returns its time limit in seconds (`None` if unlimited), or
    /// raises `RetryError` if the deadline has passed.
    fn begin(&self, py: Python<'_>) -> PyResult<Option<f64>> {
        let policy = self.policy.get();
        let now = policy.clock.now();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match state.begin_attempt_at(now) {
            Ok(_) => {
                let limit = state
                    .attempt_deadline_at(now)
                    .map(|deadline| deadline.saturating_duration_since(now).as_secs_f64());
                drop(state);
                // The previous attempt's exception is no longer needed; dropped here, not when
                // the call ends, so that its frames die with it.
                drop(self.take_last());
                Ok(limit)
            }
            Err(reason) => {
                let attempts = state.attempts();
                let elapsed = state.elapsed_at(now).as_secs_f64();
                drop(state);
                let last = match self.take_last() {
                    Some(exc) => PyErr::from_value(exc.into_bound(py)),
                    None => pyo3::exceptions::PyTimeoutError::new_err("the deadline passed"),
                };
                Err(errors::retry_error(py, reason, attempts, elapsed, last))
            }
        }
    }

    /// The attempt failed with `exc` (`timed_out`: by its own time limit). Returns the delay to
    /// wait before the next attempt, `None` to re-raise `exc` (not retryable), or raises
    /// `RetryError`. When the `on_retry` hook returned an awaitable (an `async def` hook), returns
    /// `(delay, awaitable)`: the caller awaits it before waiting out the delay.
    #[pyo3(signature = (exc, timed_out = false))]
    fn failed(
        &self,
        py: Python<'_>,
        exc: &Bound<'_, PyAny>,
        timed_out: bool,
    ) -> PyResult<Option<Py<PyAny>>> {
        if !exc.is_instance_of::<PyException>() {
            return Ok(None);
        }
        let policy = self.policy.get();
        // The classifier and the hook are user code: no lock is held while they run.
        let decision = policy.classify(py, exc, timed_out)?;
        let now = policy.clock.now();
        let (next, attempts, elapsed) = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let next = state.on_failure_at(now, decision);
            (next, state.attempts(), state.elapsed_at(now).as_secs_f64())
        };
        match next {
            Next::Retry(delay) => {
                let previous = self
                    .last
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .replace(exc.clone().unbind());
                drop(previous);
                let mut pending = None;
                if let Some(hook) = &policy.on_retry {
                    let event = RetryEvent {
                        attempt: attempts,
                        delay: delay.as_secs_f64(),
                        elapsed,
                        exception: exc.clone().unbind(),
                    };
                    let returned = hook.bind(py).call1((event,))?;
                    if convert::is_awaitable(&returned)? {
                        pending = Some(returned);
                    }
                }
                let wait = policy
                    .clock
                    .sleep_for(delay)
                    .as_secs_f64()
                    .into_pyobject(py)?;
                Ok(Some(match pending {
                    None => wait.into_any().unbind(),
                    Some(awaitable) => PyTuple::new(py, [wait.into_any(), awaitable])?
                        .into_any()
                        .unbind(),
                }))
            }
            Next::GiveUp(GaveUp::NotRetryable) => Ok(None),
            Next::GiveUp(reason) => Err(errors::raised_while_handling(
                py,
                errors::retry_error(
                    py,
                    reason,
                    attempts,
                    elapsed,
                    PyErr::from_value(exc.clone()),
                ),
                exc,
            )),
        }
    }

    /// The call is abandoned (cancelled): a retry the budget granted but that was never made
    /// is refunded at once, rather than whenever this object is collected.
    fn close(&self) {
        let policy = self.policy.get();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        // Dropping the old state refunds; the fresh one holds nothing.
        let old = std::mem::replace(&mut *state, RetryState::new(policy.config.clone()));
        drop(state);
        drop(old);
        drop(self.take_last());
    }

    /// What the call's state holds, for the cycle collector (an exception's traceback holds the
    /// frame that holds this object). A lock held elsewhere is skipped: the collector then keeps
    /// the objects, which is safe.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.policy)?;
        if let Ok(last) = self.last.try_lock() {
            visit.call(last.as_ref())?;
        }
        Ok(())
    }

    /// Breaks a cycle through the kept exception.
    fn __clear__(&self) {
        drop(self.take_last());
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
    /// Seconds from the start of the call (before its first attempt) to this failure.
    pub(super) elapsed: f64,
    /// How the attempt failed.
    pub(super) exception: Py<PyAny>,
}

#[pymethods]
impl RetryEvent {
    /// The exception, for the cycle collector (a hook may keep the events on an object that the
    /// exception's frames refer to). Fixed at construction: the other objects of such a cycle
    /// (the frames, the hook's owner) are the ones cleared.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.exception)
    }

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
