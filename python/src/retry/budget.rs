//! `tailguard.RetryBudget`: retries limited to a fraction of calls, shared by every policy that
//! calls the same dependency.

use pyo3::prelude::*;
use tailguard::retry::RetryBudget as CoreBudget;

use crate::clock::Clock;
use crate::{convert, errors};

/// A shared allowance of retries: every call deposits, every retry withdraws, and retries never
/// exceed `ratio` × calls over the sliding `window`, plus `min_per_second` retries per second
/// whatever the traffic.
///
/// A budget reads its own clock (`clock=`, default the system clock), and every retry policy
/// that uses it must read the same one: pass the same `tailguard.testing.ManualClock` to the
/// budget and to `retry(..., clock=)`, or give the policy no `clock` and it follows its
/// budget's. A policy on another clock is refused with a `ConfigError` naming `budget`.
#[pyclass(frozen, module = "tailguard", name = "RetryBudget")]
pub(crate) struct RetryBudget {
    pub(crate) inner: CoreBudget,
    pub(crate) clock: Clock,
}

#[pymethods]
impl RetryBudget {
    #[new]
    #[pyo3(signature = (ratio = None, *, min_per_second = None, window = None, clock = None))]
    fn new(
        py: Python<'_>,
        ratio: Option<&Bound<'_, PyAny>>,
        min_per_second: Option<&Bound<'_, PyAny>>,
        window: Option<&Bound<'_, PyAny>>,
        clock: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let clock = Clock::from_arg(clock)?;
        let mut builder = CoreBudget::builder();
        if let Some(ratio) = ratio.filter(|r| !r.is_none()) {
            builder = builder.ratio(convert::number("ratio", ratio)?);
        }
        if let Some(floor) = min_per_second.filter(|r| !r.is_none()) {
            builder = builder.min_per_second(convert::u32_at_least("min_per_second", floor, 0)?);
        }
        if let Some(window) = window.filter(|r| !r.is_none()) {
            builder = builder.window(convert::seconds("window", window)?);
        }
        let inner = builder
            .build_at(clock.now())
            .map_err(|e| errors::from_core(py, &e))?;
        Ok(RetryBudget { inner, clock })
    }

    /// The fraction of calls that may be retried.
    #[getter]
    fn ratio(&self) -> f64 {
        self.inner.ratio()
    }

    /// Retries per second allowed whatever the traffic.
    #[getter]
    fn min_per_second(&self) -> u32 {
        self.inner.min_per_second()
    }

    /// The sliding window, in seconds.
    #[getter]
    fn window(&self) -> f64 {
        self.inner.window().as_secs_f64()
    }

    /// Records a call (retry policies using the budget do this themselves).
    fn deposit(&self) {
        self.inner.deposit_at(self.clock.now());
    }

    /// Asks for one retry: `True` if granted (and withdrawn), `False` if the budget is spent.
    fn try_withdraw(&self) -> bool {
        self.inner.try_withdraw_at(self.clock.now())
    }

    /// How many retries would be granted now, one after another.
    fn available(&self) -> u64 {
        self.inner.available_at(self.clock.now())
    }

    /// Internal, for `tailguard.fleet`'s background thread: this budget's own balance now, in
    /// thousandths of a retry (its calls' deposits minus the retries granted from its window),
    /// without what the fleet added.
    fn _fleet_balance(&self) -> i64 {
        self.inner.balance_at(self.clock.now())
    }

    /// Internal, for `tailguard.fleet`: the balance earned (or owed, if negative) by the rest
    /// of the fleet, in thousandths of a retry, counted when deciding from then on; 0 is the
    /// budget alone.
    fn _fleet_set_remote(&self, thousandths: i64) {
        self.inner.set_remote_balance(thousandths);
    }

    pub(crate) fn __repr__(&self) -> String {
        format!(
            "RetryBudget(ratio={}, min_per_second={}, window={})",
            self.ratio(),
            self.min_per_second(),
            self.window()
        )
    }
}
