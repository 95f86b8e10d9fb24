//! `tailguard.LatencyHistogram` and `tailguard.RollingHistogram`: the core's lock-free
//! log-linear histograms, recording seconds, answering percentiles within 0.8 %.

use std::time::Duration;

use pyo3::prelude::*;
use tailguard::latency::{LatencyHistogram as CoreHistogram, RollingHistogram as CoreRolling};
use tailguard::time::{AsyncIoTimer, Timer};

use crate::clock::Clock;
use crate::{convert, errors};

/// A percentile `p` checked to be in `[0, 1]`.
fn quantile_arg(p: &Bound<'_, PyAny>) -> PyResult<f64> {
    convert::fraction("p", p, 0.0, true, 1.0)
}

fn latency_arg(seconds: &Bound<'_, PyAny>) -> PyResult<Duration> {
    // The fast path: a float, checked inline.
    if let Ok(float) = seconds.cast::<pyo3::types::PyFloat>() {
        let secs = float.value();
        if (0.0..=18_446_744_073.0).contains(&secs) {
            return Ok(Duration::from_secs_f64(secs));
        }
    }
    convert::seconds("seconds", seconds)
}

/// Records latencies from many threads at once (one atomic increment, no lock) and answers
/// percentiles within 1/128 relative error.
#[pyclass(frozen, module = "tailguard", name = "LatencyHistogram")]
pub(crate) struct LatencyHistogram {
    /// Boxed: the core histogram is aligned to 64 bytes (a cache line), more than a Python
    /// object's memory guarantees, so it cannot live inline in the object.
    pub(crate) inner: Box<CoreHistogram>,
}

#[pymethods]
impl LatencyHistogram {
    #[new]
    fn new() -> Self {
        LatencyHistogram {
            inner: Box::new(CoreHistogram::new()),
        }
    }

    /// Records a latency in seconds (a non-negative number or a timedelta).
    fn record(&self, seconds: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.record(latency_arg(seconds)?);
        Ok(())
    }

    /// Records a latency in whole nanoseconds (as from `time.perf_counter_ns()` differences).
    fn record_ns(&self, nanos: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner
            .record_nanos(convert::int_in("nanos", nanos, 0, u64::MAX)?);
        Ok(())
    }

    /// The `p`-quantile in seconds (`p` in [0, 1]; 0.99 is p99), or `None` if empty.
    fn quantile(&self, p: &Bound<'_, PyAny>) -> PyResult<Option<f64>> {
        Ok(self.inner.quantile(quantile_arg(p)?).map(convert::secs))
    }

    /// How many latencies were recorded.
    #[getter]
    fn count(&self) -> u64 {
        self.inner.count()
    }

    /// The smallest latency recorded, in seconds (exact), or `None`.
    #[getter]
    fn min(&self) -> Option<f64> {
        self.inner.min().map(convert::secs)
    }

    /// The largest latency recorded, in seconds (exact), or `None`.
    #[getter]
    fn max(&self) -> Option<f64> {
        self.inner.max().map(convert::secs)
    }

    /// The mean latency in seconds, or `None`.
    #[getter]
    fn mean(&self) -> Option<f64> {
        self.inner.mean().map(convert::secs)
    }

    /// Adds every sample of `other` to this histogram.
    fn merge(&self, other: &Bound<'_, PyAny>) -> PyResult<()> {
        let other = other
            .cast::<LatencyHistogram>()
            .map_err(|_| convert::type_error("other", "a tailguard.LatencyHistogram", other))?;
        self.inner.merge(&other.get().inner);
        Ok(())
    }

    /// Forgets every sample.
    fn reset(&self) {
        self.inner.reset();
    }

    fn __len__(&self) -> usize {
        usize::try_from(self.inner.count()).unwrap_or(usize::MAX)
    }

