//! Building a breaker: every knob, its default and its accepted range.

use std::fmt;
use std::time::{Duration, Instant};

use super::machine::StateMachine;
use super::open_duration::{self, OpenDurations};
use super::state::Transition;
use super::window::Window;
use super::CircuitBreaker;
use crate::backoff::Backoff;
use crate::metrics::PolicyName;
#[cfg(any(feature = "async-io", feature = "futures-timer"))]
use crate::time::DefaultTimer;
use crate::time::Timer;
use crate::{validate, ConfigError};

const DEFAULT_WINDOW: u32 = 100;
const DEFAULT_MINIMUM_CALLS: u64 = 20;
const MAX_COUNT_WINDOW: u32 = 1_000_000;
const MAX_BUCKETS: u32 = 1_000;
const MAX_HALF_OPEN_CALLS: u32 = 10_000;
const MAX_STRIPES: usize = 64;

type Listener = Box<dyn Fn(&Transition) + Send + Sync>;

#[derive(Clone, Copy, Debug)]
enum WindowSpec {
    Count(u32),
    Time { duration: Duration, buckets: u32 },
}

/// Configures and builds a [`CircuitBreaker`] (or a bare [`StateMachine`]).
///
/// | setting | default | accepted |
/// |---|---|---|
/// | [`failure_rate`](Self::failure_rate) | 0.5 | (0, 1] |
/// | [`slow_calls`](Self::slow_calls) | off | duration > 0, rate in (0, 1] |
/// | [`count_window`](Self::count_window) | 100 calls | 1 ..= 1,000,000 |
/// | [`time_window`](Self::time_window) | — | duration ≥ 1 ns per bucket, 1 ..= 1000 buckets |
/// | [`minimum_calls`](Self::minimum_calls) | 20 (or the count window, if smaller) | ≥ 1, ≤ a count window |
/// | [`consecutive_failures`](Self::consecutive_failures) | off | ≥ 1 |
/// | [`open_duration`](Self::open_duration) / [`open_backoff`](Self::open_backoff) | 10 s doubling to 5 min, equal jitter | > 0; a [`Backoff`] without full jitter |
/// | [`half_open_calls`](Self::half_open_calls) | 5 | 1 ..= 10,000 |
/// | [`half_open_success_rate`](Self::half_open_success_rate) | 1.0 | (0, 1] |
/// | [`half_open_timeout`](Self::half_open_timeout) | 60 s | > 0 |
/// | [`stripes`](Self::stripes) | 4 × CPUs, rounded up to a power of two (≤ 64) | 0, or a power of two in 1 ..= 64 |
///
/// ```
/// use std::time::Duration;
/// use tailguard::breaker::CircuitBreaker;
/// use tailguard::time::ManualTimer;
///
/// let breaker = CircuitBreaker::builder()
///     .failure_rate(0.5)
///     .count_window(50)
///     .minimum_calls(10)
///     .half_open_calls(3)
///     .build_with(ManualTimer::new())?;
///
/// let err = CircuitBreaker::builder().failure_rate(1.5).build_with(ManualTimer::new());
/// assert_eq!(
///     err.unwrap_err().to_string(),
///     "invalid `failure_rate`: must be in (0, 1], got 1.5"
/// );
/// # Ok::<(), tailguard::ConfigError>(())
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct CircuitBreakerBuilder {
    failure_rate: f64,
    slow_call: Option<(Duration, f64)>,
    window: WindowSpec,
    minimum_calls: Option<u64>,
    consecutive_failures: Option<u64>,
    open_durations: Option<Result<Backoff, ConfigError>>,
    half_open_calls: u32,
    half_open_success_rate: f64,
    half_open_timeout: Duration,
    stripes: Option<usize>,
    listener: Option<Listener>,
    name: PolicyName,
}

impl Default for CircuitBreakerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl CircuitBreakerBuilder {
    /// A builder with the defaults in the table above.
    pub fn new() -> Self {
        CircuitBreakerBuilder {
            failure_rate: 0.5,
            slow_call: None,
            window: WindowSpec::Count(DEFAULT_WINDOW),
            minimum_calls: None,
            consecutive_failures: None,
            open_durations: None,
            half_open_calls: 5,
            half_open_success_rate: 1.0,
            half_open_timeout: Duration::from_secs(60),
            stripes: None,
            listener: None,
            name: PolicyName::DEFAULT,
        }
    }

    /// Opens when at least this fraction of the calls in the window failed.
    pub fn failure_rate(mut self, rate: f64) -> Self {
        self.failure_rate = rate;
        self
    }

