//! `tailguard.CircuitBreaker`: the core's sans-IO breaker ([`StateMachine`]) driven with the
//! binding's clock. The sync decorator runs acquire, call and record here in Rust; the async
//! decorator and the context managers (`tailguard/_breaker.py`) use [`BreakerPermit`].

use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyException;
use pyo3::gc::{PyTraverseError, PyVisit};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};
use tailguard::breaker::{
    CircuitBreakerBuilder, Outcome, Reason, Rejected, State, StateMachine, Ticket, Transition,
};

use crate::backoff::Backoff;
use crate::clock::Clock;
use crate::{convert, errors};

/// Which exceptions count as failures of the dependency.
enum FailureOn {
    /// Every `Exception`.
    All,
    /// Instances of a class or tuple of classes; any other exception is ignored (neither
    /// success nor failure).
    Types(Py<PyAny>),
    /// `(exception) -> bool`: `True` counts as a failure, `False` is ignored.
    Predicate(Py<PyAny>),
}

type Listeners = Arc<Mutex<Vec<Py<PyAny>>>>;

/// A circuit breaker. Decorate functions with it, or use it as a (async) context manager.
#[pyclass(
    frozen,
    subclass,
    module = "tailguard._native",
    name = "CircuitBreaker"
)]
pub(crate) struct CircuitBreaker {
    /// Boxed: the state machine's window is cache-line aligned, more than a Python object's
    /// memory guarantees.
    machine: Box<StateMachine>,
    clock: Clock,
    on: FailureOn,
    on_obj: Py<PyAny>,
    listeners: Listeners,
    /// The tickets of the async decorator's calls in flight.
    tickets: Mutex<Tickets>,
}

fn state_name(state: State) -> &'static str {
    state.as_str()
}

fn reason_name(reason: Reason) -> &'static str {
    match reason {
        Reason::FailureRate => "failure_rate",
        Reason::SlowCallRate => "slow_call_rate",
        Reason::ConsecutiveFailures => "consecutive_failures",
        Reason::OpenDurationElapsed => "open_duration_elapsed",
        Reason::ProbesSucceeded => "probes_succeeded",
        Reason::ProbeFailed => "probe_failed",
        Reason::ProbeTimedOut => "probe_timed_out",
        Reason::Manual => "manual",
        Reason::Fleet => "fleet",
        _ => "other",
    }
}

/// `CircuitOpenError` for a rejected call. `retry_after` is the rest of the open duration when
/// open, and `None` when no time is known: forced open (until reset), or half-open with every
/// probe slot taken (a slot frees when a probe ends, which may be at once; the probe deadline
/// the core reports is only when the oldest probe would time out, and reopen the breaker).
fn open_error(py: Python<'_>, rejected: Rejected) -> PyErr {
    static CIRCUIT_OPEN: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    let ty = match CIRCUIT_OPEN.import(py, "tailguard._errors", "CircuitOpenError") {
        Ok(ty) => ty,
        Err(err) => return err,
    };
    let (message, retry_after) = match (rejected.state(), rejected.retry_after()) {
        (State::HalfOpen, probe_deadline) => {
            let mut message = "circuit breaker is half-open and every probe slot is taken; a slot \
                               frees when a probe ends"
                .to_owned();
            if let Some(deadline) = probe_deadline {
                message += &format!(" (the oldest times out in {:.3}s)", deadline.as_secs_f64());
            }
            (message, None)
        }
        (_, after) => (rejected.to_string(), after.map(|d| d.as_secs_f64())),
    };
    let state = state_name(rejected.state());
    match ty.call1((message, retry_after, state)) {
        Ok(value) => PyErr::from_value(value),
        Err(err) => err,
    }
}

impl CircuitBreaker {
    /// What an exception says about the dependency.
    fn outcome_of(&self, py: Python<'_>, exc: &Bound<'_, PyAny>) -> PyResult<Outcome> {
        // Cancellation, KeyboardInterrupt, SystemExit: the call was abandoned, not failed.
        if !exc.is_instance_of::<PyException>() {
            return Ok(Outcome::Ignored);
        }
        Ok(match &self.on {
            FailureOn::All => Outcome::Failure,
            FailureOn::Types(types) => {
                if exc.is_instance(types.bind(py))? {
                    Outcome::Failure
                } else {
                    Outcome::Ignored
                }
            }
            FailureOn::Predicate(predicate) => {
                if predicate.bind(py).call1((exc,))?.is_truthy()? {
                    Outcome::Failure
                } else {
                    Outcome::Ignored
                }
            }
        })
    }

