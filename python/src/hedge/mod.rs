//! `tailguard.Hedge`: the core's hedging policy (fixed or adaptive delay at a percentile of
//! recent primary latency, attempt cap, budget of extra load). The asyncio orchestration (tasks,
//! waiting, cancelling the losers) is in `tailguard/_hedge.py`; every decision is made by the
//! core's sans-IO `HedgeState`, one per call, wrapped here as `HedgeCall`.

mod call;

use std::time::Duration;

use pyo3::gc::{PyTraverseError, PyVisit};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyString;
use tailguard::hedge::{
    Hedge as CoreHedge, HedgeBudget as CoreHedgeBudget, HedgeState as CoreHedgeState,
    HedgeStats as CoreHedgeStats, MAX_ATTEMPTS,
};

pub(crate) use self::call::HedgeCall;
use crate::clock::Clock;
use crate::{convert, errors};

/// A cap on the extra load hedging adds: hedges ≤ `ratio` × primaries, plus a floor of
/// `min_per_second` hedges a second (a reserve that starts full, so hedging works from the first
/// call); share one between policies to cap them together.
#[pyclass(frozen, module = "tailguard", name = "HedgeBudget")]
pub(crate) struct HedgeBudget {
    inner: CoreHedgeBudget,
}

fn hedge_budget(
    py: Python<'_>,
    ratio: f64,
    max_burst: u32,
    min_per_second: u32,
) -> PyResult<CoreHedgeBudget> {
    let built = CoreHedgeBudget::builder()
        .ratio(ratio)
        .max_burst(max_burst)
        .min_per_second(min_per_second)
        .build();
    built.map_err(|e| {
        // The core names it `budget_ratio` (its builder method); here it is `ratio`.
        let field = if e.field() == "budget_ratio" {
            "ratio"
        } else {
            e.field()
        };
        errors::config_error(py, field, e.message())
    })
}

#[pymethods]
impl HedgeBudget {
    #[new]
    #[pyo3(signature = (ratio, *, max_burst = None, min_per_second = None))]
    fn new(
        py: Python<'_>,
        ratio: &Bound<'_, PyAny>,
        max_burst: Option<&Bound<'_, PyAny>>,
        min_per_second: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let ratio = convert::number("ratio", ratio)?;
        let max_burst = match max_burst.filter(|m| !m.is_none()) {
            Some(m) => convert::u32_at_least("max_burst", m, 1)?,
            None => CoreHedgeBudget::DEFAULT_MAX_BURST,
        };
        let min_per_second = match min_per_second.filter(|m| !m.is_none()) {
            Some(m) => convert::u32_at_least("min_per_second", m, 0)?,
            None => CoreHedgeBudget::DEFAULT_MIN_PER_SECOND,
        };
        Ok(HedgeBudget {
            inner: hedge_budget(py, ratio, max_burst, min_per_second)?,
        })
    }

    /// Hedges allowed per primary call.
    #[getter]
    fn ratio(&self) -> f64 {
        self.inner.ratio()
    }

    /// The most hedges that can be saved up.
    #[getter]
    fn max_burst(&self) -> u64 {
        self.inner.max_burst()
    }

    /// Hedges a second allowed whatever the traffic (and the most the reserve holds).
    #[getter]
    fn min_per_second(&self) -> u32 {
        self.inner.min_per_second()
    }

    /// How many whole hedges could be sent now.
    fn available(&self) -> u64 {
        self.inner.available()
    }

    /// Credits one primary call (hedging policies do this themselves).
    fn deposit(&self) {
        self.inner.deposit();
    }

    /// Takes one hedge: `True` if granted.
    fn try_withdraw(&self) -> bool {
        self.inner.try_withdraw()
    }

    fn __repr__(&self) -> String {
        format!(
            "HedgeBudget(ratio={}, max_burst={}, min_per_second={}, available={})",
            self.ratio(),
            self.max_burst(),
            self.min_per_second(),
            self.available()
        )
    }
}

/// What a hedging policy has done so far.
#[pyclass(frozen, module = "tailguard", get_all)]
pub(crate) struct HedgeStats {
    /// Calls started (one primary each).
    primaries: u64,
    /// Extra attempts sent.
    hedges_sent: u64,
    /// Calls won by a hedge rather than the primary.
    hedges_won: u64,
    /// Hedges not sent because the budget was spent.
    budget_refusals: u64,
    /// `hedges_sent / primaries`.
    extra_load: f64,
}

impl From<CoreHedgeStats> for HedgeStats {
    fn from(stats: CoreHedgeStats) -> Self {
        HedgeStats {
            primaries: stats.primaries,
            hedges_sent: stats.hedges_sent,
            hedges_won: stats.hedges_won,
            budget_refusals: stats.budget_refusals,
            extra_load: stats.extra_load(),
        }
    }
}

