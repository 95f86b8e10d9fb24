//! `tailguard.Backoff`: the core's capped, jittered, seedable delay sequence, as a Python
//! iterable of seconds.

use std::sync::Mutex;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyString;
use tailguard::backoff::{Backoff as CoreBackoff, BackoffBuilder, Jitter, MAX_DELAY};

use crate::{convert, errors};

/// A sequence of retry delays in seconds: constant, linear or exponential, capped, jittered.
///
/// Jitter defaults to `"full"` for linear and exponential backoff (each delay drawn from
/// `[0, t]`, so clients that failed together do not retry together) and to `"none"` for
/// constant backoff (a constant delay is exactly that delay); pass `jitter=` to choose.
///
/// Iterating a `Backoff` starts the sequence from the beginning each time. A seeded backoff
/// yields the same delays on every iteration; an unseeded one draws fresh random delays.
/// Inside a retry policy, a seeded backoff gives the policy's first retried call exactly the
/// delays `take(n)` shows, and each later call its own reproducible stream (derived from the
/// seed and the call's number), so concurrent calls do not retry in lockstep. A circuit
/// breaker's open durations follow `take(n)` too.
#[pyclass(frozen, module = "tailguard", name = "Backoff")]
pub(crate) struct Backoff {
    pub(crate) inner: CoreBackoff,
    kind: &'static str,
    step: f64,
    factor: f64,
}

/// The settings common to every kind of backoff.
struct Common<'a, 'py> {
    max_delay: Option<&'a Bound<'py, PyAny>>,
    max_retries: Option<&'a Bound<'py, PyAny>>,
    jitter: Option<&'a Bound<'py, PyAny>>,
    seed: Option<&'a Bound<'py, PyAny>>,
}

fn jitter_arg(obj: Option<&Bound<'_, PyAny>>, default: Jitter) -> PyResult<Jitter> {
    // `None` is the kind's default, as for every other optional parameter; "none" is no jitter.
    let Some(obj) = obj.filter(|obj| !obj.is_none()) else {
        return Ok(default);
    };
    let Ok(name) = obj.cast::<PyString>() else {
        return Err(convert::type_error(
            "jitter",
            "one of \"none\", \"full\", \"equal\", \"decorrelated\"",
            obj,
        ));
    };
    let name = name.to_cow()?;
    Jitter::from_name(&name).ok_or_else(|| {
        errors::config_error(
            obj.py(),
            "jitter",
            format!("must be one of \"none\", \"full\", \"equal\", \"decorrelated\", got {name:?}"),
        )
    })
}

impl Backoff {
    fn build(
        py: Python<'_>,
        mut builder: BackoffBuilder,
        kind: &'static str,
        step: f64,
        factor: f64,
        common: Common<'_, '_>,
    ) -> PyResult<Self> {
        if let Some(cap) = convert::opt_seconds("max_delay", common.max_delay)? {
            builder = builder.max_delay(cap);
        }
        if let Some(retries) = common.max_retries.filter(|r| !r.is_none()) {
            builder = builder.max_retries(convert::u32_at_least("max_retries", retries, 0)?);
        }
        let default_jitter = if kind == "constant" {
            Jitter::None
        } else {
            Jitter::Full
        };
        builder = builder.jitter(jitter_arg(common.jitter, default_jitter)?);
        if let Some(seed) = convert::opt_seed(common.seed)? {
            builder = builder.seed(seed);
        }
        let inner = builder.build().map_err(|e| errors::from_core(py, &e))?;
        Ok(Backoff {
            inner,
            kind,
            step,
            factor,
        })
    }

    /// A fresh copy at the start of the sequence: for a seeded backoff, the stream a retry
    /// policy gives its first retried call (stream 0 of the seed), every time; a new random one
    /// otherwise.
    pub(crate) fn fresh(&self) -> CoreBackoff {
        if self.inner.seed().is_some() {
            return self.inner.fork(0);
        }
        let mut copy = self.inner.clone();
        copy.reseed(fastrand::u64(..));
        copy.reset();
        copy
    }
}

#[pymethods]
impl Backoff {
    /// The same `delay` before every retry: exactly `delay` (no jitter) unless `jitter=`
    /// asks for some.
    #[staticmethod]
    #[pyo3(signature = (delay, *, max_retries = None, jitter = None, seed = None))]
    fn constant(
        py: Python<'_>,
        delay: &Bound<'_, PyAny>,
        max_retries: Option<&Bound<'_, PyAny>>,
        jitter: Option<&Bound<'_, PyAny>>,
        seed: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let delay = convert::seconds("delay", delay)?;
        Backoff::build(
            py,
            CoreBackoff::constant(delay),
            "constant",
            0.0,
            1.0,
            Common {
                max_delay: None,
                max_retries,
                jitter,
                seed,
            },
        )
    }

