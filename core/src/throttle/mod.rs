//! Reject locally before the backend has to: client-side adaptive throttling.
//!
//! A [`Throttle`] watches, over a rolling window, how many requests this client sent
//! (`requests`) and how many the backend accepted (`accepts`), and refuses a new request
//! locally, without sending it, with probability
//!
//! ```text
//! max(0, (requests − K · accepts) / (requests + 1))
//! ```
//!
//! (Google's *Site Reliability Engineering*, "Handling Overload"). While the backend accepts
//! everything, nothing is refused; once it starts rejecting (overloaded: 503, 429,
//! `RESOURCE_EXHAUSTED`), the client sends about `K` times what it accepts and refuses the rest
//! itself, which costs the backend nothing. A smaller `K` throttles harder; `K = 2` (the default)
//! lets through twice what is accepted, so the client still sees recovery quickly.
//!
//! Counting: a request refused locally counts as a request, not an accept, so the refusals
//! keep the estimate honest while the backend is overloaded. A request sent counts when its
//! outcome is recorded ([`Permit::record`], or the sans-IO [`Permit::record_at`]): `accepted`
//! if the backend took it (whatever the answer), not if it rejected it for overload. A permit
//! dropped without a record (the call was cancelled) counts as nothing: it says nothing about
//! the backend.
//!
//! Randomness is a seedable generator ([`seed`](ThrottleBuilder::seed)), drawn once per call
//! when the probability is above zero, so tests replay exactly.
//!
//! ```
//! use std::time::Duration;
//! use tailguard::throttle::Throttle;
//! use tailguard::time::{ManualTimer, Timer};
//!
//! let timer = ManualTimer::new();
//! let throttle = Throttle::builder().k(2.0).seed(7).build_with(timer.clone())?;
//!
//! // A backend that accepts nothing: after a while, most requests are refused locally.
//! let now = timer.now();
//! let mut sent = 0;
//! for _ in 0..1000 {
//!     if let Ok(permit) = throttle.try_acquire_at(now) {
//!         sent += 1;
//!         permit.record_at(false, now);
//!     }
//! }
//! assert!(sent < 20, "{sent} sent");
//! assert!(throttle.rejection_probability_at(now) > 0.99);
//!
//! // The window rolls on (two minutes by default) and the refusals stop.
//! let later = now + Duration::from_secs(120);
//! assert_eq!(throttle.rejection_probability_at(later), 0.0);
//! # Ok::<(), tailguard::ConfigError>(())
//! ```

mod window;

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::metrics::{self, Counter, PolicyName};
#[cfg(any(feature = "async-io", feature = "futures-timer"))]
use crate::time::DefaultTimer;
use crate::time::Timer;
use crate::validate::{self, Float};
use crate::ConfigError;

use self::window::Window;

/// Configures and builds a [`Throttle`].
///
/// | setting | default | accepted |
/// |---|---|---|
/// | [`k`](Self::k) | 2.0 | a finite number ≥ 1.0 |
/// | [`window`](Self::window) | 2 minutes | greater than zero |
/// | [`buckets`](Self::buckets) | 12 | 1..=1024, and at most one per nanosecond of the window |
/// | [`seed`](Self::seed) | random | any |
///
/// ```
/// use std::time::Duration;
/// use tailguard::throttle::Throttle;
/// use tailguard::time::ManualTimer;
///
/// let throttle = Throttle::builder()
///     .k(1.5)
///     .window(Duration::from_secs(60))
///     .buckets(6)
///     .build_with(ManualTimer::new())?;
///
/// let err = Throttle::builder().k(0.5).build_with(ManualTimer::new()).unwrap_err();
/// assert_eq!(err.field(), "k");
/// # Ok::<(), tailguard::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct ThrottleBuilder {
    k: f64,
    window: Duration,
    buckets: u32,
    seed: Option<u64>,
    name: PolicyName,
}

impl Default for ThrottleBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ThrottleBuilder {
    /// The defaults: K = 2 over two minutes in 12 buckets, randomly seeded.
    pub fn new() -> Self {
        ThrottleBuilder {
            k: 2.0,
            window: Duration::from_secs(120),
            buckets: 12,
            seed: None,
            name: PolicyName::DEFAULT,
        }
    }

