//! Checking Python arguments: numbers, durations and integers, with errors that name the
//! parameter (`TypeError` for a wrong type, `tailguard.ConfigError`, a `ValueError`, for a value
//! out of range).

use std::time::Duration;

use pyo3::exceptions::{PyOverflowError, PyTypeError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyFloat, PyInt, PyTuple, PyType};

use crate::errors;

/// The longest duration accepted anywhere: `u64::MAX` nanoseconds, about 584 years.
const MAX_SECONDS: f64 = 18_446_744_073.709_553;

/// A `TypeError` saying what `name` should have been.
pub(crate) fn type_error(name: &str, expected: &str, got: &Bound<'_, PyAny>) -> PyErr {
    let type_name = got
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_owned());
    PyTypeError::new_err(format!("`{name}` must be {expected}, got {type_name}"))
}

/// A float from an `int`, a `float` or anything with `__float__`; `bool` is refused, as it is
/// almost certainly a mistake.
pub(crate) fn number(name: &str, obj: &Bound<'_, PyAny>) -> PyResult<f64> {
    if obj.is_instance_of::<PyBool>() {
        return Err(type_error(name, "a number", obj));
    }
    if let Ok(float) = obj.cast::<PyFloat>() {
        return Ok(float.value());
    }
    match obj.extract::<f64>() {
        Ok(value) => Ok(value),
        Err(err) if err.is_instance_of::<PyOverflowError>(obj.py()) => Err(errors::config_error(
            obj.py(),
            name,
            format!(
                "must be a number within float range, got {}",
                short_repr(obj)
            ),
        )),
        Err(_) => Err(type_error(name, "a number", obj)),
    }
}

/// Seconds as a [`Duration`]: a non-negative, finite `int` or `float`, or a `datetime.timedelta`.
pub(crate) fn seconds(name: &str, obj: &Bound<'_, PyAny>) -> PyResult<Duration> {
    let py = obj.py();
    let secs = if is_timedelta(obj)? {
        obj.call_method0(pyo3::intern!(py, "total_seconds"))?
            .extract::<f64>()?
    } else {
        if obj.is_instance_of::<PyBool>() {
            return Err(type_error(
                name,
                "a number of seconds (int, float or datetime.timedelta)",
                obj,
            ));
        }
        match number(name, obj) {
            Ok(secs) => secs,
            Err(err) if err.is_instance_of::<PyTypeError>(py) => {
                return Err(type_error(
                    name,
                    "a number of seconds (int, float or datetime.timedelta)",
                    obj,
                ))
            }
            Err(err) => return Err(err),
        }
    };
    seconds_from_f64(py, name, secs)
}

/// Seconds from a float, checked: finite, non-negative, at most about 584 years.
pub(crate) fn seconds_from_f64(py: Python<'_>, name: &str, secs: f64) -> PyResult<Duration> {
    if !(secs.is_finite() && (0.0..=MAX_SECONDS).contains(&secs)) {
        return Err(errors::config_error(
            py,
            name,
            format!(
                "must be a finite number of seconds in [0, {MAX_SECONDS}], got {}",
                show_f64(secs)
            ),
        ));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| {
        errors::config_error(
            py,
            name,
            format!(
                "must be a finite number of seconds in [0, {MAX_SECONDS}], got {}",
                show_f64(secs)
            ),
        )
    })
}

/// Like [`seconds`], and also greater than zero.
pub(crate) fn positive_seconds(name: &str, obj: &Bound<'_, PyAny>) -> PyResult<Duration> {
    let duration = seconds(name, obj)?;
    if duration.is_zero() {
        return Err(errors::config_error(
            obj.py(),
            name,
            format!("must be greater than zero, got {}", short_repr(obj)),
        ));
    }
    Ok(duration)
}

