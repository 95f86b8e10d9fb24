//! `tailguard.RateLimiter` and `tailguard.KeyedRateLimiter`: the core's GCRA limiters on the
//! binding's clock. A sync wait sleeps through Python's `time.sleep` (or advances a manual
//! clock); the async wait in `tailguard/_limits.py` asks [`RateLimiter::_step`] how long to
//! sleep.

use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyInt, PyString, PyType};
use tailguard::rate::{self, Reason, Rejected};

use crate::clock::{Clock, ClockTimer};
use crate::{convert, errors};

fn limited_error(py: Python<'_>, rejected: Rejected) -> PyErr {
    static LIMITED: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    let reason = match rejected.reason() {
        Reason::Deadline => "deadline",
        Reason::TooMany => "too_many",
        _ => "empty",
    };
    let retry_after = rejected.retry_after().map(convert::secs);
    super::error(
        py,
        &LIMITED,
        "RateLimitedError",
        (rejected.to_string(), retry_after, reason),
    )
}

/// Why a wait ended without a token.
enum Refused {
    /// The core's refusal (an empty bucket with no wait allowed, or more than the burst).
    Core(Rejected),
    /// The next token comes after the deadline, this long from now.
    Deadline(Duration),
}

impl Refused {
    fn into_err(self, py: Python<'_>) -> PyErr {
        match self {
            Refused::Core(rejected) => limited_error(py, rejected),
            Refused::Deadline(wait) => {
                static LIMITED: PyOnceLock<Py<PyType>> = PyOnceLock::new();
                super::error(
                    py,
                    &LIMITED,
                    "RateLimitedError",
                    (
                        format!(
                            "rate limited: the next token comes in {wait:?}, after the call's deadline"
                        ),
                        Some(convert::secs(wait)),
                        "deadline",
                    ),
                )
            }
        }
    }
}

/// The builder from the shared arguments.
fn builder(
    py: Python<'_>,
    rate: &Bound<'_, PyAny>,
    per: Option<&Bound<'_, PyAny>>,
    burst: Option<&Bound<'_, PyAny>>,
) -> PyResult<rate::RateLimiterBuilder> {
    let count = convert::u32_at_least("rate", rate, 0)?;
    let per = match per {
        Some(per) => convert::seconds("per", per)?,
        None => Duration::from_secs(1),
    };
    let mut builder = rate::RateLimiterBuilder::new().rate(count, per);
    if let Some(burst) = burst {
        builder = builder.burst(convert::u32_at_least("burst", burst, 0)?);
    }
    let _ = py;
    Ok(builder)
}

fn core_error(py: Python<'_>, err: &tailguard::ConfigError) -> PyErr {
    let renamed = match err.field() {
        "rate.count" => tailguard::ConfigError::new("rate", err.message().to_owned()),
        "rate.per" => tailguard::ConfigError::new("per", err.message().to_owned()),
        _ => err.clone(),
    };
    errors::from_core(py, &renamed)
}

/// The deadline `timeout` (or `max_wait`) from now on `clock`; `None`: no limit.
fn deadline(
    clock: &Clock,
    timeout: Option<Duration>,
    max_wait: Option<Duration>,
) -> Option<Instant> {
    let wait = timeout.or(max_wait)?;
    let now = clock.now();
    Some(
        now.checked_add(wait)
            .unwrap_or_else(crate::clock::far_future),
    )
}

/// One attempt of a wait: `Ok(None)` taken; `Ok(Some(d))` sleep `d` (zero on a manual clock,
/// which was advanced instead) and try again; `Err` refused for good.
fn step(
    clock: &Clock,
    attempt: impl FnOnce(Instant) -> Result<rate::Permit, Rejected>,
    deadline: Option<Instant>,
) -> Result<Option<Duration>, Refused> {
    let now = clock.now();
    let rejected = match attempt(now) {
        Ok(_) => return Ok(None),
        Err(rejected) => rejected,
    };
    let Some(wait) = rejected.retry_after() else {
        return Err(Refused::Core(rejected));
    };
    if let Some(deadline) = deadline {
        if now.checked_add(wait).is_none_or(|ready| ready > deadline) {
            return Err(Refused::Deadline(wait));
        }
    }
    Ok(Some(clock.wait_for(wait)))
}

/// Sleeps `delay` through Python's `time.sleep` (which releases the GIL and is interrupted by
/// Ctrl-C); zero only looks for signals.
fn sleep(py: Python<'_>, delay: Duration) -> PyResult<()> {
    if delay.is_zero() {
        return py.check_signals();
    }
    static SLEEP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    SLEEP
        .import(py, "time", "sleep")?
        .call1((delay.as_secs_f64(),))?;
    Ok(())
}

