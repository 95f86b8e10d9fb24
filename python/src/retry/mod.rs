//! `tailguard.retry`: the retry policy and the wrapper it puts around a sync function, whose
//! whole loop runs here in Rust. Async functions get a small Python coroutine
//! (`tailguard/_retry.py`) that drives the same state machine through [`RetryRun`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::exceptions::{PyException, PyTypeError};
use pyo3::gc::{PyTraverseError, PyVisit};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyTuple};
use tailguard::retry::{Decision, GaveUp, Next, Retry as CoreRetry, RetryConfig, RetryState};

use crate::backoff::Backoff;
use crate::clock::Clock;
use crate::{convert, errors};

/// Which exceptions are worth another attempt.
enum Classifier {
    /// Every `Exception` (the default).
    All,
    /// Instances of a class or a tuple of classes.
    Types(Py<PyAny>),
    /// A callable `(exception) -> bool | float`: `True` retries after the backoff's delay,
    /// `False` stops, a number retries after that many seconds (a server's `Retry-After`).
    Predicate(Py<PyAny>),
}

impl Classifier {
    /// The Python object the classifier holds, if any.
    fn object(&self) -> Option<&Py<PyAny>> {
        match self {
            Classifier::All => None,
            Classifier::Types(obj) | Classifier::Predicate(obj) => Some(obj),
        }
    }
}

/// A retry policy: `tailguard.retry(...)` returns one, and calling it on a function decorates
/// that function.
///
/// Settings (all optional, keyword only): `on`, what is retried: an exception class, a
/// non-empty tuple of them, or a predicate called with the exception that returns `True`
/// (retry after the backoff's delay), `False` or `None` (do not retry: the exception
/// propagates as it is), or a number of seconds: retry after exactly that long (a server's
/// `Retry-After`; the backoff still counts the retry, and waits longer than 60 s are cut to
/// 60 s). Default: every `Exception`. `attempts` (3, the first included); `deadline` and
/// `timeout` (seconds or a `timedelta`; `timeout` bounds each attempt of an async call);
/// `backoff` (a `Backoff`); `budget` (a `RetryBudget` shared by every policy that calls the
/// same dependency; it must read the same clock as the policy: pass the same `clock=` to both,
/// or leave out the policy's `clock` and it follows its budget's); `on_retry` (called with a
/// `RetryEvent` before each retry; an `async def` hook is awaited when the decorated function
/// is async, and refused with `ConfigError` for a sync one); `retry_on_timeout` (`True`); `clock` (a
/// `tailguard.testing.ManualClock`, or `None` for the system clock).
#[pyclass(frozen, module = "tailguard", name = "Retry")]
pub(crate) struct RetryPolicy {
    config: Arc<RetryConfig>,
    classifier: Classifier,
    on: Py<PyAny>,
    on_retry: Option<Py<PyAny>>,
    pub(crate) clock: Clock,
    clock_obj: Option<Py<PyAny>>,
    backoff: Py<Backoff>,
    budget: Option<Py<RetryBudget>>,
    /// Whether a call must read the clock before its first attempt (a deadline or a budget).
    needs_start: bool,
    /// Whether `on_retry` is an `async def` (a sync call cannot await it).
    hook_is_async: bool,
}

fn classifier_arg(
    py: Python<'_>,
    on: Option<&Bound<'_, PyAny>>,
) -> PyResult<(Classifier, Py<PyAny>)> {
    Ok(match convert::exception_filter(on)? {
        convert::ExceptionFilter::Default => (
            Classifier::All,
            py.get_type::<PyException>().into_any().unbind(),
        ),
        convert::ExceptionFilter::Types(types)
            if types.bind(py).is(py.get_type::<PyException>()) =>
        {
            (Classifier::All, types)
        }
        convert::ExceptionFilter::Types(types) => (Classifier::Types(types.clone_ref(py)), types),
        convert::ExceptionFilter::Predicate(predicate) => {
            (Classifier::Predicate(predicate.clone_ref(py)), predicate)
        }
    })
}