/// Optional seconds: `None` is `None`.
pub(crate) fn opt_seconds(
    name: &str,
    obj: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<Duration>> {
    match obj {
        Some(obj) if !obj.is_none() => seconds(name, obj).map(Some),
        _ => Ok(None),
    }
}

/// An `int` in `lo..=hi`; `bool` is refused.
pub(crate) fn int_in(name: &str, obj: &Bound<'_, PyAny>, lo: u64, hi: u64) -> PyResult<u64> {
    if obj.is_instance_of::<PyBool>() || !obj.is_instance_of::<PyInt>() {
        return Err(type_error(name, "an int", obj));
    }
    match obj.extract::<u64>() {
        Ok(value) if (lo..=hi).contains(&value) => Ok(value),
        _ => Err(errors::config_error(
            obj.py(),
            name,
            format!("must be an int in [{lo}, {hi}], got {}", short_repr(obj)),
        )),
    }
}

/// A `u32` parameter in `lo..=u32::MAX`.
pub(crate) fn u32_at_least(name: &str, obj: &Bound<'_, PyAny>, lo: u32) -> PyResult<u32> {
    // The range check makes the cast lossless.
    int_in(name, obj, u64::from(lo), u64::from(u32::MAX)).map(|v| v as u32)
}

/// An optional seed: any int in `[0, 2**64)`.
pub(crate) fn opt_seed(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<u64>> {
    match obj {
        Some(obj) if !obj.is_none() => int_in("seed", obj, 0, u64::MAX).map(Some),
        _ => Ok(None),
    }
}

/// A float in a closed or half-open range, named in errors.
pub(crate) fn fraction(
    name: &str,
    obj: &Bound<'_, PyAny>,
    lo: f64,
    lo_inclusive: bool,
    hi: f64,
) -> PyResult<f64> {
    let value = number(name, obj)?;
    let above_lo = if lo_inclusive {
        value >= lo
    } else {
        value > lo
    };
    if !(value.is_finite() && above_lo && value <= hi) {
        let open = if lo_inclusive { '[' } else { '(' };
        return Err(errors::config_error(
            obj.py(),
            name,
            format!("must be in {open}{lo}, {hi}], got {}", show_f64(value)),
        ));
    }
    Ok(value)
}

/// A float as Python's `repr` shows it: shortest round-trip digits, an exponent for very large
/// or small values (`1e300`, not 301 digits).
pub(crate) fn show_f64(value: f64) -> String {
    format!("{value:?}")
}

/// `repr(obj)` cut to a readable length, for error messages.
pub(crate) fn short_repr(obj: &Bound<'_, PyAny>) -> String {
    let mut text = obj
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| "<unprintable>".to_owned());
    if text.chars().count() > 60 {
        text = text.chars().take(57).collect::<String>() + "...";
    }
    text
}

fn is_timedelta(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    static TIMEDELTA: pyo3::sync::PyOnceLock<Py<pyo3::types::PyType>> =
        pyo3::sync::PyOnceLock::new();
    let ty = TIMEDELTA.import(obj.py(), "datetime", "timedelta")?;
    obj.is_instance(ty)
}

/// Seconds as a Python float.
pub(crate) fn secs(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

/// `__get__` for a wrapper class: looked up on an instance, the wrapper binds to it as a method
/// (so decorated methods get `self`); looked up on the class, it is returned as is.
pub(crate) fn bind_method(
    wrapper: &Bound<'_, PyAny>,
    instance: &Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    if instance.is_none() {
        return Ok(wrapper.clone().unbind());
    }
    static METHOD_TYPE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let method = METHOD_TYPE.import(wrapper.py(), "types", "MethodType")?;
    Ok(method.call1((wrapper, instance))?.unbind())
}

/// Whether `func` is an `async def` function (`inspect.iscoroutinefunction`).
pub(crate) fn is_coroutine_function(func: &Bound<'_, PyAny>) -> PyResult<bool> {
    static IS_ASYNC: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    IS_ASYNC
        .import(func.py(), "inspect", "iscoroutinefunction")?
        .call1((func,))?
        .is_truthy()
}

/// Gives a wrapper `func`'s name, docstring and `__wrapped__` (`functools.update_wrapper`), and
/// returns it.
pub(crate) fn update_wrapper(
    wrapper: &Bound<'_, PyAny>,
    func: &Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    static UPDATE_WRAPPER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    UPDATE_WRAPPER
        .import(wrapper.py(), "functools", "update_wrapper")?
        .call1((wrapper, func))?;
    Ok(wrapper.clone().unbind())
}

/// Whether `obj` can be awaited (`inspect.isawaitable`): what an `async def` hook returns.
pub(crate) fn is_awaitable(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    if obj.is_none() {
        return Ok(false);
    }
    static IS_AWAITABLE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    IS_AWAITABLE
        .import(obj.py(), "inspect", "isawaitable")?
        .call1((obj,))?
        .is_truthy()
}

/// What an `on=` argument names: the exceptions a retry policy retries or a breaker counts.
pub(crate) enum ExceptionFilter {
    /// `None`: the default, every `Exception`.
    Default,
    /// An exception class or a non-empty tuple of them (the object itself, for `isinstance`).
    Types(Py<PyAny>),
    /// Any other callable, called with the exception.
    Predicate(Py<PyAny>),
}

const ON_EXPECTED: &str =
    "an exception class, a non-empty tuple of exception classes, or a predicate (a callable taking the exception)";

/// Whether `obj` is a subclass of `BaseException`.
fn is_exception_class(obj: &Bound<'_, PyAny>) -> bool {
    obj.cast::<PyType>().is_ok_and(|ty| {
        ty.is_subclass_of::<pyo3::exceptions::PyBaseException>()
            .unwrap_or(false)
    })
}

/// Checks an `on=` argument once, when the policy is built: a class that is not an exception
/// (`on=int`) is callable, but calling it with the exception would raise a `TypeError` in place
/// of the user's exception, so it is refused here, as it is inside a tuple (`TypeError`). An
/// empty tuple has the right type but names nothing: `ConfigError`.
pub(crate) fn exception_filter(on: Option<&Bound<'_, PyAny>>) -> PyResult<ExceptionFilter> {
    let Some(on) = on.filter(|on| !on.is_none()) else {
        return Ok(ExceptionFilter::Default);
    };
    if is_exception_class(on) {
        return Ok(ExceptionFilter::Types(on.clone().unbind()));
    }
    if let Ok(tuple) = on.cast::<PyTuple>() {
        if tuple.is_empty() {
            return Err(errors::config_error(
                on.py(),
                "on",
                "must name at least one exception class, got an empty tuple",
            ));
        }
        for item in tuple.iter() {
            if !is_exception_class(&item) {
                return Err(not_an_exception_filter(&item, " in the tuple"));
            }
        }
        return Ok(ExceptionFilter::Types(on.clone().unbind()));
    }
    if on.is_callable() && on.cast::<PyType>().is_err() {
        return Ok(ExceptionFilter::Predicate(on.clone().unbind()));
    }
    Err(not_an_exception_filter(on, ""))
}

/// The `TypeError` for an `on=` value (or tuple item, `place`) that names no exceptions.
fn not_an_exception_filter(got: &Bound<'_, PyAny>, place: &str) -> PyErr {
    if let Ok(class) = got.cast::<PyType>() {
        let name = class
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "?".to_owned());
        return PyTypeError::new_err(format!(
            "`on` must be {ON_EXPECTED}, got the class {name}{place}, which is not an exception \
             class (a subclass of BaseException)"
        ));
    }
    let type_name = got
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_owned());
    PyTypeError::new_err(format!(
        "`on` must be {ON_EXPECTED}, got {type_name}{place}: {}",
        short_repr(got)
    ))
}