/// Waits (sync) until `attempt` takes its tokens or is refused for good.
fn wait_blocking(
    py: Python<'_>,
    clock: &Clock,
    mut attempt: impl FnMut(Instant) -> Result<rate::Permit, Rejected>,
    deadline: Option<Instant>,
) -> PyResult<()> {
    loop {
        match step(clock, &mut attempt, deadline) {
            Ok(None) => return Ok(()),
            Ok(Some(delay)) => sleep(py, delay)?,
            Err(refused) => return Err(refused.into_err(py)),
        }
    }
}

/// A deadline as the async wait carries it: nanoseconds after the limiter's origin.
fn deadline_nanos(origin: Instant, deadline: Option<Instant>) -> Option<u64> {
    deadline
        .map(|d| u64::try_from(d.saturating_duration_since(origin).as_nanos()).unwrap_or(u64::MAX))
}

fn deadline_from_nanos(origin: Instant, nanos: Option<u64>) -> Option<Instant> {
    nanos.map(|n| {
        origin
            .checked_add(Duration::from_nanos(n))
            .unwrap_or_else(crate::clock::far_future)
    })
}

/// Calls at most ``rate`` per ``per`` seconds on average, up to ``burst`` at once.
#[pyclass(frozen, subclass, module = "tailguard._native", name = "RateLimiter")]
pub(crate) struct RateLimiter {
    inner: rate::RateLimiter<ClockTimer>,
    clock: Clock,
    max_wait: Option<Duration>,
    origin: Instant,
}

#[pymethods]
impl RateLimiter {
    #[new]
    #[pyo3(signature = (rate, per = None, *, burst = None, max_wait = None, clock = None))]
    fn new(
        py: Python<'_>,
        rate: &Bound<'_, PyAny>,
        per: Option<&Bound<'_, PyAny>>,
        burst: Option<&Bound<'_, PyAny>>,
        max_wait: Option<&Bound<'_, PyAny>>,
        clock: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let clock = Clock::from_arg(clock)?;
        let max_wait = convert::opt_seconds("max_wait", max_wait)?;
        let inner = builder(py, rate, per, burst)?
            .build_with(ClockTimer(clock.clone()))
            .map_err(|e| core_error(py, &e))?;
        Ok(RateLimiter {
            inner,
            origin: clock.now(),
            clock,
            max_wait,
        })
    }

    /// Takes ``n`` tokens now if there are: ``True``, or ``False`` (never waits, never raises
    /// for an empty bucket). ``n`` above the burst raises ``RateLimitedError``.
    #[pyo3(signature = (n = 1))]
    fn try_acquire(&self, py: Python<'_>, n: i64) -> PyResult<bool> {
        let n = tokens(py, n)?;
        match self.inner.try_acquire_n_at(n, self.clock.now()) {
            Ok(_) => Ok(true),
            Err(rejected) if rejected.reason() == Reason::TooMany => {
                Err(limited_error(py, rejected))
            }
            Err(_) => Ok(false),
        }
    }

    /// Takes ``n`` tokens, sleeping until they come, at most ``timeout`` seconds (by default
    /// ``max_wait``; ``None``: as long as it takes). Raises ``RateLimitedError`` at once if they
    /// would come after that.
    #[pyo3(signature = (n = 1, timeout = None))]
    fn acquire(&self, py: Python<'_>, n: i64, timeout: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let n = tokens(py, n)?;
        let timeout = convert::opt_seconds("timeout", timeout)?;
        let deadline = deadline(&self.clock, timeout, self.max_wait);
        wait_blocking(
            py,
            &self.clock,
            |now| self.inner.try_acquire_n_at(n, now),
            deadline,
        )
    }