    /// The multiplier: requests are allowed up to `k` times the accepts before any is refused
    /// locally. Below 1 a healthy backend would see refusals, so it is refused.
    pub fn k(mut self, k: f64) -> Self {
        self.k = k;
        self
    }

    /// How far back requests and accepts are counted.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Buckets the window slides by: it moves in steps of `window / buckets`.
    pub fn buckets(mut self, buckets: u32) -> Self {
        self.buckets = buckets;
        self
    }

    /// Seeds the random draws, for runs that replay exactly.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Names the throttle: the `name` label of its [metrics] (`"default"` if
    /// not set).
    ///
    /// ```
    /// use tailguard::throttle::Throttle;
    /// use tailguard::time::ManualTimer;
    ///
    /// let throttle = Throttle::builder().name("search").build_with(ManualTimer::new())?;
    /// # let _ = throttle;
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    pub fn name(mut self, name: &str) -> Self {
        self.name = PolicyName::new(name);
        self
    }

    /// Builds a throttle on the [`DefaultTimer`].
    #[cfg(any(feature = "async-io", feature = "futures-timer"))]
    pub fn build(self) -> Result<Throttle<DefaultTimer>, ConfigError> {
        self.build_with(DefaultTimer::default())
    }

    /// Builds a throttle on `timer`, whose window starts now.
    pub fn build_with<T: Timer>(self, timer: T) -> Result<Throttle<T>, ConfigError> {
        let k = validate::factor("k", self.k)?;
        let window = validate::nanos(
            "window",
            validate::positive_duration("window", self.window, "")?,
        )?;
        let buckets = validate::count_in("buckets", self.buckets, 1..=1024, "")?;
        if window < u64::from(buckets) {
            return Err(ConfigError::new(
                "buckets",
                format!("must be at most one per nanosecond of `window` ({window}), got {buckets}"),
            ));
        }
        let rng = match self.seed {
            Some(seed) => fastrand::Rng::with_seed(seed),
            None => fastrand::Rng::new(),
        };
        Ok(Throttle {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    window: Window::new(buckets, window / u64::from(buckets)),
                    rng,
                }),
                k,
                origin: timer.now(),
                rejections: Counter::new(metrics::THROTTLE_REJECTIONS, &self.name),
            }),
            timer,
        })
    }
}

#[derive(Debug)]
struct State {
    window: Window,
    rng: fastrand::Rng,
}

impl State {
    fn probability(&self, k: f64) -> f64 {
        let requests = self.window.requests() as f64;
        let accepts = self.window.accepts() as f64;
        ((requests - k * accepts) / (requests + 1.0)).max(0.0)
    }
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    k: f64,
    origin: Instant,
    /// `tailguard_throttle_rejections_total`.
    rejections: Counter,
}

/// Client-side adaptive throttling (see the [module documentation](self)). A cheap-to-clone,
/// `Send + Sync` handle; clones share the window. Use one per backend.
#[cfg(any(feature = "async-io", feature = "futures-timer"))]
pub struct Throttle<T: Timer = DefaultTimer> {
    shared: Arc<Shared>,
    timer: T,
}

/// Client-side adaptive throttling (see the [module documentation](self)).
#[cfg(not(any(feature = "async-io", feature = "futures-timer")))]
pub struct Throttle<T: Timer> {
    shared: Arc<Shared>,
    timer: T,
}

#[cfg(any(feature = "async-io", feature = "futures-timer"))]
impl Throttle<DefaultTimer> {
    /// A builder; same as [`ThrottleBuilder::new`].
    pub fn builder() -> ThrottleBuilder {
        ThrottleBuilder::new()
    }
}

