//! Time for the Python binding: the system clock, or a [`ManualClock`] that tests move by hand;
//! and the testing switch that turns every backoff sleep into no sleep.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use crate::convert;

/// When set, retry loops do not sleep between attempts (`tailguard.testing.set_testing`).
static ZERO_SLEEPS: AtomicBool = AtomicBool::new(false);

/// The furthest a manual clock may be advanced: 200 years, far inside what `Instant` can hold.
const MANUAL_LIMIT_NANOS: u64 = 200 * 365 * 86_400 * 1_000_000_000;

/// Whether testing mode (zero sleeps) is on.
pub(crate) fn zero_sleeps() -> bool {
    ZERO_SLEEPS.load(Ordering::Relaxed)
}

/// Turns testing mode on or off; returns the previous setting. Internal: the public
/// `tailguard.testing.set_testing` wraps it in a context manager that restores that setting.
#[pyfunction]
#[pyo3(name = "_set_testing", signature = (enabled, /))]
pub(crate) fn set_testing(enabled: bool) -> bool {
    ZERO_SLEEPS.swap(enabled, Ordering::SeqCst)
}

/// Whether testing mode (every backoff sleep is zero) is on.
#[pyfunction]
pub(crate) fn is_testing() -> bool {
    zero_sleeps()
}

/// Where a policy reads the time.
#[derive(Clone, Debug)]
pub(crate) enum Clock {
    System,
    Manual(Arc<ManualInner>),
}

#[derive(Debug)]
pub(crate) struct ManualInner {
    origin: Instant,
    /// Nanoseconds after `origin`.
    offset: AtomicU64,
    /// What `now()` reads at `origin`, in seconds.
    start: f64,
}

impl ManualInner {
    fn now(&self) -> Instant {
        // The offset is capped far below what an `Instant` can add.
        self.origin + Duration::from_nanos(self.offset.load(Ordering::SeqCst))
    }

    /// Moves the clock forward by `delay`, saturating at the limit.
    fn advance(&self, delay: Duration) {
        let nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .offset
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |offset| {
                Some(offset.saturating_add(nanos).min(MANUAL_LIMIT_NANOS))
            });
    }
}

impl Clock {
    /// The clock named by a `clock=` argument: `None` is the system clock.
    pub(crate) fn from_arg(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Clock> {
        match obj {
            None => Ok(Clock::System),
            Some(obj) if obj.is_none() => Ok(Clock::System),
            Some(obj) => match obj.cast::<ManualClock>() {
                Ok(manual) => Ok(Clock::Manual(manual.get().inner.clone())),
                Err(_) => Err(convert::type_error(
                    "clock",
                    "a tailguard.testing.ManualClock or None",
                    obj,
                )),
            },
        }
    }

    #[inline]
    pub(crate) fn now(&self) -> Instant {
        match self {
            Clock::System => Instant::now(),
            Clock::Manual(inner) => inner.now(),
        }
    }

    /// The delay a retry loop should really wait: a manual clock is advanced instead (returns
    /// zero), and testing mode makes every delay zero.
    pub(crate) fn sleep_for(&self, delay: Duration) -> Duration {
        match self {
            Clock::Manual(inner) => {
                inner.advance(delay);
                Duration::ZERO
            }
            Clock::System if zero_sleeps() => Duration::ZERO,
            Clock::System => delay,
        }
    }

    /// Sleeps for `delay` in a synchronous loop: through Python's `time.sleep`, which releases
    /// the GIL and is interrupted by signals (KeyboardInterrupt stops it at once).
    pub(crate) fn sleep_blocking(&self, py: Python<'_>, delay: Duration) -> PyResult<()> {
        let delay = self.sleep_for(delay);
        if delay.is_zero() {
            return py.check_signals();
        }
        static SLEEP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let sleep = SLEEP.import(py, "time", "sleep")?;
        sleep.call1((delay.as_secs_f64(),))?;
        Ok(())
    }

    /// A Python function that reads this clock in seconds: `time.monotonic`, or a manual clock's
    /// `now`. A reading is turned back into an instant by [`Clock::instant_of`].
    pub(crate) fn reader(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self {
            Clock::System => {
                static MONOTONIC: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
                Ok(MONOTONIC.import(py, "time", "monotonic")?.clone().unbind())
            }
            Clock::Manual(_) => Ok(self.to_object(py)?.bind(py).getattr("now")?.unbind()),
        }
    }

    /// The instant at which [`Clock::reader`] read `reading` (seconds): now, minus how long ago
    /// that was on the reader's own clock.
    pub(crate) fn instant_of(&self, py: Python<'_>, reading: f64) -> PyResult<Instant> {
        let (now, read_now) = match self {
            Clock::System => {
                let now = Instant::now();
                let read_now: f64 = self.reader(py)?.bind(py).call0()?.extract()?;
                (now, read_now)
            }
            Clock::Manual(inner) => {
                let offset = Duration::from_nanos(inner.offset.load(Ordering::SeqCst));
                (inner.origin + offset, inner.start + offset.as_secs_f64())
            }
        };
        let ago = Duration::try_from_secs_f64(read_now - reading).unwrap_or(Duration::ZERO);
        Ok(match self {
            Clock::Manual(inner) => now
                .checked_sub(ago)
                .unwrap_or(inner.origin)
                .max(inner.origin),
            Clock::System => now.checked_sub(ago).unwrap_or(now),
        })
    }

    /// The Python object to expose as the `clock` attribute.
    pub(crate) fn to_object(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self {
            Clock::System => Ok(py.None()),
            Clock::Manual(inner) => Ok(Py::new(
                py,
                ManualClock {
                    inner: inner.clone(),
                },
            )?
            .into_any()),
        }
    }
}

/// A clock that only moves when told to, for tests: pass it as `clock=` to a retry policy, a
/// budget, a breaker or a histogram, then `advance()` it. Retry loops on a manual clock do not
/// sleep; they advance the clock by the delay instead.
#[pyclass(frozen, module = "tailguard.testing")]
pub(crate) struct ManualClock {
    inner: Arc<ManualInner>,
}

#[pymethods]
impl ManualClock {
    #[new]
    #[pyo3(signature = (start = None))]
    fn new(py: Python<'_>, start: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let start = match start {
            Some(start) => convert::number("start", start)?,
            None => 0.0,
        };
        if !start.is_finite() {
            return Err(crate::errors::config_error(
                py,
                "start",
                format!("must be a finite number, got {start}"),
            ));
        }
        Ok(ManualClock {
            inner: Arc::new(ManualInner {
                origin: Instant::now(),
                offset: AtomicU64::new(0),
                start,
            }),
        })
    }

