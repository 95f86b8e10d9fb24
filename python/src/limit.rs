//! `AdaptiveLimiter` and `LimitPermit`: the core's adaptive concurrency limit, on the binding's
//! clock (the system clock or a `ManualClock`). The decorator and the context managers are in
//! `tailguard/_limit.py`.

use std::sync::Mutex;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyType};
use tailguard::limit::{self, Aimd, Fixed, Gradient2, Outcome, Permit, Reason, Rejected};
use tailguard::priority::{Criticality, Shares};

use crate::clock::Clock;
use crate::errors;

/// The Python parameter of a core field.
fn parameter(field: &str) -> &str {
    match field {
        "shares.sheddable" => "sheddable_share",
        "shares.default" => "default_share",
        "fixed.limit" => "limit",
        "aimd.backoff" => "backoff",
        other => other,
    }
}

fn config_error(py: Python<'_>, err: &tailguard::ConfigError) -> PyErr {
    errors::config_error(py, parameter(err.field()), err.message())
}

fn class_of(py: Python<'_>, name: &str) -> PyResult<Criticality> {
    name.parse().map_err(|_| {
        errors::config_error(
            py,
            "criticality",
            format!("must be \"critical\", \"default\" or \"sheddable\", got {name:?}"),
        )
    })
}

fn reason_name(reason: Reason) -> &'static str {
    reason.as_str()
}

/// `tailguard.LimitExceededError` for a refused call.
fn exceeded(py: Python<'_>, rejected: Rejected) -> PyErr {
    static EXCEEDED: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    let ty = match EXCEEDED.import(py, "tailguard._errors", "LimitExceededError") {
        Ok(ty) => ty,
        Err(err) => return err,
    };
    let args = (
        rejected.to_string(),
        reason_name(rejected.reason()),
        rejected.class().as_str(),
        rejected.limit(),
        rejected.in_flight(),
    );
    match ty.call1(args) {
        Ok(value) => PyErr::from_value(value),
        Err(err) => err,
    }
}

/// An adaptive concurrency limit (see the Python class `tailguard.AdaptiveLimiter`).
#[pyclass(module = "tailguard._native", subclass, frozen)]
pub(crate) struct AdaptiveLimiter {
    inner: limit::AdaptiveLimiter,
    clock: Clock,
}