    #[inline]
    fn acquire_ticket(&self, py: Python<'_>) -> PyResult<Ticket> {
        self.machine
            .try_acquire_at(self.clock.now())
            .map_err(|rejected| open_error(py, rejected))
    }

    /// Reports a ticket's outcome: `None` is a success, an exception is classified.
    fn finish(
        &self,
        py: Python<'_>,
        ticket: Ticket,
        exc: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let outcome = match exc {
            None => Outcome::Success,
            Some(exc) => match self.outcome_of(py, exc) {
                Ok(outcome) => outcome,
                Err(err) => {
                    // The predicate failed: the call counts as neither, and its error says why.
                    self.machine.release(ticket);
                    return Err(err);
                }
            },
        };
        match outcome {
            Outcome::Ignored => self.machine.release(ticket),
            outcome => self.machine.record_at(ticket, outcome, self.clock.now()),
        }
        Ok(())
    }

    /// For the pipeline's sync fast path: a ticket, or `CircuitOpenError`.
    #[inline]
    pub(crate) fn pipeline_acquire(&self, py: Python<'_>) -> PyResult<Ticket> {
        self.acquire_ticket(py)
    }

    /// For the pipeline's sync fast path: the call of `ticket` worked.
    #[inline]
    pub(crate) fn pipeline_succeeded(&self, ticket: Ticket) {
        self.machine
            .record_at(ticket, Outcome::Success, self.clock.now());
    }

    /// For the pipeline's sync fast path: keeps `ticket` under a number, which the Python loop
    /// hands back with `_settle` (as the async decorator's tickets).
    pub(crate) fn pipeline_keep(&self, ticket: Ticket) -> usize {
        self.lock_tickets().insert(ticket)
    }

    fn lock_tickets(&self) -> std::sync::MutexGuard<'_, Tickets> {
        self.tickets.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn permit<'py>(slf: &Bound<'py, Self>, ticket: Ticket) -> PyResult<Bound<'py, BreakerPermit>> {
        let is_probe = ticket.is_probe();
        Bound::new(
            slf.py(),
            BreakerPermit {
                breaker: slf.clone().unbind(),
                ticket: Mutex::new(Some(ticket)),
                is_probe,
            },
        )
    }
}