impl<T: Timer> Throttle<T> {
    fn state(&self) -> MutexGuard<'_, State> {
        // Every update leaves the window consistent: a poisoned lock is still a good window.
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn since_origin(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.shared.origin).as_nanos())
            .unwrap_or(u64::MAX)
    }

    /// Decides at `now` whether to send a request (sans-IO: no clock read): a [`Permit`] to
    /// record its outcome with, or a local refusal (counted as a request that was not
    /// accepted). One short lock; no allocation.
    pub fn try_acquire_at(&self, now: Instant) -> Result<Permit<'_, T>, Rejected> {
        let t = self.since_origin(now);
        let mut state = self.state();
        state.window.advance(t);
        let probability = state.probability(self.shared.k);
        if probability > 0.0 && state.rng.f64() < probability {
            state.window.count(false);
            drop(state);
            self.shared.rejections.increment();
            return Err(Rejected { probability });
        }
        Ok(Permit {
            throttle: self,
            recorded: false,
        })
    }

    /// [`try_acquire_at`](Self::try_acquire_at) the timer's now.
    pub fn try_acquire(&self) -> Result<Permit<'_, T>, Rejected> {
        self.try_acquire_at(self.timer.now())
    }

    /// Counts a request at `now` whose outcome is known, without a permit: `accepted` if the
    /// backend took it. (What [`Permit::record_at`] does.)
    pub fn record_at(&self, accepted: bool, now: Instant) {
        let t = self.since_origin(now);
        let mut state = self.state();
        state.window.advance(t);
        state.window.count(accepted);
    }

    /// The probability that a request at `now` is refused locally.
    pub fn rejection_probability_at(&self, now: Instant) -> f64 {
        let t = self.since_origin(now);
        let mut state = self.state();
        state.window.advance(t);
        state.probability(self.shared.k)
    }

    /// Requests and accepts in the window at `now`.
    pub fn counts_at(&self, now: Instant) -> Counts {
        let t = self.since_origin(now);
        let mut state = self.state();
        state.window.advance(t);
        Counts {
            requests: state.window.requests(),
            accepts: state.window.accepts(),
        }
    }

    /// The multiplier K.
    pub fn k(&self) -> f64 {
        self.shared.k
    }

    /// The timer this throttle reads.
    pub fn timer(&self) -> &T {
        &self.timer
    }
}

impl<T: Timer> Clone for Throttle<T> {
    fn clone(&self) -> Self {
        Throttle {
            shared: Arc::clone(&self.shared),
            timer: self.timer.clone(),
        }
    }
}

impl<T: Timer> fmt::Debug for Throttle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Throttle")
            .field("k", &self.shared.k)
            .finish_non_exhaustive()
    }
}

/// Requests and accepts in the window, from [`Throttle::counts_at`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Counts {
    /// Requests counted (sent and recorded, or refused locally).
    pub requests: u64,
    /// Requests the backend accepted.
    pub accepts: u64,
}

/// Permission to send one request, from [`Throttle::try_acquire_at`]: record what the backend
/// did with [`record`](Self::record) or [`record_at`](Self::record_at). Dropped without a
/// record (the call was cancelled), it counts as nothing.
#[must_use = "a permit counts nothing unless its outcome is recorded"]
pub struct Permit<'a, T: Timer> {
    throttle: &'a Throttle<T>,
    recorded: bool,
}

impl<T: Timer> Permit<'_, T> {
    /// Records at `now` whether the backend accepted the request (sans-IO).
    pub fn record_at(mut self, accepted: bool, now: Instant) {
        self.recorded = true;
        self.throttle.record_at(accepted, now);
    }

    /// Records, at the timer's now, whether the backend accepted the request.
    pub fn record(self, accepted: bool) {
        let now = self.throttle.timer.now();
        self.record_at(accepted, now);
    }
}

impl<T: Timer> fmt::Debug for Permit<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("recorded", &self.recorded)
            .finish_non_exhaustive()
    }
}

/// A request refused locally; a rejection, not a failure of the backend.
///
/// ```
/// use tailguard::throttle::Throttle;
/// use tailguard::time::{ManualTimer, Timer};
///
/// let timer = ManualTimer::new();
/// let throttle = Throttle::builder().seed(1).build_with(timer.clone())?;
/// let now = timer.now();
/// for _ in 0..100 {
///     throttle.record_at(false, now);
/// }
/// let refused = throttle.try_acquire_at(now).unwrap_err();
/// assert!(refused.probability() > 0.9);
/// assert!(refused.to_string().starts_with("throttled locally"));
/// # Ok::<(), tailguard::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rejected {
    probability: f64,
}

impl Rejected {
    /// The probability of refusal the request was drawn against.
    pub fn probability(&self) -> f64 {
        self.probability
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "throttled locally: the backend has been rejecting requests, so {:.0}% are refused before sending (p = {})",
            self.probability * 100.0,
            Float(self.probability)
        )
    }
}

impl std::error::Error for Rejected {}

#[cfg(test)]
mod tests;
