//! The exceptions raised from Rust: the classes live in `tailguard/_errors.py` (so they are
//! ordinary, picklable Python exceptions with typed attributes) and are looked up once.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

const MODULE: &str = "tailguard._errors";

static CONFIG_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static RETRY_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static BUDGET_EXHAUSTED_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// `tailguard.ConfigError(message, parameter)`: a `ValueError` naming the parameter. Falls back
/// to a plain `ValueError` if the Python half of the package cannot be imported.
pub(crate) fn config_error(py: Python<'_>, parameter: &str, message: impl AsRef<str>) -> PyErr {
    let text = format!("invalid `{parameter}`: {}", message.as_ref());
    match CONFIG_ERROR.import(py, MODULE, "ConfigError") {
        Ok(ty) => match ty.call1((text.as_str(), parameter)) {
            Ok(value) => PyErr::from_value(value),
            Err(err) => err,
        },
        Err(_) => pyo3::exceptions::PyValueError::new_err(text),
    }
}

/// A core [`tailguard::ConfigError`] as `tailguard.ConfigError`, renaming the core's field to
/// the Python parameter where they differ.
pub(crate) fn from_core(py: Python<'_>, err: &tailguard::ConfigError) -> PyErr {
    let parameter = match err.field() {
        "max_attempts" => "attempts",
        "max_elapsed" => "deadline",
        "attempt_timeout" => "timeout",
        "count_window" => "window",
        "time_window.duration" => "time_window",
        "time_window.buckets" => "time_window_buckets",
        "slow_calls.duration" => "slow_call_duration",
        "slow_calls.rate" => "slow_call_rate",
        "adaptive_delay" => "delay",
        other => other,
    };
    // The core spells jitter modes as Rust enum variants; say them as Python spells them.
    let message = err
        .message()
        .replace("Jitter::Equal", "jitter=\"equal\"")
        .replace("Jitter::Decorrelated", "jitter=\"decorrelated\"")
        .replace("Jitter::None", "jitter=\"none\"")
        .replace("full jitter", "jitter=\"full\"")
        .replace(
            "use `adaptive_delay(..)`",
            "use a percentile `delay` such as \"p95\"",
        );
    config_error(py, parameter, &message)
}

/// Why a retry loop gave up, as the string in `RetryError.reason`.
pub(crate) fn reason_name(reason: tailguard::retry::GaveUp) -> &'static str {
    use tailguard::retry::GaveUp;
    match reason {
        GaveUp::Exhausted => "exhausted",
        GaveUp::DeadlineExceeded => "deadline",
        GaveUp::BudgetExhausted => "budget",
        GaveUp::NotRetryable => "not_retryable",
    }
}

/// What to change, in the Python parameters' names.
fn advice(reason: tailguard::retry::GaveUp) -> &'static str {
    use tailguard::retry::GaveUp;
    match reason {
        GaveUp::Exhausted => {
            "if the fault is transient and the dependency can take it, raise `attempts` (or the \
             backoff's `max_retries`)"
        }
        GaveUp::DeadlineExceeded => {
            "raise `deadline`, shorten the backoff delays or the `timeout`, or accept that the \
             call cannot finish in time"
        }
        GaveUp::BudgetExhausted => {
            "the dependency is failing for many callers at once; retrying harder would multiply \
             the outage, so look at the dependency before raising the budget's ratio"
        }
        GaveUp::NotRetryable => "the error is not in `on`; widen `on` if it is in fact transient",
    }
}

/// `RetryError` (or `BudgetExhaustedError` when the budget refused the retry), with `last` as its
/// `__cause__`.
pub(crate) fn retry_error(
    py: Python<'_>,
    reason: tailguard::retry::GaveUp,
    attempts: u32,
    elapsed: f64,
    last: PyErr,
) -> PyErr {
    let (lock, name) = match reason {
        tailguard::retry::GaveUp::BudgetExhausted => {
            (&BUDGET_EXHAUSTED_ERROR, "BudgetExhaustedError")
        }
        _ => (&RETRY_ERROR, "RetryError"),
    };
    let ty = match lock.import(py, MODULE, name) {
        Ok(ty) => ty,
        Err(err) => return err,
    };
    let plural = if attempts == 1 { "" } else { "s" };
    let last_repr = last
        .value(py)
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| "?".to_owned());
    let message = format!(
        "gave up after {attempts} attempt{plural} in {elapsed:.3}s: {reason}; last error: \
         {last_repr}. To change this: {}",
        advice(reason)
    );
    match ty.call1((message, attempts, elapsed, reason_name(reason))) {
        Ok(value) => {
            let err = PyErr::from_value(value);
            err.set_cause(py, Some(last));
            err
        }
        Err(err) => err,
    }
}

/// `raised`, an exception raised by code run while `handled` was being handled in native code
/// (a predicate, a hook, the loop giving up), with the `__context__` Python would have given it
/// had the same code run inside `except ... as handled:`: the exception first raised there (the
/// end of `raised`'s context chain) gets `handled` as its context, unless the chain holds
/// `handled` already. As in CPython, a link that would close a cycle is cut.
pub(crate) fn raised_while_handling(
    py: Python<'_>,
    raised: PyErr,
    handled: &Bound<'_, PyAny>,
) -> PyErr {
    // Context chains are short; the bound only guards against a cycle made by hand.
    const MAX_CHAIN: usize = 1000;
    fn context<'py>(exc: &Bound<'py, PyAny>) -> Option<Bound<'py, PyAny>> {
        exc.getattr("__context__").ok().filter(|c| !c.is_none())
    }
    let mut tail = raised.value(py).clone().into_any();
    for _ in 0..MAX_CHAIN {
        if tail.is(handled) {
            return raised;
        }
        match context(&tail) {
            Some(next) => tail = next,
            None => break,
        }
    }
    if context(&tail).is_some() {
        return raised;
    }
    // CPython's guard: if `tail` is in `handled`'s own chain, cut that link first.
    let mut link = handled.clone();
    for _ in 0..MAX_CHAIN {
        let Some(next) = context(&link) else { break };
        if next.is(&tail) {
            let _ = link.setattr("__context__", py.None());
            break;
        }
        link = next;
    }
    let _ = tail.setattr("__context__", handled);
    raised
}