    /// Counts a call that took at least `duration` (from acquiring its permit to recording its
    /// outcome, on the breaker's clock) as slow, and opens when at least `rate` of the calls
    /// in the window were slow. A slow call may also have failed; it counts in both rates.
    pub fn slow_calls(mut self, duration: Duration, rate: f64) -> Self {
        self.slow_call = Some((duration, rate));
        self
    }

    /// Measures the last `calls` calls, whichever threads made them.
    ///
    /// Each thread records into a stripe of its own (see [`stripes`](Self::stripes)) and
    /// takes places in the window's order for its calls `P` at a time: `P` is 512 for windows
    /// of up to 32,768 calls and at most `calls / 32` above. So with several threads recording,
    /// a thread's calls can be ordered a little early, and the window can hold a few calls
    /// older than the last `calls`: every call it holds is among the last
    /// `calls + (T - 1) * (P - 1)`, where `T` is the number of stripes in use (at most the
    /// threads recording, and at most `stripes + 1`). It holds `calls` calls as soon as that
    /// many have been made. A single thread sees exactly its last `calls` calls, and the
    /// outcomes of a thread that goes idle leave the window as other threads record.
    pub fn count_window(mut self, calls: u32) -> Self {
        self.window = WindowSpec::Count(calls);
        self
    }

    /// Measures the calls of the last `duration`, kept in `buckets` slices: a slice leaves the
    /// window whole, so the window covers between `duration - duration / buckets` and
    /// `duration`.
    pub fn time_window(mut self, duration: Duration, buckets: u32) -> Self {
        self.window = WindowSpec::Time { duration, buckets };
        self
    }

    /// The rates are only judged once the window holds at least this many calls.
    pub fn minimum_calls(mut self, calls: u64) -> Self {
        self.minimum_calls = Some(calls);
        self
    }

    /// Also opens after this many failures in a row (regardless of `minimum_calls`). Under
    /// concurrency "in a row" means "with no success recorded in between".
    pub fn consecutive_failures(mut self, failures: u64) -> Self {
        self.consecutive_failures = Some(failures);
        self
    }

    /// Stays open for the same `duration` every time (no growth, no jitter). Must be greater
    /// than zero. For durations that grow with each failed probe round, use
    /// [`open_backoff`](Self::open_backoff).
    pub fn open_duration(mut self, duration: Duration) -> Self {
        self.open_durations = Some(open_duration::fixed(duration));
        self
    }

    /// Takes the open durations from a [`Backoff`]: the first opening lasts its first delay,
    /// each failed probe round moves on to the next, and closing starts the sequence over (the
    /// random state carries on, so the next outage is jittered differently).
    ///
    /// - Jitter spreads the probes of a fleet of breakers that opened together. Use
    ///   [`Jitter::Equal`](crate::backoff::Jitter::Equal) (each opening lasts between half and
    ///   all of the un-jittered duration), [`Decorrelated`](crate::backoff::Jitter::Decorrelated)
    ///   or [`None`](crate::backoff::Jitter::None). [`Full`](crate::backoff::Jitter::Full)
    ///   jitter is refused: it can draw an open duration of zero.
    /// - A backoff limited by [`max_retries`](crate::backoff::BackoffBuilder::max_retries)
    ///   stops growing there: past its last delay, the breaker keeps drawing that delay (jittered
    ///   afresh). `max_retries(0)` is refused, as is a zero base delay.
    /// - The sequence starts from its first delay whatever position `backoff` is at. An
    ///   unseeded backoff gets a random stream of its own for each breaker, so breakers built
    ///   from clones of one backoff do not probe in lockstep; a seeded one reproduces its seed's
    ///   delays.
    ///
    /// The default is 10 s doubling to 5 min with equal jitter.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tailguard::backoff::{Backoff, Jitter};
    /// use tailguard::breaker::CircuitBreaker;
    /// use tailguard::time::ManualTimer;
    ///
    /// // 5 s, 10 s, 20 s, ... up to 2 min; each opening lasts between half and all of that.
    /// let backoff = Backoff::exponential(Duration::from_secs(5))
    ///     .max_delay(Duration::from_secs(120))
    ///     .jitter(Jitter::Equal)
    ///     .build()?;
    /// let breaker = CircuitBreaker::builder().open_backoff(backoff).build_with(ManualTimer::new())?;
    ///
    /// // Full jitter could keep the breaker open for no time at all.
    /// let full = Backoff::exponential(Duration::from_secs(5)).jitter(Jitter::Full).build()?;
    /// let err = CircuitBreaker::builder().open_backoff(full).build_with(ManualTimer::new());
    /// assert_eq!(err.unwrap_err().field(), "open_backoff");
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    pub fn open_backoff(mut self, backoff: Backoff) -> Self {
        self.open_durations =
            Some(open_duration::check("open_backoff", &backoff).map(|()| backoff));
        self
    }