#[pymethods]
impl HedgeStats {
    fn __repr__(&self) -> String {
        format!(
            "HedgeStats(primaries={}, hedges_sent={}, hedges_won={}, budget_refusals={}, extra_load={})",
            self.primaries, self.hedges_sent, self.hedges_won, self.budget_refusals, self.extra_load
        )
    }
}

/// A hedging policy; `await policy.run(factory)` runs one hedged call, and the policy decorates
/// `async def` functions.
///
/// Every decision reads the policy's clock: when the next hedge is due, the budget's per-second
/// reserve, the primary latencies an adaptive delay (`"p95"`) learns from. With a `clock=` (a
/// `ManualClock`) they follow that clock, while the event loop waits out the time left in real
/// time: a primary's latency is then how far the clock was advanced while it was out.
#[pyclass(frozen, module = "tailguard", name = "Hedge")]
pub(crate) struct Hedge {
    inner: CoreHedge,
    clock: Clock,
    delay_spec: Py<PyAny>,
}

/// `"p95"`, `"p99.9"`: a percentile as a fraction.
fn percentile_of(py: Python<'_>, text: &str) -> PyResult<f64> {
    let bad = || {
        errors::config_error(
            py,
            "delay",
            format!("must be a number of seconds or a percentile such as \"p95\" or \"p99.9\", got {text:?}"),
        )
    };
    let digits = text.strip_prefix('p').ok_or_else(bad)?;
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(bad());
    }
    let percent: f64 = digits.parse().map_err(|_| bad())?;
    if !(percent > 0.0 && percent < 100.0) {
        return Err(errors::config_error(
            py,
            "delay",
            format!("the percentile must be in (p0, p100), got {text:?}"),
        ));
    }
    Ok(percent / 100.0)
}

