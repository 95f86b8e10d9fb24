//! `Guarded`: a sync function behind a breaker, acquire-call-record all in Rust.

use pyo3::gc::{PyTraverseError, PyVisit};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use tailguard::breaker::Outcome;

use super::CircuitBreaker;
use crate::convert;

/// Acquire, call, record: the sync path, all here.
#[inline]
pub(super) fn guarded_call(
    py: Python<'_>,
    breaker: &CircuitBreaker,
    func: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<Py<PyAny>> {
    let ticket = breaker.acquire_ticket(py)?;
    match func.call(args, kwargs) {
        Ok(value) => {
            breaker
                .machine
                .record_at(ticket, Outcome::Success, breaker.clock.now());
            Ok(value.unbind())
        }
        Err(err) => {
            // As `except ... as exc` sees it: with its traceback; and what the predicate raises
            // while classifying it has it as `__context__`.
            let exc = err.clone_ref(py).into_value(py).into_bound(py).into_any();
            if let Err(raised) = breaker.finish(py, ticket, Some(&exc)) {
                return Err(crate::errors::raised_while_handling(py, raised, &exc));
            }
            Err(err)
        }
    }
}

/// A sync function guarded by a circuit breaker.
#[pyclass(frozen, dict, module = "tailguard", name = "Guarded")]
pub(crate) struct Guarded {
    pub(super) breaker: Py<CircuitBreaker>,
    pub(super) func: Py<PyAny>,
}

#[pymethods]
impl Guarded {
    /// The breaker and the function, for the cycle collector (`self.get = breaker(self._get)`
    /// is a cycle); the other side of such a cycle (an instance's `__dict__`, or this wrapper's,
    /// which pyo3 clears) is what breaks it.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.breaker)?;
        visit.call(&self.func)
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn __call__(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        guarded_call(py, self.breaker.get(), self.func.bind(py), args, kwargs)
    }

    fn __get__(
        slf: &Bound<'_, Self>,
        instance: &Bound<'_, PyAny>,
        _owner: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        convert::bind_method(slf.as_any(), instance)
    }

    /// The breaker guarding this function.
    #[getter]
    fn breaker(&self, py: Python<'_>) -> Py<CircuitBreaker> {
        self.breaker.clone_ref(py)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!("<guarded {}>", convert::short_repr(self.func.bind(py)))
    }
}