impl RetryPolicy {
    /// The classifier's verdict on `exc`. A predicate's own exception propagates.
    fn classify(
        &self,
        py: Python<'_>,
        exc: &Bound<'_, PyAny>,
        timed_out: bool,
    ) -> PyResult<Decision> {
        if timed_out {
            return Ok(self.config.on_timeout());
        }
        match &self.classifier {
            Classifier::All => Ok(Decision::Retry),
            Classifier::Types(types) => Ok(if exc.is_instance(types.bind(py))? {
                Decision::Retry
            } else {
                Decision::Stop
            }),
            Classifier::Predicate(predicate) => {
                let verdict = predicate.bind(py).call1((exc,))?;
                if let Ok(flag) = verdict.cast::<PyBool>() {
                    return Ok(if flag.is_true() {
                        Decision::Retry
                    } else {
                        Decision::Stop
                    });
                }
                if verdict.is_none() {
                    return Ok(Decision::Stop);
                }
                if verdict.is_instance_of::<PyInt>() || verdict.is_instance_of::<PyFloat>() {
                    let secs = convert::number("on", &verdict)?;
                    let delay = convert::seconds_from_f64(py, "on", secs)?;
                    return Ok(Decision::RetryAfter(delay));
                }
                Err(PyTypeError::new_err(format!(
                    "the `on` predicate must return a bool (retry or not) or a number of seconds \
                     to wait (a server's Retry-After), got {}",
                    convert::short_repr(&verdict)
                )))
            }
        }
    }

    /// After a failed attempt: decides, calls the hook, and returns the delay to wait, or the
    /// error to raise (`Err(None)` means re-raise the attempt's own exception).
    fn after_failure<R: std::borrow::Borrow<RetryConfig>>(
        &self,
        py: Python<'_>,
        state: &mut RetryState<R>,
        exc: &Bound<'_, PyAny>,
        timed_out: bool,
    ) -> Result<Duration, Option<PyErr>> {
        let decision = self.classify(py, exc, timed_out).map_err(Some)?;
        let now = self.clock.now();
        match state.on_failure_at(now, decision) {
            Next::Retry(delay) => {
                if let Some(hook) = &self.on_retry {
                    let event = RetryEvent {
                        attempt: state.attempts(),
                        delay: delay.as_secs_f64(),
                        elapsed: state.elapsed_at(now).as_secs_f64(),
                        exception: exc.clone().unbind(),
                    };
                    let returned = hook.bind(py).call1((event,)).map_err(Some)?;
                    if convert::is_awaitable(&returned).map_err(Some)? {
                        return Err(Some(sync_cannot_await(&returned)));
                    }
                }
                Ok(delay)
            }
            Next::GiveUp(GaveUp::NotRetryable) => Err(None),
            Next::GiveUp(reason) => Err(Some(errors::retry_error(
                py,
                reason,
                state.attempts(),
                state.elapsed_at(now).as_secs_f64(),
                PyErr::from_value(exc.clone()),
            ))),
        }
    }
}

/// The error for an `on_retry` hook that returned an awaitable in a sync call; a coroutine is
/// closed first, so Python does not warn that it was never awaited.
fn sync_cannot_await(returned: &Bound<'_, PyAny>) -> PyErr {
    if returned.hasattr("close").unwrap_or(false) {
        if let Err(err) = returned.call_method0("close") {
            return err;
        }
    }
    PyTypeError::new_err(format!(
        "`on_retry` returned {}, an awaitable: a sync call's retries cannot await it; pass a \
         plain function as `on_retry`, or retry an `async def`",
        convert::short_repr(returned)
    ))
}

impl RetryPolicy {
    /// Refuses an `async def` hook for a sync function, when it is decorated or called.
    fn check_sync(&self, py: Python<'_>) -> PyResult<()> {
        if self.hook_is_async {
            return Err(errors::config_error(
                py,
                "on_retry",
                "is an `async def`, which the retries of a sync function cannot await; pass a \
                 plain function, or retry an `async def`",
            ));
        }
        Ok(())
    }
}