#[pymethods]
impl CircuitBreaker {
    #[new]
    #[pyo3(signature = (*, failure_rate = None, window = None, time_window = None, time_window_buckets = None, minimum_calls = None, consecutive_failures = None, open_duration = None, open_backoff = None, half_open_calls = None, half_open_success_rate = None, half_open_timeout = None, slow_call_duration = None, slow_call_rate = None, on = None, on_transition = None, stripes = None, clock = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        failure_rate: Option<&Bound<'_, PyAny>>,
        window: Option<&Bound<'_, PyAny>>,
        time_window: Option<&Bound<'_, PyAny>>,
        time_window_buckets: Option<&Bound<'_, PyAny>>,
        minimum_calls: Option<&Bound<'_, PyAny>>,
        consecutive_failures: Option<&Bound<'_, PyAny>>,
        open_duration: Option<&Bound<'_, PyAny>>,
        open_backoff: Option<&Bound<'_, PyAny>>,
        half_open_calls: Option<&Bound<'_, PyAny>>,
        half_open_success_rate: Option<&Bound<'_, PyAny>>,
        half_open_timeout: Option<&Bound<'_, PyAny>>,
        slow_call_duration: Option<&Bound<'_, PyAny>>,
        slow_call_rate: Option<&Bound<'_, PyAny>>,
        on: Option<&Bound<'_, PyAny>>,
        on_transition: Option<&Bound<'_, PyAny>>,
        stripes: Option<&Bound<'_, PyAny>>,
        clock: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        fn given<'a, 'py>(obj: Option<&'a Bound<'py, PyAny>>) -> Option<&'a Bound<'py, PyAny>> {
            obj.filter(|o| !o.is_none())
        }
        let clock = Clock::from_arg(clock)?;
        let mut builder = CircuitBreakerBuilder::new();
        if let Some(rate) = given(failure_rate) {
            builder = builder.failure_rate(convert::number("failure_rate", rate)?);
        }
        match (given(window), given(time_window)) {
            (Some(_), Some(_)) => {
                return Err(errors::config_error(
                    py,
                    "time_window",
                    "give either `window` (a number of calls) or `time_window` (seconds), not both",
                ))
            }
            (Some(calls), None) => {
                if given(time_window_buckets).is_some() {
                    return Err(errors::config_error(
                        py,
                        "time_window_buckets",
                        "applies only with `time_window`",
                    ));
                }
                builder = builder.count_window(convert::u32_at_least("window", calls, 0)?);
            }
            (None, Some(duration)) => {
                let buckets = match given(time_window_buckets) {
                    Some(b) => convert::u32_at_least("time_window_buckets", b, 0)?,
                    None => 10,
                };
                builder = builder.time_window(convert::seconds("time_window", duration)?, buckets);
            }
            (None, None) => {
                if given(time_window_buckets).is_some() {
                    return Err(errors::config_error(
                        py,
                        "time_window_buckets",
                        "applies only with `time_window`",
                    ));
                }
            }
        }
        if let Some(calls) = given(minimum_calls) {
            builder = builder.minimum_calls(convert::int_in("minimum_calls", calls, 0, u64::MAX)?);
        }
        if let Some(n) = given(consecutive_failures) {
            builder = builder.consecutive_failures(convert::int_in(
                "consecutive_failures",
                n,
                0,
                u64::MAX,
            )?);
        }
        match (given(open_duration), given(open_backoff)) {
            (Some(_), Some(_)) => {
                return Err(errors::config_error(
                    py,
                    "open_backoff",
                    "give either `open_duration` (seconds) or `open_backoff` (a Backoff), not both",
                ))
            }
            (Some(duration), None) => {
                if duration.cast::<Backoff>().is_ok() {
                    return Err(convert::type_error(
                        "open_duration",
                        "a number of seconds or a timedelta (pass a tailguard.Backoff as \
                         `open_backoff`)",
                        duration,
                    ));
                }
                builder = builder.open_duration(convert::seconds("open_duration", duration)?);
            }
            (None, Some(backoff)) => {
                let backoff = backoff.cast::<Backoff>().map_err(|_| {
                    convert::type_error("open_backoff", "a tailguard.Backoff", backoff)
                })?;
                builder = builder.open_backoff(backoff.get().fresh());
            }
            (None, None) => {}
        }
        if let Some(n) = given(half_open_calls) {
            builder = builder.half_open_calls(convert::u32_at_least("half_open_calls", n, 0)?);
        }
        if let Some(rate) = given(half_open_success_rate) {
            builder =
                builder.half_open_success_rate(convert::number("half_open_success_rate", rate)?);
        }
        if let Some(timeout) = given(half_open_timeout) {
            builder = builder.half_open_timeout(convert::seconds("half_open_timeout", timeout)?);
        }
        match (given(slow_call_duration), given(slow_call_rate)) {
            (Some(duration), rate) => {
                let rate = match rate {
                    Some(rate) => convert::number("slow_call_rate", rate)?,
                    None => 1.0,
                };
                builder =
                    builder.slow_calls(convert::seconds("slow_call_duration", duration)?, rate);
            }
            (None, Some(_)) => {
                return Err(errors::config_error(
                    py,
                    "slow_call_rate",
                    "applies only with `slow_call_duration`",
                ))
            }
            (None, None) => {}
        }
        if let Some(n) = given(stripes) {
            builder = builder.stripes(convert::int_in("stripes", n, 0, 1 << 20)? as usize);
        }
        let (on, on_obj) = match convert::exception_filter(on)? {
            convert::ExceptionFilter::Default => (
                FailureOn::All,
                py.get_type::<PyException>().into_any().unbind(),
            ),
            convert::ExceptionFilter::Types(types) => {
                (FailureOn::Types(types.clone_ref(py)), types)
            }
            convert::ExceptionFilter::Predicate(predicate) => {
                (FailureOn::Predicate(predicate.clone_ref(py)), predicate)
            }
        };
        let listeners: Listeners = Arc::new(Mutex::new(Vec::new()));
        if let Some(listener) = given(on_transition) {
            if !listener.is_callable() {
                return Err(convert::type_error("on_transition", "a callable", listener));
            }
            listeners
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(listener.clone().unbind());
        }
        let shared = Arc::clone(&listeners);
        builder = builder.on_transition(move |transition: &Transition| {
            notify(&shared, transition);
        });
        let machine = builder
            .build_state_machine_at(clock.now())
            .map_err(|e| errors::from_core(py, &e))?;
        Ok(CircuitBreaker {
            machine: Box::new(machine),
            clock,
            on,
            on_obj,
            listeners,
            tickets: Mutex::new(Tickets::default()),
        })
    }

    /// Decorates a function: a sync function gets a native wrapper, an `async def` a coroutine
    /// function. Each call acquires a permit (or raises `CircuitOpenError` without running)
    /// and reports its outcome.
    fn __call__(slf: &Bound<'_, Self>, func: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        if !func.is_callable() {
            return Err(convert::type_error("func", "a callable", func));
        }
        static WRAP_ASYNC: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        if convert::is_coroutine_function(func)? {
            let wrap = WRAP_ASYNC.import(py, "tailguard._breaker", "wrap_async")?;
            return Ok(wrap.call1((slf, func))?.unbind());
        }
        let wrapper = Bound::new(
            py,
            Guarded {
                breaker: slf.clone().unbind(),
                func: func.clone().unbind(),
            },
        )?;
        convert::update_wrapper(wrapper.as_any(), func)
    }

    /// Calls `func(*args, **kwargs)` through the breaker, once.
    #[pyo3(signature = (func, /, *args, **kwargs))]
    fn call(
        slf: &Bound<'_, Self>,
        func: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        guarded_call(slf.py(), slf.get(), func, args, kwargs)
    }

    /// Asks for a permit: raises `CircuitOpenError` if the breaker refuses the call. Report the
    /// outcome with the permit's `success()`, `failure()` or `record(exc)`; a permit released
    /// or collected without a report counts as neither.
    fn acquire<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, BreakerPermit>> {
        let ticket = slf.get().acquire_ticket(slf.py())?;
        CircuitBreaker::permit(slf, ticket)
    }

    /// Internal, for the async decorator: acquires like `acquire()` (raising `CircuitOpenError`
    /// when refused), keeps the ticket, and returns its number, to hand back with `_succeeded`
    /// or `_settle` when the call ends: no permit object per call.
    fn _enter(&self, py: Python<'_>) -> PyResult<usize> {
        let ticket = self.acquire_ticket(py)?;
        Ok(self.lock_tickets().insert(ticket))
    }

    /// Internal: the call of ticket `number` (from `_enter`) worked.
    fn _succeeded(&self, number: usize) {
        let ticket = self.lock_tickets().take(number);
        if let Some(ticket) = ticket {
            self.machine
                .record_at(ticket, Outcome::Success, self.clock.now());
        }
    }

    /// Internal: the call of ticket `number` (from `_enter`) raised `exc`, classified as
    /// `permit.record(exc)` does (cancellation releases the ticket).
    fn _settle(&self, py: Python<'_>, number: usize, exc: &Bound<'_, PyAny>) -> PyResult<()> {
        let ticket = self.lock_tickets().take(number);
        match ticket {
            Some(ticket) => self.finish(py, ticket, Some(exc)),
            None => Ok(()),
        }
    }

    /// `"closed"`, `"open"`, `"half_open"`, `"forced_open"` or `"disabled"`. Open turns
    /// half-open on the first call after the open duration.
    #[getter]
    fn state(&self) -> &'static str {
        state_name(self.machine.state())
    }

    /// A snapshot of the counters.
    fn metrics(&self) -> BreakerMetrics {
        let now = self.clock.now();
        let m = self.machine.metrics_at(now);
        BreakerMetrics {
            state: state_name(m.state),
            calls: m.calls,
            failures: m.failures,
            slow_calls: m.slow_calls,
            failure_rate: m.failure_rate,
            slow_call_rate: m.slow_call_rate,
            consecutive_failures: m.consecutive_failures,
            rejections: m.rejections,
            probes_in_flight: m.probes_in_flight,
            in_state_for: now.saturating_duration_since(m.since).as_secs_f64(),
            open_for: m
                .open_until
                .map(|until| until.saturating_duration_since(now).as_secs_f64()),
        }
    }

    /// Opens the breaker until `reset()` or `disable()`.
    fn force_open(&self) {
        self.machine.force_open_at(self.clock.now());
    }

    /// Admits every call and keeps measuring, but never trips, until `reset()` or
    /// `force_open()`.
    fn disable(&self) {
        self.machine.disable_at(self.clock.now());
    }

    /// Closes the breaker with an empty window and the open duration back at its start.
    fn reset(&self) {
        self.machine.reset_at(self.clock.now());
    }

    /// Calls `listener(transition)` after every change of state, on the thread that caused it.
    /// An exception it raises is reported with `sys.unraisablehook`, never to the caller.
    fn add_listener(&self, listener: &Bound<'_, PyAny>) -> PyResult<()> {
        if !listener.is_callable() {
            return Err(convert::type_error("listener", "a callable", listener));
        }
        self.listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(listener.clone().unbind());
        Ok(())
    }

    /// Removes a listener added before; `False` if it was not there.
    fn remove_listener(&self, listener: &Bound<'_, PyAny>) -> bool {
        let mut listeners = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
        match listeners.iter().position(|l| l.is(listener)) {
            Some(index) => {
                listeners.remove(index);
                true
            }
            None => false,
        }
    }

    /// Which exceptions count as failures.
    #[getter]
    fn on(&self, py: Python<'_>) -> Py<PyAny> {
        self.on_obj.clone_ref(py)
    }

    /// The predicate or classes and the listeners, for the cycle collector (a listener that is
    /// a method of the breaker's owner, or refers to the breaker, makes a cycle). A listener
    /// list locked elsewhere is skipped: the collector then keeps the objects, which is safe.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let FailureOn::Types(obj) | FailureOn::Predicate(obj) = &self.on {
            visit.call(obj)?;
        }
        visit.call(&self.on_obj)?;
        if let Ok(listeners) = self.listeners.try_lock() {
            for listener in listeners.iter() {
                visit.call(listener)?;
            }
        }
        Ok(())
    }

    /// Breaks a cycle by dropping the listeners (`on` is fixed; a cycle through it runs through
    /// a clearable object too).
    fn __clear__(&self) {
        let listeners =
            std::mem::take(&mut *self.listeners.lock().unwrap_or_else(|p| p.into_inner()));
        drop(listeners);
    }

    /// Internal, for `tailguard.fleet`'s background thread: `(state, since, age_ms,
    /// published, judged)`, the last two `(calls, failures, slow_calls)`: this instance's part
    /// of the fleet's window (a count window's newest `window / instances` calls; a time
    /// window's calls still in it `ahead` seconds on, and its whole window).
    fn _fleet_view(&self, instances: u64, ahead: f64) -> fleet::View {
        fleet::view(&self.machine, &self.clock, instances, ahead)
    }

    /// Internal, for `tailguard.fleet`: whether a window holding these counts (summed over
    /// the fleet) would open this breaker by its own rules.
    fn _fleet_crosses(&self, calls: u64, failures: u64, slow_calls: u64) -> bool {
        self.machine.crosses_threshold(calls, failures, slow_calls)
    }

    /// Internal, for `tailguard.fleet`: opens a closed breaker (reason `"fleet"`), as its own
    /// window would; `False` if it was not closed.
    fn _fleet_trip(&self) -> bool {
        self.machine.trip_at(self.clock.now())
    }

    fn __repr__(&self) -> String {
        let m = self.machine.metrics_at(self.clock.now());
        format!(
            "CircuitBreaker(state={:?}, calls={}, failures={})",
            state_name(m.state),
            m.calls,
            m.failures
        )
    }
}

mod fleet;
mod guarded;
mod permit;
mod report;

use self::guarded::guarded_call;
pub(crate) use self::guarded::Guarded;
pub(crate) use self::permit::BreakerPermit;
use self::permit::Tickets;
use self::report::notify;
pub(crate) use self::report::{BreakerMetrics, BreakerTransition};