    /// How many probes half-open admits per round. The round closes the breaker once
    /// `ceil(half_open_success_rate × half_open_calls)` of them succeeded, and reopens it as
    /// soon as that has become impossible.
    pub fn half_open_calls(mut self, calls: u32) -> Self {
        self.half_open_calls = calls;
        self
    }

    /// The fraction of a round's probes that must succeed to close (default: all).
    pub fn half_open_success_rate(mut self, rate: f64) -> Self {
        self.half_open_success_rate = rate;
        self
    }

    /// A probe that has neither reported nor been dropped this long after it was admitted
    /// counts as failed, so a lost or hung probe cannot keep the breaker half-open.
    pub fn half_open_timeout(mut self, timeout: Duration) -> Self {
        self.half_open_timeout = timeout;
        self
    }

    /// Splits the window into this many per-thread stripes (0 or a power of two). A thread
    /// that records claims a stripe of its own and writes it without atomic read-modify-writes
    /// (but for one shared atomic add per 512 calls in a count window), so threads hardly
    /// contend on the happy path; threads beyond the stripe count share one extra stripe. The
    /// rates are judged over all stripes together: a count window is the last `count_window`
    /// calls across them, within the bound given at [`count_window`](Self::count_window).
    /// `0` leaves only the shared stripe: an exact global window, at the price of contention
    /// between threads.
    pub fn stripes(mut self, stripes: usize) -> Self {
        self.stripes = Some(stripes);
        self
    }

    /// Calls `listener` after every change of state, on the thread that caused it.
    ///
    /// The listener runs after the breaker's internal lock is released, so it may call back
    /// into the breaker (read its state, even force it open) without deadlocking. It runs
    /// inline on the path of a call, though, so keep it short and do not panic in it: a panic
    /// propagates to whoever made the call (possibly a permit being dropped). Two transitions
    /// made at nearly the same time on different threads may reach the listener out of order;
    /// [`Transition::generation`] orders them.
    pub fn on_transition(mut self, listener: impl Fn(&Transition) + Send + Sync + 'static) -> Self {
        self.listener = Some(Box::new(listener));
        self
    }

    /// Names the breaker: the `name` label of its [metrics](crate::metrics) (`"default"` if
    /// not set).
    pub fn name(mut self, name: &str) -> Self {
        self.name = PolicyName::new(name);
        self
    }

    /// Builds a breaker on the [`DefaultTimer`].
    #[cfg(any(feature = "async-io", feature = "futures-timer"))]
    pub fn build(self) -> Result<CircuitBreaker<DefaultTimer>, ConfigError> {
        self.build_with(DefaultTimer::default())
    }

    /// Builds a breaker that reads time from `timer`.
    pub fn build_with<T: Timer>(self, timer: T) -> Result<CircuitBreaker<T>, ConfigError> {
        let machine = self.build_state_machine_at(timer.now())?;
        Ok(CircuitBreaker::from_state_machine(machine, timer))
    }

    /// Builds the bare sans-IO state machine, whose clock starts at `now`: you pass the time to
    /// every call. Use it to drive a breaker from another clock or language.
    pub fn build_state_machine_at(self, now: Instant) -> Result<StateMachine, ConfigError> {
        let config = self.validate()?;
        let backoff = match self.open_durations {
            Some(backoff) => backoff?,
            None => open_duration::default_backoff(),
        };
        Ok(StateMachine::new(
            config,
            OpenDurations::new(backoff),
            self.listener,
            self.name,
            now,
        ))
    }

