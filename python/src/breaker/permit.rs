//! `BreakerPermit`: one admitted call, reported once or released; and [`Tickets`], where the
//! async decorator keeps its calls' tickets instead (no object per call).

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

/// The tickets of the async decorator's calls in flight, each under a small number the coroutine
/// hands back when its call ends (`CircuitBreaker._enter` / `_succeeded` / `_settle`): no Python
/// object per call, where a [`BreakerPermit`] is one allocation and its release. The numbers of
/// ended calls are reused first, so they stay below the number of calls in flight (and a number
/// below 257 is a cached Python int).
///
/// The coroutine returns its ticket on every way out (success, exception, cancellation, close),
/// so there is no release on drop; a ticket lost anyway (an interrupt between two bytecodes)
/// costs one entry, and a lost probe's slot is reclaimed after `half_open_timeout`.
#[derive(Default)]
pub(crate) struct Tickets {
    held: Vec<Option<Ticket>>,
    free: Vec<usize>,
}

impl Tickets {
    /// Keeps `ticket`; returns its number.
    #[inline]
    pub(super) fn insert(&mut self, ticket: Ticket) -> usize {
        match self.free.pop() {
            Some(number) => {
                self.held[number] = Some(ticket);
                number
            }
            None => {
                self.held.push(Some(ticket));
                self.held.len() - 1
            }
        }
    }

    /// Takes the ticket kept under `number` out (`None` if there is none: a number not handed
    /// out, or handed back already).
    #[inline]
    pub(super) fn take(&mut self, number: usize) -> Option<Ticket> {
        let ticket = self.held.get_mut(number)?.take()?;
        self.free.push(number);
        Some(ticket)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tailguard::breaker::CircuitBreakerBuilder;

    use super::Tickets;

    #[test]
    fn numbers_are_reused_and_each_ticket_is_taken_once() {
        let now = Instant::now();
        let machine = CircuitBreakerBuilder::new()
            .build_state_machine_at(now)
            .unwrap();
        let mut tickets = Tickets::default();
        let a = tickets.insert(machine.try_acquire_at(now).unwrap());
        let b = tickets.insert(machine.try_acquire_at(now).unwrap());
        assert_eq!((a, b), (0, 1));
        machine.release(tickets.take(a).unwrap());
        assert!(tickets.take(a).is_none(), "a ticket is handed back once");
        assert!(tickets.take(7).is_none(), "a number never handed out");
        let c = tickets.insert(machine.try_acquire_at(now).unwrap());
        assert_eq!(c, a, "the number of an ended call is reused first");
        machine.release(tickets.take(b).unwrap());
        machine.release(tickets.take(c).unwrap());
    }
}
