//! `BreakerPermit`: one admitted call, reported once or released.

use std::sync::Mutex;

use pyo3::gc::{PyTraverseError, PyVisit};
use pyo3::prelude::*;
use tailguard::breaker::{Outcome, Ticket};

use super::CircuitBreaker;

/// Permission for one call. Report it once; a permit dropped unreported counts as neither
/// success nor failure, and frees its probe slot.
#[pyclass(frozen, module = "tailguard")]
pub(crate) struct BreakerPermit {
    pub(super) breaker: Py<CircuitBreaker>,
    pub(super) ticket: Mutex<Option<Ticket>>,
    pub(super) is_probe: bool,
}

impl BreakerPermit {
    fn take(&self) -> Option<Ticket> {
        self.ticket.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

#[pymethods]
impl BreakerPermit {
    /// The breaker, for the cycle collector (a permit kept by the object that listens to its
    /// breaker is part of a cycle).
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.breaker)
    }

    /// The call worked.
    fn success(&self) {
        if let Some(ticket) = self.take() {
            let breaker = self.breaker.get();
            breaker
                .machine
                .record_at(ticket, Outcome::Success, breaker.clock.now());
        }
    }

    /// The call failed in a way that says the dependency is unhealthy.
    fn failure(&self) {
        if let Some(ticket) = self.take() {
            let breaker = self.breaker.get();
            breaker
                .machine
                .record_at(ticket, Outcome::Failure, breaker.clock.now());
        }
    }

    /// Reports by outcome: `None` is a success; an exception counts as a failure if the
    /// breaker's `on` says so, and as neither otherwise.
    #[pyo3(signature = (exc = None))]
    fn record(&self, py: Python<'_>, exc: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        match self.take() {
            Some(ticket) => self.breaker.get().finish(py, ticket, exc),
            None => Ok(()),
        }
    }

    /// Gives the permit back unreported (the call was abandoned).
    fn release(&self) {
        if let Some(ticket) = self.take() {
            self.breaker.get().machine.release(ticket);
        }
    }

    /// Whether this is a half-open probe.
    #[getter]
    fn is_probe(&self) -> bool {
        self.is_probe
    }
}

impl Drop for BreakerPermit {
    fn drop(&mut self) {
        if let Some(ticket) = self.take() {
            self.breaker.get().machine.release(ticket);
        }
    }
}
