//! `tailguard.Throttle`: the core's client-side adaptive throttle on the binding's clock.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;
use tailguard::throttle;

use crate::clock::{Clock, ClockTimer};
use crate::convert::{self, ExceptionFilter};
use crate::errors;

fn throttled_error(py: Python<'_>, rejected: throttle::Rejected) -> PyErr {
    static THROTTLED: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    super::error(
        py,
        &THROTTLED,
        "ThrottledError",
        (rejected.to_string(), rejected.probability()),
    )
}

/// Refuses requests locally, with probability ``max(0, (requests - k * accepts) / (requests +
/// 1))`` over the last ``window`` seconds, while the backend rejects them.
#[pyclass(frozen, subclass, module = "tailguard._native", name = "Throttle")]
pub(crate) struct Throttle {
    inner: throttle::Throttle<ClockTimer>,
    clock: Clock,
    /// Which exceptions mean the backend rejected the request (default: every `Exception`).
    on: ExceptionFilter,
}

impl Throttle {
    /// Whether `exc` (raised by a call) means the backend did not accept it.
    fn rejected_by(&self, py: Python<'_>, exc: &Bound<'_, PyAny>) -> PyResult<bool> {
        match &self.on {
            ExceptionFilter::Default => {
                Ok(exc.is_instance(&py.get_type::<pyo3::exceptions::PyException>())?)
            }
            ExceptionFilter::Types(types) => exc.is_instance(types.bind(py)),
            ExceptionFilter::Predicate(predicate) => predicate.bind(py).call1((exc,))?.is_truthy(),
        }
    }
}

#[pymethods]
impl Throttle {
    #[new]
    #[pyo3(signature = (k = None, *, window = None, buckets = None, seed = None, on = None, clock = None))]
    fn new(
        py: Python<'_>,
        k: Option<&Bound<'_, PyAny>>,
        window: Option<&Bound<'_, PyAny>>,
        buckets: Option<&Bound<'_, PyAny>>,
        seed: Option<&Bound<'_, PyAny>>,
        on: Option<&Bound<'_, PyAny>>,
        clock: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let clock = Clock::from_arg(clock)?;
        let mut builder = throttle::ThrottleBuilder::new();
        if let Some(k) = k {
            builder = builder.k(convert::number("k", k)?);
        }
        if let Some(window) = window {
            builder = builder.window(convert::seconds("window", window)?);
        }
        if let Some(buckets) = buckets {
            builder = builder.buckets(convert::u32_at_least("buckets", buckets, 0)?);
        }
        if let Some(seed) = convert::opt_seed(seed)? {
            builder = builder.seed(seed);
        }
        let on = convert::exception_filter(on)?;
        let inner = builder
            .build_with(ClockTimer(clock.clone()))
            .map_err(|e| errors::from_core(py, &e))?;
        Ok(Throttle { inner, clock, on })
    }

    /// Decides whether to send a request: returns nothing, or raises ``ThrottledError`` (the
    /// refusal counts as a request the backend did not accept). Then report what the backend
    /// did with ``record(accepted)``.
    fn acquire(&self, py: Python<'_>) -> PyResult<()> {
        self.inner
            .try_acquire_at(self.clock.now())
            .map(drop)
            .map_err(|rejected| throttled_error(py, rejected))
    }

    /// Counts a request sent: ``accepted`` if the backend took it (whatever it answered),
    /// ``False`` if it rejected it for overload.
    fn record(&self, accepted: bool) {
        self.inner.record_at(accepted, self.clock.now());
    }

    /// Internal, for the decorators and ``with``: records the outcome of a call that raised
    /// ``exc`` (``None``: returned).
    fn _finish(&self, py: Python<'_>, exc: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let accepted = match exc {
            None => true,
            Some(exc) if exc.is_none() => true,
            Some(exc) => !self.rejected_by(py, exc)?,
        };
        self.record(accepted);
        Ok(())
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<()> {
        self.acquire(py)
    }

    #[pyo3(signature = (_exc_type, exc, _tb))]
    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: &Bound<'_, PyAny>,
        exc: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        // Cancellation and interrupts say nothing about the backend.
        if is_interrupt(py, exc)? {
            return Ok(());
        }
        self._finish(py, Some(exc))
    }

    /// The probability that a request now is refused locally.
    #[getter]
    fn rejection_probability(&self) -> f64 {
        self.inner.rejection_probability_at(self.clock.now())
    }

    /// Requests counted in the window now.
    #[getter]
    fn requests(&self) -> u64 {
        self.inner.counts_at(self.clock.now()).requests
    }

    /// Requests the backend accepted in the window now.
    #[getter]
    fn accepts(&self) -> u64 {
        self.inner.counts_at(self.clock.now()).accepts
    }

    /// The multiplier ``k``.
    #[getter]
    fn k(&self) -> f64 {
        self.inner.k()
    }

    /// The clock: ``None`` for the system clock, or the ``ManualClock`` given.
    #[getter]
    fn clock(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.clock.to_object(py)
    }

    fn __repr__(&self) -> String {
        format!(
            "Throttle(k={}, rejection_probability={})",
            convert::show_f64(self.inner.k()),
            convert::show_f64(self.rejection_probability())
        )
    }
}

/// Whether `exc` is a cancellation or an interrupt (not an `Exception`), which counts as
/// nothing.
pub(crate) fn is_interrupt(py: Python<'_>, exc: &Bound<'_, PyAny>) -> PyResult<bool> {
    if exc.is_none() {
        return Ok(false);
    }
    let exception = py.get_type::<pyo3::exceptions::PyException>();
    Ok(!exc.is_instance(&exception)?)
}