    /// The current reading, in seconds (the `start` given, plus every advance).
    fn now(&self) -> f64 {
        let offset = self.inner.offset.load(Ordering::SeqCst);
        self.inner.start + Duration::from_nanos(offset).as_secs_f64()
    }
    /// Moves the clock forward by `seconds` (a non-negative number or a timedelta).
    fn advance(&self, seconds: &Bound<'_, PyAny>) -> PyResult<()> {
        let delay = convert::seconds("seconds", seconds)?;
        let nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
        let offset = self.inner.offset.load(Ordering::SeqCst);
        if offset.saturating_add(nanos) > MANUAL_LIMIT_NANOS {
            return Err(crate::errors::config_error(
                seconds.py(),
                "seconds",
                "would move the clock past 200 years from its creation",
            ));
        }
        self.inner.advance(delay);
        Ok(())
    }

    fn __repr__(&self) -> String {
        format!("ManualClock(now={})", self.now())
    }
}

impl Clock {
    /// Waits `delay` as a limiter does: a manual clock is advanced (and nothing is slept); the
    /// system clock's delay is returned to sleep. Testing mode does not shorten it: a rate
    /// limiter that slept zero on the system clock would only spin until the token came.
    pub(crate) fn wait_for(&self, delay: Duration) -> Duration {
        match self {
            Clock::Manual(inner) => {
                inner.advance(delay);
                Duration::ZERO
            }
            Clock::System => delay,
        }
    }
}

/// The binding's [`Clock`] as a core [`Timer`](tailguard::time::Timer), for the policies built
/// on one (the limiters): `now` reads the clock. Sleeps are real on the system clock; on a
/// manual clock they never end (the binding waits on a manual clock by advancing it instead).
#[derive(Clone, Debug)]
pub(crate) struct ClockTimer(pub(crate) Clock);

impl tailguard::time::Timer for ClockTimer {
    type Sleep = <tailguard::time::DefaultTimer as tailguard::time::Timer>::Sleep;

    fn now(&self) -> Instant {
        self.0.now()
    }

    fn sleep_until(&self, deadline: Instant) -> Self::Sleep {
        use tailguard::time::DefaultTimer;
        match self.0 {
            Clock::System => DefaultTimer::default().sleep_until(deadline),
            Clock::Manual(_) => DefaultTimer::default().sleep_until(far_future()),
        }
    }
}

/// About thirty years from now: "never" for a sleep.
pub(crate) fn far_future() -> Instant {
    let now = Instant::now();
    now.checked_add(Duration::from_secs(86_400 * 365 * 30))
        .unwrap_or(now)
}