    /// Internal: the native wrapper of a sync function (the decorator's sync form).
    fn _wrap_sync(slf: &Bound<'_, Self>, func: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let wrapper = Bound::new(
            slf.py(),
            RateLimited {
                limiter: slf.clone().unbind(),
                func: func.clone().unbind(),
            },
        )?;
        convert::update_wrapper(wrapper.as_any(), func)
    }

    /// Internal: the deadline of an async wait, for ``_step``.
    #[pyo3(signature = (timeout = None))]
    fn _deadline(&self, timeout: Option<&Bound<'_, PyAny>>) -> PyResult<Option<u64>> {
        let timeout = convert::opt_seconds("timeout", timeout)?;
        Ok(deadline_nanos(
            self.origin,
            deadline(&self.clock, timeout, self.max_wait),
        ))
    }

    /// Internal: one attempt of an async wait: ``None`` (taken) or the seconds to sleep.
    fn _step(&self, py: Python<'_>, n: i64, deadline: Option<u64>) -> PyResult<Option<f64>> {
        let n = tokens(py, n)?;
        let deadline = deadline_from_nanos(self.origin, deadline);
        step(
            &self.clock,
            |now| self.inner.try_acquire_n_at(n, now),
            deadline,
        )
        .map(|wait| wait.map(convert::secs))
        .map_err(|refused| refused.into_err(py))
    }

    /// Whole tokens in the bucket now.
    #[getter]
    fn available(&self) -> u32 {
        self.inner.available_at(self.clock.now())
    }

    /// Tokens the bucket holds when full.
    #[getter]
    fn burst(&self) -> u32 {
        self.inner.burst()
    }

    /// Seconds between two tokens.
    #[getter]
    fn interval(&self) -> f64 {
        convert::secs(self.inner.interval())
    }

    /// The default wait, in seconds (``None``: as long as it takes).
    #[getter]
    fn max_wait(&self) -> Option<f64> {
        self.max_wait.map(convert::secs)
    }

    /// The clock: ``None`` for the system clock, or the ``ManualClock`` given.
    #[getter]
    fn clock(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.clock.to_object(py)
    }

    fn __repr__(&self) -> String {
        format!(
            "RateLimiter(interval={}, burst={})",
            convert::show_f64(self.interval()),
            self.burst()
        )
    }
}

/// A sync function behind a rate limiter: take a token (waiting up to ``max_wait``), then
/// call, all here.
#[pyclass(frozen, dict, module = "tailguard", name = "RateLimited")]
pub(crate) struct RateLimited {
    limiter: Py<RateLimiter>,
    func: Py<PyAny>,
}

#[pymethods]
impl RateLimited {
    fn __traverse__(&self, visit: pyo3::gc::PyVisit<'_>) -> Result<(), pyo3::gc::PyTraverseError> {
        visit.call(&self.limiter)?;
        visit.call(&self.func)
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn __call__(
        &self,
        py: Python<'_>,
        args: &Bound<'_, pyo3::types::PyTuple>,
        kwargs: Option<&Bound<'_, pyo3::types::PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let limiter = self.limiter.get();
        // The fast path: one clock read, one compare-and-swap.
        let now = limiter.clock.now();
        if limiter.inner.try_acquire_at(now).is_err() {
            let deadline = deadline(&limiter.clock, None, limiter.max_wait);
            wait_blocking(
                py,
                &limiter.clock,
                |now| limiter.inner.try_acquire_at(now),
                deadline,
            )?;
        }
        self.func.bind(py).call(args, kwargs).map(Bound::unbind)
    }

    fn __get__(
        slf: &Bound<'_, Self>,
        instance: &Bound<'_, PyAny>,
        _owner: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        convert::bind_method(slf.as_any(), instance)
    }

    /// The rate limiter guarding this function.
    #[getter]
    fn limiter(&self, py: Python<'_>) -> Py<RateLimiter> {
        self.limiter.clone_ref(py)
    }
}

/// A key of a keyed limiter: a ``str``, an ``int`` or ``bytes``.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    Str(String),
    Int(i128),
    Bytes(Vec<u8>),
}

fn key(obj: &Bound<'_, PyAny>) -> PyResult<Key> {
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Key::Str(s.to_cow()?.into_owned()));
    }
    if obj.is_instance_of::<PyInt>() && !obj.is_instance_of::<pyo3::types::PyBool>() {
        if let Ok(i) = obj.extract::<i128>() {
            return Ok(Key::Int(i));
        }
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Key::Bytes(b.as_bytes().to_owned()));
    }
    Err(convert::type_error(
        "key",
        "a str, an int (within 128 bits) or bytes",
        obj,
    ))
}

/// One bucket per key (a ``str``, ``int`` or ``bytes``), at most ``max_keys`` of them.
#[pyclass(
    frozen,
    subclass,
    module = "tailguard._native",
    name = "KeyedRateLimiter"
)]
pub(crate) struct KeyedRateLimiter {
    inner: rate::KeyedRateLimiter<Key, ClockTimer>,
    clock: Clock,
    max_wait: Option<Duration>,
    origin: Instant,
}