    /// `base`, `base + step`, `base + 2·step`, ..., capped, then jittered.
    #[staticmethod]
    #[pyo3(signature = (base, step, *, max_delay = None, max_retries = None, jitter = None, seed = None))]
    #[allow(clippy::too_many_arguments)]
    fn linear(
        py: Python<'_>,
        base: &Bound<'_, PyAny>,
        step: &Bound<'_, PyAny>,
        max_delay: Option<&Bound<'_, PyAny>>,
        max_retries: Option<&Bound<'_, PyAny>>,
        jitter: Option<&Bound<'_, PyAny>>,
        seed: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let base = convert::seconds("base", base)?;
        let step = convert::seconds("step", step)?;
        Backoff::build(
            py,
            CoreBackoff::linear(base, step),
            "linear",
            step.as_secs_f64(),
            1.0,
            Common {
                max_delay,
                max_retries,
                jitter,
                seed,
            },
        )
    }

    /// `base`, `base·factor`, `base·factor²`, ..., capped, then jittered.
    #[staticmethod]
    #[pyo3(signature = (base, *, factor = None, max_delay = None, max_retries = None, jitter = None, seed = None))]
    #[allow(clippy::too_many_arguments)]
    fn exponential(
        py: Python<'_>,
        base: &Bound<'_, PyAny>,
        factor: Option<&Bound<'_, PyAny>>,
        max_delay: Option<&Bound<'_, PyAny>>,
        max_retries: Option<&Bound<'_, PyAny>>,
        jitter: Option<&Bound<'_, PyAny>>,
        seed: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let base = convert::seconds("base", base)?;
        let mut builder = CoreBackoff::exponential(base);
        let mut factor_value = 2.0;
        if let Some(factor) = factor.filter(|f| !f.is_none()) {
            factor_value = convert::number("factor", factor)?;
            builder = builder.factor(factor_value);
        }
        Backoff::build(
            py,
            builder,
            "exponential",
            0.0,
            factor_value,
            Common {
                max_delay,
                max_retries,
                jitter,
                seed,
            },
        )
    }

    /// The default: exponential from 0.1 s, factor 2, capped at 10 s, full jitter, unlimited.
    #[staticmethod]
    pub(crate) fn default() -> Self {
        Backoff {
            inner: CoreBackoff::default(),
            kind: "exponential",
            step: 0.0,
            factor: 2.0,
        }
    }

    /// `"constant"`, `"linear"` or `"exponential"`.
    #[getter]
    fn kind(&self) -> &'static str {
        self.kind
    }

    /// The delay before the first retry, before jitter, in seconds.
    #[getter]
    fn base(&self) -> f64 {
        self.inner.base().as_secs_f64()
    }

    /// The growth per retry of a linear backoff, in seconds (0 for the other kinds).
    #[getter]
    fn step(&self) -> f64 {
        self.step
    }

    /// The growth factor of an exponential backoff (1 for the other kinds).
    #[getter]
    fn factor(&self) -> f64 {
        self.factor
    }

    /// The cap in seconds, or `None` if uncapped.
    #[getter]
    fn max_delay(&self) -> Option<f64> {
        let cap = self.inner.max_delay();
        (cap != MAX_DELAY).then_some(cap.as_secs_f64())
    }

    /// How many delays the sequence yields, or `None` if unlimited.
    #[getter]
    fn max_retries(&self) -> Option<u32> {
        self.inner.max_retries()
    }

    /// `"none"`, `"full"`, `"equal"` or `"decorrelated"`.
    #[getter]
    fn jitter(&self) -> &'static str {
        self.inner.jitter().name()
    }

    /// The seed, if one was given.
    #[getter]
    fn seed(&self) -> Option<u64> {
        self.inner.seed()
    }

    /// The first `n` delays (fewer if the sequence is shorter), in seconds.
    fn take(&self, n: &Bound<'_, PyAny>) -> PyResult<Vec<f64>> {
        let n = convert::int_in("n", n, 0, 1_000_000)? as usize;
        Ok(self.fresh().take(n).map(|d| d.as_secs_f64()).collect())
    }

    fn __iter__(&self) -> BackoffIterator {
        BackoffIterator {
            inner: Mutex::new(self.fresh()),
        }
    }

    pub(crate) fn __repr__(&self) -> String {
        let mut text = format!("Backoff.{}(base={}", self.kind, self.base());
        match self.kind {
            "linear" => text += &format!(", step={}", self.step),
            "exponential" => text += &format!(", factor={}", self.factor),
            _ => {}
        }
        if let Some(cap) = self.max_delay() {
            text += &format!(", max_delay={cap}");
        }
        if let Some(retries) = self.inner.max_retries() {
            text += &format!(", max_retries={retries}");
        }
        text += &format!(", jitter={:?}", self.inner.jitter().name());
        if let Some(seed) = self.inner.seed() {
            text += &format!(", seed={seed}");
        }
        text + ")"
    }
}

/// One pass over a [`Backoff`]'s delays, in seconds.
#[pyclass(frozen, module = "tailguard")]
pub(crate) struct BackoffIterator {
    inner: Mutex<CoreBackoff>,
}

#[pymethods]
impl BackoffIterator {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self) -> Option<f64> {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        inner.next().map(|d: Duration| d.as_secs_f64())
    }

    fn __length_hint__(&self) -> usize {
        let inner = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Unlimited sequences give no hint, so `list()` does not try to preallocate forever.
        inner.size_hint().1.unwrap_or(0)
    }
}