    fn validate(&self) -> Result<Config, ConfigError> {
        validate::rate("failure_rate", self.failure_rate, "")?;
        let slow_call = match self.slow_call {
            None => None,
            Some((duration, rate)) => Some((
                validate::positive_duration("slow_calls.duration", duration, "")?,
                validate::rate("slow_calls.rate", rate, "")?,
            )),
        };
        if let Some(Err(error)) = &self.open_durations {
            return Err(error.clone());
        }
        let stripes = match self.stripes {
            Some(stripes)
                if stripes == 0 || stripes.is_power_of_two() && stripes <= MAX_STRIPES =>
            {
                stripes
            }
            Some(stripes) => {
                return Err(ConfigError::new(
                    "stripes",
                    format!("must be 0 or a power of two in 1..={MAX_STRIPES}, got {stripes}"),
                ))
            }
            // Four per CPU: a process has more threads than CPUs, and a thread that finds no
            // free stripe of its own falls back to the contended shared one.
            None => (4 * std::thread::available_parallelism().map_or(1, |n| n.get()))
                .next_power_of_two()
                .min(MAX_STRIPES),
        };
        let window = match self.window {
            WindowSpec::Count(calls) => WindowConfig::Count(validate::count_in(
                "count_window",
                calls,
                1..=u64::from(MAX_COUNT_WINDOW),
                "",
            )?),
            WindowSpec::Time { duration, buckets } => {
                validate::count_in(
                    "time_window.buckets",
                    buckets,
                    1..=u64::from(MAX_BUCKETS),
                    "",
                )?;
                let bucket_nanos = duration.as_nanos() / u128::from(buckets);
                if bucket_nanos == 0 || bucket_nanos > u128::from(u64::MAX) {
                    return Err(ConfigError::new(
                        "time_window.duration",
                        format!(
                            "must be at least 1ns per bucket and at most 584 years, \
                             got {duration:?} for {buckets} buckets"
                        ),
                    ));
                }
                WindowConfig::Time {
                    bucket_nanos: bucket_nanos as u64,
                    buckets,
                }
            }
        };
        let minimum_calls = match (self.minimum_calls, window) {
            (Some(calls), WindowConfig::Count(size)) if calls > u64::from(size) => {
                return Err(ConfigError::new(
                    "minimum_calls",
                    format!(
                        "must be at most the count window ({size} calls) so the breaker can \
                         trip, got {calls}"
                    ),
                ))
            }
            (Some(calls), _) => validate::at_least_one("minimum_calls", calls, "")?,
            (None, WindowConfig::Count(size)) => DEFAULT_MINIMUM_CALLS.min(u64::from(size)),
            (None, WindowConfig::Time { .. }) => DEFAULT_MINIMUM_CALLS,
        };
        if let Some(failures) = self.consecutive_failures {
            validate::at_least_one("consecutive_failures", failures, "")?;
        }
        validate::count_in(
            "half_open_calls",
            self.half_open_calls,
            1..=u64::from(MAX_HALF_OPEN_CALLS),
            "",
        )?;
        validate::rate("half_open_success_rate", self.half_open_success_rate, "")?;
        validate::positive_duration("half_open_timeout", self.half_open_timeout, "")?;
        let probes = self.half_open_calls;
        // At least one, at most all: (0, 1] × probes rounds up into 1 ..= probes.
        let probes_to_close =
            ((self.half_open_success_rate * f64::from(probes)).ceil() as u32).clamp(1, probes);
        Ok(Config {
            failure_rate: self.failure_rate,
            slow_call,
            window,
            minimum_calls,
            consecutive_failures: self.consecutive_failures,
            half_open_calls: probes,
            probes_to_close,
            half_open_timeout: self.half_open_timeout,
            stripes,
        })
    }
}

impl fmt::Debug for CircuitBreakerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerBuilder")
            .field("failure_rate", &self.failure_rate)
            .field("slow_call", &self.slow_call)
            .field("window", &self.window)
            .field("minimum_calls", &self.minimum_calls)
            .field("consecutive_failures", &self.consecutive_failures)
            .field("half_open_calls", &self.half_open_calls)
            .field("half_open_success_rate", &self.half_open_success_rate)
            .field("half_open_timeout", &self.half_open_timeout)
            .field("stripes", &self.stripes)
            .field("open_backoff", &self.open_durations)
            .field("listener", &self.listener.is_some())
            .field("name", &self.name.as_str())
            .finish_non_exhaustive()
    }
}

/// A validated configuration.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Config {
    pub(crate) failure_rate: f64,
    pub(crate) slow_call: Option<(Duration, f64)>,
    pub(crate) window: WindowConfig,
    pub(crate) minimum_calls: u64,
    pub(crate) consecutive_failures: Option<u64>,
    pub(crate) half_open_calls: u32,
    pub(crate) probes_to_close: u32,
    pub(crate) half_open_timeout: Duration,
    pub(crate) stripes: usize,
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum WindowConfig {
    Count(u32),
    Time { bucket_nanos: u64, buckets: u32 },
}

impl Config {
    pub(crate) fn make_window(&self) -> Window {
        match self.window {
            WindowConfig::Count(size) => Window::count(size, self.stripes),
            WindowConfig::Time {
                bucket_nanos,
                buckets,
            } => Window::time(bucket_nanos, buckets, self.stripes),
        }
    }
}