#[pymethods]
impl RetryPolicy {
    #[new]
    #[pyo3(signature = (*, on = None, attempts = None, deadline = None, timeout = None, backoff = None, budget = None, on_retry = None, retry_on_timeout = None, clock = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        on: Option<&Bound<'_, PyAny>>,
        attempts: Option<&Bound<'_, PyAny>>,
        deadline: Option<&Bound<'_, PyAny>>,
        timeout: Option<&Bound<'_, PyAny>>,
        backoff: Option<&Bound<'_, PyAny>>,
        budget: Option<&Bound<'_, PyAny>>,
        on_retry: Option<&Bound<'_, PyAny>>,
        retry_on_timeout: Option<&Bound<'_, PyAny>>,
        clock: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let (classifier, on) = classifier_arg(py, on)?;
        let mut builder = CoreRetry::builder();
        if let Some(attempts) = attempts.filter(|a| !a.is_none()) {
            builder = builder.max_attempts(convert::u32_at_least("attempts", attempts, 1)?);
        }
        if let Some(deadline) = deadline.filter(|d| !d.is_none()) {
            builder = builder.max_elapsed(convert::positive_seconds("deadline", deadline)?);
        }
        if let Some(timeout) = timeout.filter(|t| !t.is_none()) {
            builder = builder.attempt_timeout(convert::positive_seconds("timeout", timeout)?);
        }
        let retry_on_timeout = match retry_on_timeout {
            None => true,
            Some(obj) => match obj.cast::<PyBool>() {
                Ok(flag) => flag.is_true(),
                Err(_) => return Err(convert::type_error("retry_on_timeout", "a bool", obj)),
            },
        };
        builder = builder.on_timeout(if retry_on_timeout {
            Decision::Retry
        } else {
            Decision::Stop
        });
        let backoff: Py<Backoff> = match backoff.filter(|b| !b.is_none()) {
            Some(obj) => match obj.cast::<Backoff>() {
                Ok(b) => b.clone().unbind(),
                Err(_) => return Err(convert::type_error("backoff", "a tailguard.Backoff", obj)),
            },
            None => Py::new(py, Backoff::default())?,
        };
        builder = builder.backoff(backoff.get().inner.clone());
        let mut clock_obj = clock.filter(|c| !c.is_none()).map(|c| c.clone().unbind());
        let mut clock = Clock::from_arg(clock)?;
        let budget: Option<Py<RetryBudget>> = match budget.filter(|b| !b.is_none()) {
            Some(obj) => match obj.cast::<RetryBudget>() {
                Ok(b) => Some(b.clone().unbind()),
                Err(_) => {
                    return Err(convert::type_error(
                        "budget",
                        "a tailguard.RetryBudget",
                        obj,
                    ))
                }
            },
            None => None,
        };
        if let Some(budget) = &budget {
            let budget_clock = &budget.get().clock;
            match (&clock, budget_clock, &clock_obj) {
                // No clock given: the policy follows its budget's.
                (_, _, None) => {
                    clock = budget_clock.clone();
                    clock_obj = Some(budget_clock.to_object(py)?);
                }
                (Clock::Manual(a), Clock::Manual(b), _) if Arc::ptr_eq(a, b) => {}
                (policy_clock, budget_clock, _) => {
                    let describe = |clock: &Clock| match clock {
                        Clock::System => "the system clock",
                        Clock::Manual(_) => "a ManualClock",
                    };
                    let (policy_reads, budget_reads) =
                        match (describe(policy_clock), describe(budget_clock)) {
                            (a, b) if a == b => ("one ManualClock", "another"),
                            pair => pair,
                        };
                    return Err(errors::config_error(
                        py,
                        "budget",
                        format!(
                            "must run on the same clock as the policy, but the policy reads \
                             {policy_reads} and the budget {budget_reads}. Pass the same clock \
                             to both (`RetryBudget(..., clock=clock)` and `retry(..., \
                             clock=clock)`), or leave out the policy's `clock` and it follows \
                             its budget's"
                        ),
                    ));
                }
            }
            builder = builder.budget(budget.get().inner.clone());
        }
        if let Some(hook) = on_retry.filter(|h| !h.is_none()) {
            if !hook.is_callable() {
                return Err(convert::type_error("on_retry", "a callable or None", hook));
            }
        }
        let on_retry = on_retry
            .filter(|h| !h.is_none())
            .map(|h| h.clone().unbind());
        let hook_is_async = match &on_retry {
            Some(hook) => convert::is_coroutine_function(hook.bind(py))?,
            None => false,
        };
        let policy = builder.build().map_err(|e| errors::from_core(py, &e))?;
        let config = policy.config().clone();
        let needs_start = config.max_elapsed().is_some() || config.budget().is_some();
        Ok(RetryPolicy {
            config: Arc::new(config),
            classifier,
            on,
            on_retry,
            clock,
            clock_obj,
            backoff,
            budget,
            needs_start,
            hook_is_async,
        })
    }

    /// The Python objects the policy holds, for the cycle collector. They are fixed at
    /// construction (the class is frozen), so there is no `__clear__`: a cycle through a policy
    /// always runs through a clearable object too (the instance or `__dict__` of the service whose
    /// method is the hook or predicate).
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(self.classifier.object())?;
        visit.call(&self.on)?;
        visit.call(&self.on_retry)?;
        visit.call(&self.clock_obj)?;
        visit.call(&self.backoff)?;
        visit.call(&self.budget)?;
        Ok(())
    }

    /// Decorates `func`: a sync function gets a native wrapper, an `async def` a coroutine
    /// function.
    fn __call__(slf: &Bound<'_, Self>, func: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        if !func.is_callable() {
            return Err(convert::type_error("func", "a callable", func));
        }
        static WRAP_ASYNC: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        if convert::is_coroutine_function(func)? {
            let wrap = WRAP_ASYNC.import(py, "tailguard._retry", "wrap_async")?;
            return Ok(wrap.call1((slf, func))?.unbind());
        }
        if slf.get().config.attempt_timeout().is_some() {
            return Err(errors::config_error(
                py,
                "timeout",
                "applies only to async functions (a running sync call cannot be interrupted); \
                 use `deadline` to bound a sync call's retries",
            ));
        }
        slf.get().check_sync(py)?;
        let wrapper = Bound::new(
            py,
            Retrying {
                policy: slf.clone().unbind(),
                func: func.clone().unbind(),
            },
        )?;
        convert::update_wrapper(wrapper.as_any(), func)
    }

    /// Calls `func(*args, **kwargs)` under the policy, once: a sync call without decorating.
    #[pyo3(signature = (func, /, *args, **kwargs))]
    fn call(
        slf: &Bound<'_, Self>,
        func: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        if slf.get().config.attempt_timeout().is_some() {
            return Err(errors::config_error(
                py,
                "timeout",
                "applies only to async functions; use `deadline` for sync calls",
            ));
        }
        slf.get().check_sync(py)?;
        run_sync(py, slf.get(), func, args, kwargs)
    }

    /// The exception classes (or predicate) that are retried.
    #[getter]
    fn on(&self, py: Python<'_>) -> Py<PyAny> {
        self.on.clone_ref(py)
    }

    /// The most attempts per call, the first included.
    #[getter]
    fn attempts(&self) -> u32 {
        self.config.max_attempts()
    }

    /// The deadline for a whole call in seconds, or `None`.
    #[getter]
    fn deadline(&self) -> Option<f64> {
        self.config.max_elapsed().map(convert::secs)
    }

    /// The time limit of each attempt of an async call in seconds, or `None`.
    #[getter]
    fn timeout(&self) -> Option<f64> {
        self.config.attempt_timeout().map(convert::secs)
    }

    /// The delays between attempts.
    #[getter]
    fn backoff(&self, py: Python<'_>) -> Py<Backoff> {
        self.backoff.clone_ref(py)
    }

    /// The shared retry budget, or `None`.
    #[getter]
    fn budget(&self, py: Python<'_>) -> Option<Py<RetryBudget>> {
        self.budget.as_ref().map(|b| b.clone_ref(py))
    }

    /// The manual clock the policy runs on, or `None` for the system clock.
    #[getter]
    fn clock(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.clock_obj.as_ref().map(|c| c.clone_ref(py))
    }

    /// Whether an async call must go through the full loop from its first attempt (a timeout,
    /// a deadline or a budget), rather than the fast path that starts the loop at the first
    /// failure.
    #[getter]
    fn _needs_run(&self) -> bool {
        self.needs_start || self.config.attempt_timeout().is_some()
    }

    /// Starts the state of one async call, before its first attempt.
    fn _start(slf: &Bound<'_, Self>) -> RetryRun {
        RetryRun {
            policy: slf.clone().unbind(),
            state: Mutex::new(RetryState::new(slf.get().config.clone())),
            last: Mutex::new(None),
        }
    }

    /// The function that reads the policy's clock in seconds (`time.monotonic`, or the manual
    /// clock's `now`): an async call reads it before its first attempt, for `_after_first_failure`.
    #[getter]
    fn _now(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.clock.reader(py)
    }

    /// The state of one async call whose first attempt just failed (attempt 1 is counted);
    /// `started` is what `_now()` read before that attempt.
    fn _after_first_failure(slf: &Bound<'_, Self>, started: f64) -> PyResult<RetryRun> {
        let policy = slf.get();
        let mut state = RetryState::new(policy.config.clone());
        // Without a deadline, starting the call cannot fail.
        let _ = state.begin_attempt_at(policy.clock.instant_of(slf.py(), started)?);
        Ok(RetryRun {
            policy: slf.clone().unbind(),
            state: Mutex::new(state),
            last: Mutex::new(None),
        })
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let on = convert::short_repr(self.on.bind(py));
        let mut text = format!("Retry(on={on}, attempts={}", self.config.max_attempts());
        if let Some(d) = self.deadline() {
            text += &format!(", deadline={d}");
        }
        if let Some(t) = self.timeout() {
            text += &format!(", timeout={t}");
        }
        text += &format!(", backoff={}", self.backoff.get().__repr__());
        if let Some(b) = &self.budget {
            text += &format!(", budget={}", b.get().__repr__());
        }
        text + ")"
    }
}

mod budget;
mod run;
mod sync_call;

pub(crate) use self::budget::RetryBudget;
pub(crate) use self::run::{RetryEvent, RetryRun};
use self::sync_call::run_sync;
pub(crate) use self::sync_call::Retrying;