#[pymethods]
impl AdaptiveLimiter {
    #[new]
    #[pyo3(signature = (*, algorithm = "gradient2", limit = None, initial_limit = 20, min_limit = 1, max_limit = 1000, backoff = None, sheddable_share = 0.5, default_share = 0.9, monitor_only = false, probe_interval = Some(60.0), clock = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        algorithm: &str,
        limit: Option<u32>,
        initial_limit: u32,
        min_limit: u32,
        max_limit: u32,
        backoff: Option<f64>,
        sheddable_share: f64,
        default_share: f64,
        monitor_only: bool,
        probe_interval: Option<f64>,
        clock: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let clock = Clock::from_arg(clock)?;
        fn core<T>(py: Python<'_>, r: Result<T, tailguard::ConfigError>) -> PyResult<T> {
            r.map_err(|e| config_error(py, &e))
        }
        let only = |name: &str, given: bool, algo: &str| -> PyResult<()> {
            if given && algorithm != algo {
                return Err(errors::config_error(
                    py,
                    name,
                    format!("is for algorithm=\"{algo}\", not \"{algorithm}\""),
                ));
            }
            Ok(())
        };
        only("limit", limit.is_some(), "fixed")?;
        only("backoff", backoff.is_some(), "aimd")?;
        let mut builder = limit::AdaptiveLimiter::builder()
            .initial_limit(initial_limit)
            .min_limit(min_limit)
            .max_limit(max_limit)
            .monitor_only(monitor_only)
            .shares(core(py, Shares::new(sheddable_share, default_share))?);
        builder = match algorithm {
            "gradient2" => builder.algorithm(Gradient2::new()),
            "aimd" => builder.algorithm(core(py, Aimd::new(backoff.unwrap_or(0.9)))?),
            "fixed" => {
                let Some(limit) = limit else {
                    return Err(errors::config_error(
                        py,
                        "limit",
                        "is required with algorithm=\"fixed\"",
                    ));
                };
                builder.algorithm(core(py, Fixed::new(limit))?)
            }
            other => {
                return Err(errors::config_error(
                    py,
                    "algorithm",
                    format!("must be \"gradient2\", \"aimd\" or \"fixed\", got {other:?}"),
                ))
            }
        };
        builder = match probe_interval {
            None => builder.no_probe(),
            Some(secs) if secs.is_finite() && secs > 0.0 && secs < 1e9 => {
                builder.probe_interval(Duration::from_secs_f64(secs))
            }
            Some(secs) => {
                return Err(errors::config_error(
                    py,
                    "probe_interval",
                    format!("must be a positive number of seconds or None, got {secs}"),
                ))
            }
        };
        Ok(AdaptiveLimiter {
            inner: core(py, builder.build())?,
            clock,
        })
    }

    /// Admits a call of `criticality` ("critical", "default" or "sheddable") now, or raises
    /// `tailguard.LimitExceededError`.
    #[pyo3(signature = (criticality = "default"))]
    fn acquire(&self, py: Python<'_>, criticality: &str) -> PyResult<LimitPermit> {
        let class = class_of(py, criticality)?;
        match self.inner.try_acquire_class_at(class, self.clock.now()) {
            Ok(permit) => Ok(LimitPermit {
                permit: Mutex::new(Some(permit)),
                clock: self.clock.clone(),
            }),
            Err(rejected) => Err(exceeded(py, rejected)),
        }
    }

    /// The current limit.
    #[getter]
    fn limit(&self) -> u32 {
        self.inner.limit()
    }

    /// Calls in flight now.
    #[getter]
    fn in_flight(&self) -> u32 {
        self.inner.in_flight()
    }

    /// Whether it only counts what it would refuse.
    #[getter]
    fn monitor_only(&self) -> bool {
        self.inner.is_monitor_only()
    }

    /// A snapshot: limit, in_flight, samples, probes, probing, slow_start, monitor_only, and
    /// rejected: {reason: {class: count}}.
    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let m = self.inner.metrics();
        let out = PyDict::new(py);
        out.set_item("limit", m.limit)?;
        out.set_item("in_flight", m.in_flight)?;
        out.set_item("samples", m.samples)?;
        out.set_item("probes", m.probes)?;
        out.set_item("probing", m.probing)?;
        out.set_item("slow_start", m.slow_start)?;
        out.set_item("monitor_only", m.monitor_only)?;
        let rejected = PyDict::new(py);
        for reason in Reason::ALL {
            let by_class = PyDict::new(py);
            for class in Criticality::ALL {
                by_class.set_item(class.as_str(), m.rejected(reason, class))?;
            }
            rejected.set_item(reason.as_str(), by_class)?;
        }
        out.set_item("rejected", rejected)?;
        Ok(out)
    }

    fn __repr__(&self) -> String {
        format!(
            "AdaptiveLimiter(limit={}, in_flight={})",
            self.inner.limit(),
            self.inner.in_flight()
        )
    }
}

/// Permission for one call: report it with `success()`, `dropped()` (timed out or shed further
/// down), `ignore()` or `record(outcome)`; released as a drop if garbage-collected unreported.
#[pyclass(module = "tailguard._native", frozen)]
pub(crate) struct LimitPermit {
    permit: Mutex<Option<Permit>>,
    clock: Clock,
}

impl LimitPermit {
    fn take(&self) -> Option<Permit> {
        self.permit.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

#[pymethods]
impl LimitPermit {
    /// The call finished: its latency is a sample.
    fn success(&self) {
        if let Some(permit) = self.take() {
            permit.record_at(Outcome::Success, self.clock.now());
        }
    }

    /// The call was dropped because of load (a timeout, a 503 further down).
    fn dropped(&self) {
        if let Some(permit) = self.take() {
            permit.record_at(Outcome::Dropped, self.clock.now());
        }
    }

    /// Release without a sample: the call says nothing about load.
    fn ignore(&self) {
        if let Some(permit) = self.take() {
            permit.ignore();
        }
    }

    /// Reports "success", "dropped" or "ignored". A second report is ignored.
    fn record(&self, py: Python<'_>, outcome: &str) -> PyResult<()> {
        match outcome {
            "success" => self.success(),
            "dropped" => self.dropped(),
            "ignored" => self.ignore(),
            other => {
                return Err(errors::config_error(
                    py,
                    "outcome",
                    format!("must be \"success\", \"dropped\" or \"ignored\", got {other:?}"),
                ))
            }
        }
        Ok(())
    }

    /// Whether it has been reported.
    #[getter]
    fn done(&self) -> bool {
        self.permit
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }

    fn __repr__(&self) -> String {
        format!("LimitPermit(done={})", self.done())
    }
}
