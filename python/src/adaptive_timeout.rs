//! `tailguard.AdaptiveTimeout`: the core's per-destination attempt timeout, a percentile of
//! recent latency × a factor within a floor and a ceiling, with false-timeout accounting.

use std::time::Duration;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use tailguard::adaptive_timeout::AdaptiveTimeout as Core;

use crate::clock::Clock;
use crate::{convert, errors};

/// An attempt timeout learnt from recent latency: ``percentile`` × ``factor``, within
/// ``floor`` and ``ceiling`` (seconds); the floor until ``min_samples`` are known.
#[pyclass(frozen, module = "tailguard", name = "AdaptiveTimeout")]
pub(crate) struct AdaptiveTimeout {
    inner: Core,
    clock: Clock,
}

fn opt<'a, 'py>(arg: Option<&'a Bound<'py, PyAny>>) -> Option<&'a Bound<'py, PyAny>> {
    arg.filter(|a| !a.is_none())
}

impl AdaptiveTimeout {
    /// An attempt completed in time after `latency` (the pipeline's sync fast path, which
    /// measured it on the pipeline's clock).
    pub(crate) fn record_latency(&self, latency: Duration) {
        self.inner.record_at(self.clock.now(), latency);
    }
}

#[pymethods]
impl AdaptiveTimeout {
    #[new]
    #[pyo3(signature = (
        percentile = None, *, factor = None, floor = None, ceiling = None, min_samples = None,
        window = None, slots = None, clock = None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        percentile: Option<&Bound<'_, PyAny>>,
        factor: Option<&Bound<'_, PyAny>>,
        floor: Option<&Bound<'_, PyAny>>,
        ceiling: Option<&Bound<'_, PyAny>>,
        min_samples: Option<&Bound<'_, PyAny>>,
        window: Option<&Bound<'_, PyAny>>,
        slots: Option<&Bound<'_, PyAny>>,
        clock: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let mut builder = Core::builder();
        if let Some(p) = opt(percentile) {
            builder = builder.percentile(convert::number("percentile", p)?);
        }
        if let Some(f) = opt(factor) {
            builder = builder.factor(convert::number("factor", f)?);
        }
        if let Some(f) = opt(floor) {
            builder = builder.floor(convert::seconds("floor", f)?);
        }
        if let Some(c) = opt(ceiling) {
            builder = builder.ceiling(convert::seconds("ceiling", c)?);
        }
        if let Some(n) = opt(min_samples) {
            builder = builder.min_samples(convert::int_in("min_samples", n, 0, u64::MAX)?);
        }
        let window_length = match opt(window) {
            Some(w) => convert::positive_seconds("window", w)?,
            None => Duration::from_secs(10),
        };
        let slot_count = match opt(slots) {
            Some(s) => {
                convert::int_in("slots", s, 1, tailguard::latency::MAX_SLOTS as u64)? as usize
            }
            None => 10,
        };
        builder = builder.window(window_length, slot_count);
        let clock = Clock::from_arg(clock)?;
        let inner = builder.build().map_err(|e| {
            let renamed = match e.field() {
                "window.duration" => tailguard::ConfigError::new("window", e.message().to_owned()),
                "window.slots" => tailguard::ConfigError::new("slots", e.message().to_owned()),
                _ => e,
            };
            errors::from_core(py, &renamed)
        })?;
        // The window's slices count from the first instant it sees: make that its creation.
        inner.timeout_at(clock.now());
        Ok(AdaptiveTimeout { inner, clock })
    }

    /// The attempt timeout now, in seconds.
    fn timeout(&self) -> f64 {
        convert::secs(self.inner.timeout_at(self.clock.now()))
    }

    /// An attempt completed in time (success or failure) after ``seconds``.
    fn record(&self, seconds: &Bound<'_, PyAny>) -> PyResult<()> {
        let latency = convert::seconds("seconds", seconds)?;
        self.inner.record_at(self.clock.now(), latency);
        Ok(())
    }

    /// An attempt was cut by the timeout after ``seconds``: recorded as a lower bound on its
    /// latency (leaving it out would shrink the timeout), and counted.
    fn record_timeout(&self, seconds: &Bound<'_, PyAny>) -> PyResult<()> {
        let elapsed = convert::seconds("seconds", seconds)?;
        self.inner.record_timeout_at(self.clock.now(), elapsed);
        Ok(())
    }

    /// The outcome of an attempt the timeout cut, learnt later (left to finish in the
    /// background): ``succeeded`` makes it a false timeout.
    fn record_late(&self, succeeded: bool) {
        self.inner.record_late(succeeded);
    }

    /// Attempts that completed in time.
    #[getter]
    fn completed(&self) -> u64 {
        self.inner.stats().completed
    }

    /// Attempts the timeout cut.
    #[getter]
    fn timed_out(&self) -> u64 {
        self.inner.stats().timed_out
    }

    /// The share of attempts the timeout cut, or ``None`` before any.
    #[getter]
    fn timeout_rate(&self) -> Option<f64> {
        self.inner.stats().timeout_rate()
    }

    /// Of the cut attempts whose outcome was learnt (``record_late``), the share that
    /// succeeded: an estimate of how many timeouts were false. ``None`` without any.
    #[getter]
    fn false_timeout_rate(&self) -> Option<f64> {
        self.inner.stats().false_timeout_rate()
    }

    /// The estimated share of all attempts cut although they would have succeeded.
    #[getter]
    fn false_timeout_share(&self) -> Option<f64> {
        self.inner.stats().false_timeout_share()
    }

    /// A context manager for one sync attempt: yields the timeout in seconds (pass it to
    /// your client), and on exit records the attempt's latency, or, if it raised a
    /// ``TimeoutError``, records it as cut.
    fn attempt(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        static ATTEMPT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let attempt = ATTEMPT.import(slf.py(), "tailguard._adaptive_timeout", "Attempt")?;
        Ok(attempt.call1((slf,))?.unbind())
    }

    /// Awaits ``factory()`` within the timeout: its result, or
    /// :class:`~tailguard.AttemptTimeoutError` (after cancelling it) when it runs past.
    /// Records the latency, or the cut, either way.
    fn run(slf: &Bound<'_, Self>, factory: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        static RUN: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        if !factory.is_callable() {
            return Err(convert::type_error(
                "factory",
                "a callable returning an awaitable",
                factory,
            ));
        }
        let run = RUN.import(slf.py(), "tailguard._adaptive_timeout", "run_with_timeout")?;
        Ok(run.call1((slf, factory))?.unbind())
    }

    /// The clock it reads (``None``: the system's monotonic clock).
    #[getter]
    fn clock(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.clock.to_object(py)
    }

    fn __repr__(&self) -> String {
        let stats = self.inner.stats();
        format!(
            "AdaptiveTimeout(timeout={}, completed={}, timed_out={})",
            convert::show_f64(convert::secs(self.inner.attempt_timeout())),
            stats.completed,
            stats.timed_out
        )
    }
}