#[pymethods]
impl KeyedRateLimiter {
    #[new]
    #[pyo3(signature = (rate, per = None, *, burst = None, max_keys = None, shards = None, max_wait = None, clock = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        rate: &Bound<'_, PyAny>,
        per: Option<&Bound<'_, PyAny>>,
        burst: Option<&Bound<'_, PyAny>>,
        max_keys: Option<&Bound<'_, PyAny>>,
        shards: Option<&Bound<'_, PyAny>>,
        max_wait: Option<&Bound<'_, PyAny>>,
        clock: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let clock = Clock::from_arg(clock)?;
        let max_wait = convert::opt_seconds("max_wait", max_wait)?;
        let mut b = builder(py, rate, per, burst)?;
        if let Some(n) = max_keys {
            b = b.max_keys(convert::int_in("max_keys", n, 0, u32::MAX.into())? as usize);
        }
        if let Some(n) = shards {
            b = b.shards(convert::int_in("shards", n, 0, u32::MAX.into())? as usize);
        }
        let inner = b
            .build_keyed_with(ClockTimer(clock.clone()))
            .map_err(|e| core_error(py, &e))?;
        Ok(KeyedRateLimiter {
            inner,
            origin: clock.now(),
            clock,
            max_wait,
        })
    }

    /// Takes ``n`` tokens from ``key``'s bucket now if there are: ``True`` or ``False``.
    #[pyo3(signature = (key, n = 1))]
    fn try_acquire(&self, py: Python<'_>, key: &Bound<'_, PyAny>, n: i64) -> PyResult<bool> {
        let n = tokens(py, n)?;
        let key = self::key(key)?;
        match self.inner.try_acquire_n_at(&key, n, self.clock.now()) {
            Ok(_) => Ok(true),
            Err(rejected) if rejected.reason() == Reason::TooMany => {
                Err(limited_error(py, rejected))
            }
            Err(_) => Ok(false),
        }
    }

    /// Takes ``n`` tokens from ``key``'s bucket, sleeping until they come, at most ``timeout``
    /// seconds (by default ``max_wait``; ``None``: as long as it takes).
    #[pyo3(signature = (key, n = 1, timeout = None))]
    fn acquire(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        n: i64,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let n = tokens(py, n)?;
        let key = self::key(key)?;
        let timeout = convert::opt_seconds("timeout", timeout)?;
        let deadline = deadline(&self.clock, timeout, self.max_wait);
        wait_blocking(
            py,
            &self.clock,
            |now| self.inner.try_acquire_n_at(&key, n, now),
            deadline,
        )
    }

    /// Internal: the deadline of an async wait, for ``_step``.
    #[pyo3(signature = (timeout = None))]
    fn _deadline(&self, timeout: Option<&Bound<'_, PyAny>>) -> PyResult<Option<u64>> {
        let timeout = convert::opt_seconds("timeout", timeout)?;
        Ok(deadline_nanos(
            self.origin,
            deadline(&self.clock, timeout, self.max_wait),
        ))
    }

    /// Internal: one attempt of an async wait: ``None`` (taken) or the seconds to sleep.
    fn _step(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        n: i64,
        deadline: Option<u64>,
    ) -> PyResult<Option<f64>> {
        let n = tokens(py, n)?;
        let key = self::key(key)?;
        let deadline = deadline_from_nanos(self.origin, deadline);
        step(
            &self.clock,
            |now| self.inner.try_acquire_n_at(&key, n, now),
            deadline,
        )
        .map(|wait| wait.map(convert::secs))
        .map_err(|refused| refused.into_err(py))
    }

    /// Whole tokens in ``key``'s bucket now.
    fn available(&self, key: &Bound<'_, PyAny>) -> PyResult<u32> {
        Ok(self.inner.available_at(&self::key(key)?, self.clock.now()))
    }

    /// Forgets every key whose bucket has refilled (which changes no decision); returns how
    /// many keys remain.
    fn retain_recent(&self) -> usize {
        self.inner.retain_recent_at(self.clock.now())
    }

    /// The most keys remembered at once.
    #[getter]
    fn max_keys(&self) -> usize {
        self.inner.max_keys()
    }

    /// Tokens each bucket holds when full.
    #[getter]
    fn burst(&self) -> u32 {
        self.inner.burst()
    }

    /// The clock: ``None`` for the system clock, or the ``ManualClock`` given.
    #[getter]
    fn clock(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.clock.to_object(py)
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __repr__(&self) -> String {
        format!(
            "KeyedRateLimiter(burst={}, max_keys={}, keys={})",
            self.inner.burst(),
            self.inner.max_keys(),
            self.inner.len()
        )
    }
}

/// A token count from Python: at least 1 (taking none would always succeed and say nothing),
/// at most `u32::MAX`; anything else is a `ConfigError` naming `n`.
fn tokens(py: Python<'_>, n: i64) -> PyResult<u32> {
    match u32::try_from(n) {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(crate::errors::config_error(
            py,
            "n",
            format!(
                "n must be a whole number of tokens in [1, {}], got {n}",
                u32::MAX
            ),
        )),
    }
}
