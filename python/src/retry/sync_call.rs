//! The sync path: the first attempt, and the whole retry loop after a failure, in Rust.

use std::time::Instant;

use pyo3::exceptions::PyException;
use pyo3::gc::{PyTraverseError, PyVisit};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use tailguard::retry::RetryState;

use super::RetryPolicy;
use crate::{convert, errors};

impl RetryPolicy {
    /// The sync loop after the first attempt, started at `started`, failed with `err`.
    ///
    /// Exceptions chain as in a pure-Python loop: the attempt's exception keeps its traceback,
    /// and what the predicate, the hook or the loop raises while handling it has it as its
    /// `__context__`.
    fn retry_sync(
        &self,
        py: Python<'_>,
        func: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
        started: Instant,
        mut err: PyErr,
    ) -> PyResult<Py<PyAny>> {
        let mut state = RetryState::new(&*self.config);
        if let Err(reason) = state.begin_attempt_at(started) {
            return Err(errors::retry_error(py, reason, 0, 0.0, err));
        }
        loop {
            // KeyboardInterrupt, SystemExit, GeneratorExit and CancelledError are not failures.
            if !err.is_instance_of::<PyException>(py) {
                return Err(err);
            }
            // The exception object with its traceback, as `except ... as exc` would see it.
            let exc = err.clone_ref(py).into_value(py).into_bound(py).into_any();
            let delay = match self.after_failure(py, &mut state, &exc, false) {
                Ok(delay) => delay,
                Err(None) => return Err(err),
                Err(Some(raise)) => return Err(errors::raised_while_handling(py, raise, &exc)),
            };
            self.clock.sleep_blocking(py, delay)?;
            let now = self.clock.now();
            if let Err(reason) = state.begin_attempt_at(now) {
                return Err(errors::retry_error(
                    py,
                    reason,
                    state.attempts(),
                    state.elapsed_at(now).as_secs_f64(),
                    err,
                ));
            }
            match func.call(args, kwargs) {
                Ok(value) => return Ok(value.unbind()),
                Err(next) => err = next,
            }
        }
    }
}

/// The sync call: the first attempt, then the loop only if it failed.
#[inline]
pub(super) fn run_sync(
    py: Python<'_>,
    policy: &RetryPolicy,
    func: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<Py<PyAny>> {
    // The call starts now: a deadline, a budget's deposit and every `elapsed` count from here.
    let started = policy.clock.now();
    match func.call(args, kwargs) {
        Ok(value) => {
            if let Some(budget) = policy.config.budget() {
                budget.deposit_at(started);
            }
            Ok(value.unbind())
        }
        Err(err) => policy.retry_sync(py, func, args, kwargs, started, err),
    }
}

/// A sync function decorated with a retry policy; calling it runs the retry loop in Rust.
#[pyclass(frozen, dict, module = "tailguard", name = "Retrying")]
pub(crate) struct Retrying {
    pub(super) policy: Py<RetryPolicy>,
    pub(super) func: Py<PyAny>,
}

#[pymethods]
impl Retrying {
    /// The policy and the function, for the cycle collector (`self.get = retry(...)(self._get)`
    /// is a cycle). Fixed at construction; the cycle is broken by clearing the other side (the
    /// instance's `__dict__`, or this wrapper's own, which pyo3 clears).
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.policy)?;
        visit.call(&self.func)
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn __call__(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        run_sync(py, self.policy.get(), self.func.bind(py), args, kwargs)
    }

    /// Binds the wrapper to an instance, so decorated methods work.
    fn __get__(
        slf: &Bound<'_, Self>,
        instance: &Bound<'_, PyAny>,
        _owner: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        convert::bind_method(slf.as_any(), instance)
    }

    /// The policy this function is retried under.
    #[getter]
    fn retry(&self, py: Python<'_>) -> Py<RetryPolicy> {
        self.policy.clone_ref(py)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!("<retrying {}>", convert::short_repr(self.func.bind(py)))
    }
}