#[pymethods]
impl Hedge {
    /// The delay setting, for the cycle collector (it holds nothing else from Python).
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.delay_spec)
    }

    #[new]
    #[pyo3(signature = (delay = None, *, max_attempts = None, budget = None, min_samples = None, delay_floor = None, delay_ceiling = None, window = None, window_slots = None, clock = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        delay: Option<&Bound<'_, PyAny>>,
        max_attempts: Option<&Bound<'_, PyAny>>,
        budget: Option<&Bound<'_, PyAny>>,
        min_samples: Option<&Bound<'_, PyAny>>,
        delay_floor: Option<&Bound<'_, PyAny>>,
        delay_ceiling: Option<&Bound<'_, PyAny>>,
        window: Option<&Bound<'_, PyAny>>,
        window_slots: Option<&Bound<'_, PyAny>>,
        clock: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let clock = Clock::from_arg(clock)?;
        let mut builder = CoreHedge::builder();
        let delay_spec = match delay.filter(|d| !d.is_none()) {
            Some(d) => d.clone().unbind(),
            None => PyString::new(py, "p95").into_any().unbind(),
        };
        let spec = delay_spec.bind(py);
        if let Ok(text) = spec.cast::<PyString>() {
            builder = builder.adaptive_delay(percentile_of(py, &text.to_cow()?)?);
        } else {
            builder = builder.fixed_delay(convert::seconds("delay", spec).map_err(|err| {
                if err.is_instance_of::<pyo3::exceptions::PyTypeError>(py) {
                    convert::type_error(
                        "delay",
                        "a number of seconds, a timedelta or a percentile such as \"p95\"",
                        spec,
                    )
                } else {
                    err
                }
            })?);
        }
        if let Some(n) = max_attempts.filter(|n| !n.is_none()) {
            builder =
                builder.max_attempts(
                    convert::int_in("max_attempts", n, 1, u64::from(MAX_ATTEMPTS))? as u32,
                );
        }
        match budget.filter(|b| !b.is_none()) {
            None => {}
            Some(b)
                if b.cast::<PyString>()
                    .is_ok_and(|s| s.to_cow().is_ok_and(|s| s == "unlimited")) =>
            {
                builder = builder.unbudgeted();
            }
            Some(b) => match b.cast::<HedgeBudget>() {
                Ok(shared) => builder = builder.budget(shared.get().inner.clone()),
                Err(_) => {
                    let ratio = convert::number("budget", b).map_err(|err| {
                        if err.is_instance_of::<pyo3::exceptions::PyTypeError>(py) {
                            convert::type_error(
                                "budget",
                                "a ratio (float), a tailguard.HedgeBudget or \"unlimited\"",
                                b,
                            )
                        } else {
                            err
                        }
                    })?;
                    let budget = hedge_budget(
                        py,
                        ratio,
                        CoreHedgeBudget::DEFAULT_MAX_BURST,
                        CoreHedgeBudget::DEFAULT_MIN_PER_SECOND,
                    )
                        .map_err(|_| {
                            errors::config_error(
                                py,
                                "budget",
                                format!("must be a ratio in [0, 1000] (0.05 = 5 % extra load), got {ratio:?}"),
                            )
                        })?;
                    builder = builder.budget(budget);
                }
            },
        }
        if let Some(n) = min_samples.filter(|n| !n.is_none()) {
            builder = builder.min_samples(convert::int_in("min_samples", n, 1, u64::MAX)?);
        }
        if let Some(f) = convert::opt_seconds("delay_floor", delay_floor)? {
            builder = builder.delay_floor(f);
        }
        if let Some(c) = convert::opt_seconds("delay_ceiling", delay_ceiling)? {
            builder = builder.delay_ceiling(c);
        }
        let slots = match window_slots.filter(|s| !s.is_none()) {
            Some(s) => {
                Some(
                    convert::int_in("window_slots", s, 1, tailguard::latency::MAX_SLOTS as u64)?
                        as usize,
                )
            }
            None => None,
        };
        match (window.filter(|w| !w.is_none()), slots) {
            (Some(w), slots) => {
                builder =
                    builder.window(convert::positive_seconds("window", w)?, slots.unwrap_or(10));
            }
            (None, Some(slots)) => builder = builder.window(Duration::from_secs(10), slots),
            (None, None) => {}
        }
        let inner = builder.build().map_err(|e| errors::from_core(py, &e))?;
        Ok(Hedge {
            inner,
            clock,
            delay_spec,
        })
    }

    /// The delay setting as given: seconds (a number or a timedelta), or a percentile such as
    /// `"p95"` (the default).
    #[getter]
    fn delay(&self, py: Python<'_>) -> Py<PyAny> {
        self.delay_spec.clone_ref(py)
    }

    /// The percentile of recent primary latency an adaptive delay is set at: the one asked
    /// for, or `1 - ratio` of the budget if that is higher (never earlier than the budget pays
    /// for: `"p95"` within a 2 % budget hedges at p98); `None` for a fixed delay.
    #[getter]
    fn delay_percentile(&self) -> Option<f64> {
        self.inner.delay_percentile()
    }

    /// The hedge delay a call starting now would use, in seconds; `None` while an adaptive
    /// policy has too few samples (calls then hedge only after a failure).
    fn current_delay(&self) -> Option<f64> {
        self.inner.delay_at(self.clock.now()).map(convert::secs)
    }

    /// The most attempts one call makes, the primary included.
    #[getter]
    fn max_attempts(&self) -> u32 {
        self.inner.max_attempts()
    }

    /// What the policy has done so far.
    fn stats(&self) -> HedgeStats {
        self.inner.stats().into()
    }

    /// The `p`-quantile of recent primary latencies in seconds (adaptive policies), or `None`.
    fn latency_quantile(&self, p: &Bound<'_, PyAny>) -> PyResult<Option<f64>> {
        let p = convert::fraction("p", p, 0.0, true, 1.0)?;
        Ok(self
            .inner
            .latency()
            .and_then(|window| window.quantile_at(self.clock.now(), p))
            .map(convert::secs))
    }

    /// Runs one hedged call: `factory()` makes each attempt's awaitable. Returns the first
    /// success; the other attempts are cancelled. If every attempt fails, a call that made one
    /// attempt raises its own exception (as the unhedged call would), one that made several
    /// raises `AllFailedError` with all of them.
    fn run(slf: &Bound<'_, Self>, factory: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        static RUN: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        if !factory.is_callable() {
            return Err(convert::type_error(
                "factory",
                "a callable returning an awaitable",
                factory,
            ));
        }
        let run = RUN.import(slf.py(), "tailguard._hedge", "run_hedged")?;
        Ok(run.call1((slf, factory))?.unbind())
    }

    /// Decorates an `async def`: every call is hedged.
    fn __call__(slf: &Bound<'_, Self>, func: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        static WRAP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        if !func.is_callable() {
            return Err(convert::type_error("func", "an async function", func));
        }
        let wrap = WRAP.import(slf.py(), "tailguard._hedge", "wrap_hedged")?;
        Ok(wrap.call1((slf, func))?.unbind())
    }

    /// Starts one call now with its primary, attempt 1: counts it, credits the budget, picks the
    /// delay. Returns the call's state.
    fn _start(&self) -> HedgeCall {
        let mut state = CoreHedgeState::new(self.inner.clone());
        state.begin_at(self.clock.now());
        HedgeCall::new(state, self.clock.clone())
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "Hedge(delay={}, max_attempts={})",
            convert::short_repr(self.delay_spec.bind(py)),
            self.inner.max_attempts()
        )
    }
}
