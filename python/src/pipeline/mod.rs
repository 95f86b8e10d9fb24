//! `tailguard.Pipeline`'s sync fast path: a decorated sync function's call runs here in Rust
//! while its first attempt succeeds (clock, breaker ticket, the call, the latency window); the
//! first failure hands the call, its ticket and its start over to the Python loop
//! (`tailguard/_pipeline.py`, `Pipeline._retry_sync`), which drives the retry's state machine.

use pyo3::gc::{PyTraverseError, PyVisit};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::adaptive_timeout::AdaptiveTimeout;
use crate::breaker::CircuitBreaker;
use crate::convert;
use crate::latency::RollingHistogram;

/// A sync function decorated with a `tailguard.Pipeline`.
#[pyclass(frozen, dict, module = "tailguard", name = "Piped")]
pub(crate) struct Piped {
    pipeline: Py<PyAny>,
    func: Py<PyAny>,
    breaker: Option<Py<CircuitBreaker>>,
    latency: Py<RollingHistogram>,
    /// `get` of the `ContextVar` of the open `scope()` blocks: a call inside one takes the
    /// Python path.
    scopes: Py<PyAny>,
    /// Each call's deadline in seconds from its start, if any.
    deadline: Option<f64>,
    /// Whether the fast path applies (no retry state needed before the first attempt).
    fast: bool,
    /// The pipeline's adaptive attempt timeout, if any: a success is recorded into it too.
    adaptive: Option<Py<AdaptiveTimeout>>,
}

#[pymethods]
impl Piped {
    #[new]
    #[pyo3(signature = (pipeline, func, breaker, latency, scopes, deadline, fast, adaptive = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        pipeline: Py<PyAny>,
        func: Py<PyAny>,
        breaker: Option<Py<CircuitBreaker>>,
        latency: Py<RollingHistogram>,
        scopes: &Bound<'_, PyAny>,
        deadline: Option<f64>,
        fast: bool,
        adaptive: Option<Py<AdaptiveTimeout>>,
    ) -> PyResult<Self> {
        let scopes = scopes.getattr("get")?.unbind();
        Ok(Piped {
            pipeline,
            func,
            breaker,
            latency,
            scopes,
            deadline,
            fast,
            adaptive,
        })
    }

    /// What the wrapper holds, for the cycle collector. Fixed at construction.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.pipeline)?;
        visit.call(&self.func)?;
        visit.call(&self.breaker)?;
        visit.call(&self.latency)?;
        visit.call(&self.adaptive)?;
        visit.call(&self.scopes)
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn __call__(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let func = self.func.bind(py);
        let pipeline = self.pipeline.bind(py);
        let in_scope = !self.scopes.bind(py).call0()?.is_empty()?;
        if !self.fast || in_scope {
            let kwargs = kwargs.cloned().unwrap_or_else(|| PyDict::new(py));
            return Ok(pipeline
                .call_method1(intern!(py, "_call_sync"), (func, args, kwargs))?
                .unbind());
        }
        let latency = self.latency.get();
        let started = latency.now();
        let ticket = match &self.breaker {
            Some(breaker) => Some(breaker.get().pipeline_acquire(py)?),
            None => None,
        };
        match func.call(args, kwargs) {
            Ok(value) => {
                if let (Some(breaker), Some(ticket)) = (&self.breaker, ticket) {
                    breaker.get().pipeline_succeeded(ticket);
                }
                let ended = latency.record_since(started);
                if let Some(adaptive) = &self.adaptive {
                    adaptive
                        .get()
                        .record_latency(ended.saturating_duration_since(started));
                }
                Ok(value.unbind())
            }
            Err(err) => {
                // Hand over to the Python loop: the ticket under a number, the start as a reading
                // of the pipeline's clock.
                let number = match (&self.breaker, ticket) {
                    (Some(breaker), Some(ticket)) => Some(breaker.get().pipeline_keep(ticket)),
                    _ => None,
                };
                let ago = latency
                    .now()
                    .saturating_duration_since(started)
                    .as_secs_f64();
                let reading: f64 = pipeline.getattr(intern!(py, "_now"))?.call0()?.extract()?;
                let started = reading - ago;
                let deadline = self.deadline.map(|d| started + d);
                let exc = err.into_value(py).into_any();
                let slow = pipeline.getattr(intern!(py, "_retry_sync"))?;
                let kwargs = kwargs.cloned().unwrap_or_else(|| PyDict::new(py));
                let call_args = (
                    func,
                    args,
                    kwargs,
                    started,
                    deadline,
                    number,
                    py.None(),
                    exc,
                    started,
                );
                Ok(slow.call1(call_args)?.unbind())
            }
        }
    }

    /// Binds the wrapper to an instance, so decorated methods work.
    fn __get__(
        slf: &Bound<'_, Self>,
        instance: &Bound<'_, PyAny>,
        _owner: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        convert::bind_method(slf.as_any(), instance)
    }

    /// The pipeline this function is called through.
    #[getter]
    fn pipeline(&self, py: Python<'_>) -> Py<PyAny> {
        self.pipeline.clone_ref(py)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!("<piped {}>", convert::short_repr(self.func.bind(py)))
    }
}
