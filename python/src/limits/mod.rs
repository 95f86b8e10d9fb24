//! The overload limits for Python: `Bulkhead`, `RateLimiter`, `KeyedRateLimiter`, `Throttle`.
//! Each drives the core's own type; the waits of the async forms live in
//! `tailguard/_limits.py`, which polls the native waiters here.

pub(crate) mod bulkhead;
pub(crate) mod rate;
pub(crate) mod throttle;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

/// An exception from `tailguard._errors`, built with `args`.
fn error<'py, A>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyType>>,
    name: &str,
    args: A,
) -> PyErr
where
    A: pyo3::call::PyCallArgs<'py>,
{
    match cell.import(py, "tailguard._errors", name) {
        Ok(ty) => match ty.call1(args) {
            Ok(value) => PyErr::from_value(value),
            Err(err) => err,
        },
        Err(err) => err,
    }
}
