//! `tailguard._native`: tailguard's Rust state machines for Python.
//!
//! The Python package `tailguard` (in `python/tailguard/`) re-exports what is here and adds the
//! few pieces that are easier in Python (the exception classes, the async retry coroutine).
//! Every argument is checked here: a wrong type raises `TypeError` and a bad value
//! `tailguard.ConfigError` (a `ValueError`), each naming the parameter; nothing panics.

#![forbid(unsafe_code)]

mod adaptive_timeout;
mod backoff;
mod breaker;
mod clock;
mod convert;
mod errors;
mod hedge;
mod latency;
mod limit;
mod limits;
mod pipeline;
mod retry;

use pyo3::prelude::*;

/// The native half of the `tailguard` Python package.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<adaptive_timeout::AdaptiveTimeout>()?;
    m.add_class::<backoff::Backoff>()?;
    m.add_class::<backoff::BackoffIterator>()?;
    m.add_class::<retry::RetryBudget>()?;
    m.add_class::<clock::ManualClock>()?;
    m.add_class::<retry::RetryPolicy>()?;
    m.add_class::<retry::Retrying>()?;
    m.add_class::<retry::RetryRun>()?;
    m.add_class::<retry::RetryEvent>()?;
    m.add_class::<latency::LatencyHistogram>()?;
    m.add_class::<latency::RollingHistogram>()?;
    m.add_class::<hedge::Hedge>()?;
    m.add_class::<hedge::HedgeBudget>()?;
    m.add_class::<hedge::HedgeStats>()?;
    m.add_class::<hedge::HedgeCall>()?;
    m.add_class::<breaker::CircuitBreaker>()?;
    m.add_class::<breaker::Guarded>()?;
    m.add_class::<breaker::BreakerPermit>()?;
    m.add_class::<breaker::BreakerMetrics>()?;
    m.add_class::<breaker::BreakerTransition>()?;
    m.add_class::<pipeline::Piped>()?;
    m.add_class::<limits::bulkhead::Bulkhead>()?;
    m.add_class::<limits::bulkhead::BulkheadPermit>()?;
    m.add_class::<limits::bulkhead::BulkheadWaiter>()?;
    m.add_class::<limits::bulkhead::Bulkheaded>()?;
    m.add_class::<limits::rate::RateLimiter>()?;
    m.add_class::<limits::rate::RateLimited>()?;
    m.add_class::<limits::rate::KeyedRateLimiter>()?;
    m.add_class::<limits::throttle::Throttle>()?;
    m.add_class::<limit::AdaptiveLimiter>()?;
    m.add_class::<limit::LimitPermit>()?;
    m.add_function(wrap_pyfunction!(clock::set_testing, m)?)?;
    m.add_function(wrap_pyfunction!(clock::is_testing, m)?)?;
    Ok(())
}