    fn __repr__(&self) -> String {
        format!(
            "LatencyHistogram(count={}, p50={}, p99={}, max={})",
            self.inner.count(),
            py_opt(self.inner.quantile(0.5).map(convert::secs)),
            py_opt(self.inner.quantile(0.99).map(convert::secs)),
            py_opt(self.max())
        )
    }
}

/// Percentiles of the recent past only: a ring of histograms, one per slice of the window.
#[pyclass(frozen, module = "tailguard", name = "RollingHistogram")]
pub(crate) struct RollingHistogram {
    inner: CoreRolling,
    clock: Clock,
    /// Records read the coarse clock (the system clock's, when its tick is at most 1/25 of a
    /// slice, as the breaker's measurements do): a sample lands in its slice at most one tick
    /// late, for about a third of the read's cost.
    coarse: bool,
}

#[pymethods]
impl RollingHistogram {
    #[new]
    #[pyo3(signature = (window = None, *, slots = None, clock = None))]
    fn new(
        py: Python<'_>,
        window: Option<&Bound<'_, PyAny>>,
        slots: Option<&Bound<'_, PyAny>>,
        clock: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let window = match window.filter(|w| !w.is_none()) {
            Some(w) => convert::positive_seconds("window", w)?,
            None => Duration::from_secs(10),
        };
        let slots = match slots.filter(|s| !s.is_none()) {
            Some(s) => {
                convert::int_in("slots", s, 1, tailguard::latency::MAX_SLOTS as u64)? as usize
            }
            None => 10,
        };
        let clock = Clock::from_arg(clock)?;
        let inner = CoreRolling::new(window, slots).map_err(|e| errors::from_core(py, &e))?;
        // The window's slices count from the first instant it sees: make that its creation.
        inner.quantile_at(clock.now(), 0.5);
        let tick = AsyncIoTimer.coarse_resolution();
        let coarse = matches!(clock, Clock::System)
            && !tick.is_zero()
            && tick.saturating_mul(25) <= window / slots as u32;
        Ok(RollingHistogram {
            inner,
            clock,
            coarse,
        })
    }

    /// The window's length in seconds.
    #[getter]
    fn window(&self) -> f64 {
        self.inner.window().as_secs_f64()
    }

    /// Records a latency in seconds, observed now.
    fn record(&self, seconds: &Bound<'_, PyAny>) -> PyResult<()> {
        let now = if self.coarse {
            AsyncIoTimer.now_coarse()
        } else {
            self.clock.now()
        };
        self.inner.record_at(now, latency_arg(seconds)?);
        Ok(())
    }

    /// The `p`-quantile of the window ending now, in seconds, or `None` if it is empty.
    fn quantile(&self, p: &Bound<'_, PyAny>) -> PyResult<Option<f64>> {
        let p = quantile_arg(p)?;
        Ok(self
            .inner
            .quantile_at(self.clock.now(), p)
            .map(convert::secs))
    }

    /// How many samples the window ending now holds.
    #[getter]
    fn count(&self) -> u64 {
        self.inner.count_at(self.clock.now())
    }

    /// Forgets every sample.
    fn reset(&self) {
        self.inner.reset();
    }

    fn __repr__(&self) -> String {
        format!(
            "RollingHistogram(window={}, count={})",
            self.window(),
            self.count()
        )
    }
}

impl RollingHistogram {
    /// The time on the histogram's clock.
    #[inline]
    pub(crate) fn now(&self) -> std::time::Instant {
        self.clock.now()
    }

    /// Records the latency of something started at `started` and ended now; returns now.
    #[inline]
    pub(crate) fn record_since(&self, started: std::time::Instant) -> std::time::Instant {
        let now = self.clock.now();
        self.inner
            .record_at(now, now.saturating_duration_since(started));
        now
    }
}

/// `None` or the number, as Python prints them.
fn py_opt(value: Option<f64>) -> String {
    value.map_or_else(|| "None".to_owned(), |v| v.to_string())
}
