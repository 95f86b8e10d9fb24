use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_core::TryFuture;

use super::budget::HedgeBudget;
use super::run::HedgedRun;
use super::stats::{Counters, HedgeStats};
use crate::latency::{RollingHistogram, MAX_SLOTS};
use crate::metrics::PolicyName;
use crate::time::Timer;
use crate::{validate, ConfigError};

/// The most attempts one call may make (primary included).
pub const MAX_ATTEMPTS: u32 = 32;

/// A hedging policy: when to send a backup attempt, how many, and within what budget.
///
/// Build one with [`Hedge::builder`], keep it for the lifetime of the client, and wrap each call
/// in [`run_with`](Hedge::run_with) (or [`run`](Hedge::run) on the default timer). Clones share
/// everything: the latency window, the budget and the statistics.
///
/// See the [module documentation](super) for the behaviour and an example.
#[derive(Clone)]
pub struct Hedge {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) delay: Delay,
    pub(crate) max_attempts: u32,
    pub(crate) budget: Option<HedgeBudget>,
    pub(crate) counters: Counters,
}

pub(crate) enum Delay {
    Fixed(Duration),
    Adaptive(Adaptive),
}

pub(crate) struct Adaptive {
    percentile: f64,
    min_samples: u64,
    floor: Duration,
    ceiling: Duration,
    pub(crate) latency: RollingHistogram,
    /// The delay last computed, and (plus one) the window slice it was computed in; 0 = none.
    /// Recomputed once per slice: a quantile over the window is a scan of every bucket.
    cached_slice: AtomicU64,
    cached_delay_nanos: AtomicU64,
    /// The policy's primaries when the cached delay was computed, or [`SETTLED`] once the
    /// window held enough samples (at least [`SAMPLES_BEYOND`] beyond the percentile). Until
    /// then the delay is also recomputed whenever the primaries have doubled: a policy's first
    /// delay, from `min_samples`, is too rough to keep for a whole slice (one atomic load per
    /// call until it is settled).
    cached_count: AtomicU64,
}

/// [`Adaptive::cached_count`] of a delay computed from enough samples.
const SETTLED: u64 = u64::MAX;
/// Samples beyond the percentile that make a delay settled.
const SAMPLES_BEYOND: f64 = 10.0;

impl Hedge {
    /// A builder with the defaults: adaptive delay at the p95 of the last 10 s of primary
    /// latencies (10 slices), after at least 100 samples, kept within 1 ms..=1 s; at most 2
    /// attempts per call; a budget of 5 % extra load plus a floor of 10 hedges a second (see
    /// [`HedgeBudget`]), so that hedging works from the first call.
    pub fn builder() -> HedgeBuilder {
        HedgeBuilder::default()
    }

    /// Runs one call, hedged, on the [`DefaultTimer`](crate::time::DefaultTimer).
    ///
    /// `make_attempt(n)` starts attempt `n` (1 is the primary) and returns its future; see
    /// [`run_with`](Hedge::run_with).
    ///
    /// The future owns a clone of the policy (a reference count), so it can be spawned as a
    /// task of its own. On tokio:
    ///
    /// ```
    /// use std::time::Duration;
    /// use tailguard::hedge::Hedge;
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hedge = Hedge::builder().fixed_delay(Duration::from_millis(20)).build()?;
    /// let task = tokio::spawn(hedge.run(|attempt| async move {
    ///     if attempt == 1 {
    ///         std::future::pending::<()>().await; // the primary is stalled
    ///     }
    ///     Ok::<_, std::io::Error>(attempt)
    /// }));
    /// assert_eq!(task.await.unwrap().unwrap(), 2);
    /// # Ok::<(), tailguard::ConfigError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// And on smol:
    ///
    /// ```
    /// use std::time::Duration;
    /// use tailguard::hedge::Hedge;
    ///
    /// let hedge = Hedge::builder().fixed_delay(Duration::from_millis(20)).build()?;
    /// let task = smol::spawn(hedge.run(|attempt| async move {
    ///     if attempt == 1 {
    ///         std::future::pending::<()>().await;
    ///     }
    ///     Ok::<_, std::io::Error>(attempt)
    /// }));
    /// assert_eq!(smol::block_on(task).unwrap(), 2);
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    #[cfg(any(feature = "async-io", feature = "futures-timer"))]
    pub fn run<F, Fut>(&self, make_attempt: F) -> HedgedRun<F, Fut, crate::time::DefaultTimer>
    where
        F: FnMut(u32) -> Fut,
        Fut: TryFuture,
    {
        self.run_with(crate::time::DefaultTimer::default(), make_attempt)
    }

    /// Runs one call, hedged, on `timer`.
    ///
    /// `make_attempt(n)` starts attempt `n` (1 is the primary, 2.. are hedges) and returns a
    /// future of `Result<T, E>`. The first `Ok` is returned and every other attempt is dropped
    /// at once; if every attempt fails, the errors come back in a
    /// [`HedgeError`](super::HedgeError). Nothing starts until the returned future is polled,
    /// and dropping it cancels every attempt in flight. The decisions are a [`HedgeState`]'s.
    ///
    /// [`HedgeState`]: super::HedgeState
    pub fn run_with<T, F, Fut>(&self, timer: T, make_attempt: F) -> HedgedRun<F, Fut, T>
    where
        T: Timer,
        F: FnMut(u32) -> Fut,
        Fut: TryFuture,
    {
        HedgedRun::new(self.clone(), timer, make_attempt)
    }

    /// The hedge delay a call going slow at `now` would use: the fixed delay, or the clamped
    /// percentile of recent primary latency (recomputed once per slice of the window, and
    /// also each time the primaries double while the window holds fewer than 10 samples
    /// beyond the percentile: a first delay learnt from `min_samples` is too rough to keep
    /// for a whole slice).
    ///
    /// When the window holds fewer than `min_samples` samples, an adaptive policy keeps the
    /// last delay it computed from enough samples (after a quiet spell, say); before it has
    /// ever had enough it returns `None`, and calls then hedge only after a failure, not on time.
    pub fn delay_at(&self, now: Instant) -> Option<Duration> {
        match &self.inner.delay {
            Delay::Fixed(delay) => Some(*delay),
            Delay::Adaptive(adaptive) => adaptive.delay_at(now, &self.inner.counters),
        }
    }

    /// The percentile of recent primary latency an adaptive delay is set at; `None` for a fixed
    /// delay. It is the one asked for ([`adaptive_delay`](HedgeBuilder::adaptive_delay)), or
    /// higher when the budget could not pay for a hedge for every call crossing it: `1 -
    /// ratio` (p98 for a 2 % budget; see the [module documentation](super)).
    ///
    /// ```
    /// use tailguard::hedge::Hedge;
    ///
    /// let p95 = Hedge::builder().adaptive_delay(0.95).budget_ratio(0.05).build()?;
    /// assert_eq!(p95.delay_percentile(), Some(0.95));
    /// // 5 % of calls cross p95; a 2 % budget pays for the 2 % that cross p98.
    /// let paid = Hedge::builder().adaptive_delay(0.95).budget_ratio(0.02).build()?;
    /// assert_eq!(paid.delay_percentile(), Some(0.98));
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    pub fn delay_percentile(&self) -> Option<f64> {
        match &self.inner.delay {
            Delay::Fixed(_) => None,
            Delay::Adaptive(adaptive) => Some(adaptive.percentile),
        }
    }

    /// What this policy and its clones have done so far.
    pub fn stats(&self) -> HedgeStats {
        self.inner.counters.snapshot()
    }

    /// The budget hedges are drawn from, if any.
    pub fn budget(&self) -> Option<&HedgeBudget> {
        self.inner.budget.as_ref()
    }

    /// The window of primary latencies an adaptive delay is computed from; `None` for a fixed
    /// delay.
    pub fn latency(&self) -> Option<&RollingHistogram> {
        match &self.inner.delay {
            Delay::Fixed(_) => None,
            Delay::Adaptive(adaptive) => Some(&adaptive.latency),
        }
    }

    /// The policy's name, the `name` label of its [metrics](crate::metrics).
    pub fn name(&self) -> &str {
        self.inner.counters.name.as_str()
    }

    /// The most attempts one call makes, primary included.
    pub fn max_attempts(&self) -> u32 {
        self.inner.max_attempts
    }
}

impl Adaptive {
    fn delay_at(&self, now: Instant, counters: &Counters) -> Option<Duration> {
        let slice = self.latency.slice_at(now) + 1;
        let cached_slice = self.cached_slice.load(Relaxed);
        if cached_slice == slice {
            let computed_at = self.cached_count.load(Relaxed);
            if computed_at == SETTLED || counters.primaries() < computed_at.saturating_mul(2) {
                return Some(Duration::from_nanos(self.cached_delay_nanos.load(Relaxed)));
            }
        }
        if !self.latency.has_at_least(now, self.min_samples) {
            // Too few recent samples: at start-up there is no delay yet; after a quiet spell,
            // the last delay learnt from enough samples is the best guess there is.
            return (cached_slice != 0)
                .then(|| Duration::from_nanos(self.cached_delay_nanos.load(Relaxed)));
        }
        let quantile = self.latency.quantile_at(now, self.percentile)?;
        let delay = quantile.clamp(self.floor, self.ceiling);
        let beyond = self.latency.count_at(now) as f64 * (1.0 - self.percentile);
        // Three stores, not one: a reader may briefly pair this slice with the previous delay
        // or count, which is as good an answer.
        self.cached_delay_nanos
            .store(u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX), Relaxed);
        self.cached_count.store(
            if beyond >= SAMPLES_BEYOND {
                SETTLED
            } else {
                counters.primaries().max(1)
            },
            Relaxed,
        );
        self.cached_slice.store(slice, Relaxed);
        Some(delay)
    }

    pub(crate) fn record_at(&self, now: Instant, latency: Duration) {
        self.latency.record_at(now, latency);
    }

    pub(crate) fn record_nanos_at(&self, now_nanos: u64, latency: Duration) {
        self.latency.record_nanos_at(now_nanos, latency);
    }
}

/// Builds a [`Hedge`]; every value is checked by [`build`](HedgeBuilder::build).
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct HedgeBuilder {
    fixed_delay: Option<Duration>,
    percentile: f64,
    min_samples: Option<u64>,
    delay_floor: Option<Duration>,
    delay_ceiling: Option<Duration>,
    window: Option<Duration>,
    window_slots: Option<usize>,
    max_attempts: u32,
    budget: BudgetChoice,
    name: PolicyName,
}

#[derive(Debug, Clone)]
enum BudgetChoice {
    Ratio(f64),
    Shared(HedgeBudget),
    Unlimited,
}

const DEFAULT_PERCENTILE: f64 = 0.95;
const DEFAULT_MIN_SAMPLES: u64 = 100;
const DEFAULT_FLOOR: Duration = Duration::from_millis(1);
const DEFAULT_CEILING: Duration = Duration::from_secs(1);
const DEFAULT_WINDOW: Duration = Duration::from_secs(10);
const DEFAULT_WINDOW_SLOTS: usize = 10;
const DEFAULT_BUDGET_RATIO: f64 = HedgeBudget::DEFAULT_RATIO;

impl Default for HedgeBuilder {
    fn default() -> Self {
        HedgeBuilder {
            fixed_delay: None,
            percentile: DEFAULT_PERCENTILE,
            min_samples: None,
            delay_floor: None,
            delay_ceiling: None,
            window: None,
            window_slots: None,
            max_attempts: 2,
            budget: BudgetChoice::Ratio(DEFAULT_BUDGET_RATIO),
            name: PolicyName::DEFAULT,
        }
    }
}

impl HedgeBuilder {
    /// Hedge after a fixed `delay` (zero sends the hedge as soon as the primary is pending).
    /// The adaptive options (`min_samples`, `delay_floor`, `delay_ceiling`, `window`) do not
    /// apply to a fixed delay, and `build` refuses them.
    pub fn fixed_delay(mut self, delay: Duration) -> Self {
        self.fixed_delay = Some(delay);
        self
    }

    /// Hedge once a call has been out longer than the `percentile` (in `(0, 1)`; 0.95 is p95)
    /// of recent primary latencies. This is the default, at p95.
    ///
    /// Never earlier than the budget can pay for: with a budget of `ratio` hedges per primary
    /// below `1 - percentile`, the delay is set at `1 - ratio` instead (p98 for a 2 % budget),
    /// so that every call crossing it can have its hedge ([`Hedge::delay_percentile`] says
    /// which; the [module documentation](super) says why).
    pub fn adaptive_delay(mut self, percentile: f64) -> Self {
        self.fixed_delay = None;
        self.percentile = percentile;
        self
    }

    /// Adaptive only: compute the delay only from a window of at least `n` samples (at least
    /// 1; default 100); too few make a percentile meaningless. Until the window first holds
    /// that many, calls do not hedge on time; later, a thinner window keeps the last delay.
    pub fn min_samples(mut self, n: u64) -> Self {
        self.min_samples = Some(n);
        self
    }

    /// Adaptive only: never hedge sooner than `floor` (default 1 ms), however fast the backend.
    pub fn delay_floor(mut self, floor: Duration) -> Self {
        self.delay_floor = Some(floor);
        self
    }

    /// Adaptive only: always hedge by `ceiling` (default 1 s), however slow the backend got.
    pub fn delay_ceiling(mut self, ceiling: Duration) -> Self {
        self.delay_ceiling = Some(ceiling);
        self
    }

    /// Adaptive only: learn from the last `window` of primary latencies (default 10 s), kept
    /// in `slots` slices (1..=64, default 10; the window slides a slice at a time).
    pub fn window(mut self, window: Duration, slots: usize) -> Self {
        self.window = Some(window);
        self.window_slots = Some(slots);
        self
    }

    /// At most `n` attempts per call, the primary included (1..=32, default 2). 1 disables
    /// hedging but keeps the statistics and the latency window.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }

    /// A budget of its own: hedges ≤ `ratio` × primaries (default 0.05), saving up at most
    /// [`HedgeBudget::DEFAULT_MAX_BURST`] hedges, plus the default floor of
    /// [`HedgeBudget::DEFAULT_MIN_PER_SECOND`] hedges a second. For another floor, pass a
    /// [`budget`](HedgeBuilder::budget) of your own.
    pub fn budget_ratio(mut self, ratio: f64) -> Self {
        self.budget = BudgetChoice::Ratio(ratio);
        self
    }

    /// Draw hedges from `budget`, which may be shared with other policies.
    pub fn budget(mut self, budget: HedgeBudget) -> Self {
        self.budget = BudgetChoice::Shared(budget);
        self
    }

    /// No budget: hedge whenever the delay passes. Only for tests and experiments; in
    /// production a slowdown would then add up to `max_attempts - 1` times the load.
    pub fn unbudgeted(mut self) -> Self {
        self.budget = BudgetChoice::Unlimited;
        self
    }

    /// Names the policy: the `name` label of its [metrics](crate::metrics) (`"default"` if
    /// not set).
    pub fn name(mut self, name: &str) -> Self {
        self.name = PolicyName::new(name);
        self
    }

    /// Checks every value and builds the policy.
    pub fn build(self) -> Result<Hedge, ConfigError> {
        validate::count_in(
            "max_attempts",
            self.max_attempts,
            1..=u64::from(MAX_ATTEMPTS),
            "the primary counts as one",
        )?;
        let budget = match self.budget.clone() {
            BudgetChoice::Ratio(ratio) => Some(HedgeBudget::new(ratio)?),
            BudgetChoice::Shared(budget) => Some(budget),
            BudgetChoice::Unlimited => None,
        };
        let delay = match self.fixed_delay {
            Some(delay) => {
                let adaptive_only = [
                    ("min_samples", self.min_samples.is_some()),
                    ("delay_floor", self.delay_floor.is_some()),
                    ("delay_ceiling", self.delay_ceiling.is_some()),
                    ("window", self.window.is_some()),
                ];
                if let Some((field, _)) = adaptive_only.iter().find(|(_, set)| *set) {
                    return Err(ConfigError::new(
                        field,
                        "applies to adaptive delays only; use `adaptive_delay(..)` or drop it",
                    ));
                }
                Delay::Fixed(delay)
            }
            None => Delay::Adaptive(self.adaptive(budget.as_ref())?),
        };
        Ok(Hedge {
            inner: Arc::new(Inner {
                delay,
                max_attempts: self.max_attempts,
                budget,
                counters: Counters::new(self.name.clone()),
            }),
        })
    }

    fn adaptive(&self, budget: Option<&HedgeBudget>) -> Result<Adaptive, ConfigError> {
        let p = self.percentile;
        if !(p > 0.0 && p < 1.0) {
            return Err(ConfigError::new(
                "adaptive_delay",
                format!(
                    "must be a percentile in (0, 1), e.g. 0.95 for p95, got {}",
                    crate::validate::Float(p)
                ),
            ));
        }
        let min_samples = validate::at_least_one(
            "min_samples",
            self.min_samples.unwrap_or(DEFAULT_MIN_SAMPLES),
            "a percentile of nothing is undefined",
        )?;
        let floor = self.delay_floor.unwrap_or(DEFAULT_FLOOR);
        let ceiling = self.delay_ceiling.unwrap_or(DEFAULT_CEILING);
        if ceiling < floor {
            return Err(ConfigError::new(
                "delay_ceiling",
                format!("must be at least `delay_floor` ({floor:?}), got {ceiling:?}"),
            ));
        }
        let window = self.window.unwrap_or(DEFAULT_WINDOW);
        let slots = self.window_slots.unwrap_or(DEFAULT_WINDOW_SLOTS);
        validate::count_in("window.slots", slots, 1..=MAX_SLOTS as u64, "")?;
        let latency = RollingHistogram::new(window, slots)
            .map_err(|e| ConfigError::new("window.duration", e.message().to_owned()))?;
        Ok(Adaptive {
            percentile: budget.map_or(p, |budget| paid_percentile(p, budget.ratio())),
            min_samples,
            floor,
            ceiling,
            latency,
            cached_slice: AtomicU64::new(0),
            cached_delay_nanos: AtomicU64::new(0),
            cached_count: AtomicU64::new(0),
        })
    }
}

/// The percentile an adaptive delay is set at: `asked`, or higher if the budget cannot pay for
/// a hedge for every call that crosses it: `1 - ratio`, the percentile that `ratio` of the calls
/// cross (see the module documentation, "The delay the budget can pay for"). A ratio of 0 (only
/// the floor pays) or of 1 and more leaves `asked` as it is.
fn paid_percentile(asked: f64, ratio: f64) -> f64 {
    if ratio > 0.0 && ratio < 1.0 {
        asked.max(1.0 - ratio)
    } else {
        asked
    }
}

impl fmt::Debug for Hedge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Hedge");
        match &self.inner.delay {
            Delay::Fixed(delay) => d.field("fixed_delay", delay),
            Delay::Adaptive(a) => d
                .field("percentile", &a.percentile)
                .field("min_samples", &a.min_samples)
                .field("delay_floor", &a.floor)
                .field("delay_ceiling", &a.ceiling)
                .field("window", &a.latency.window()),
        };
        d.field("max_attempts", &self.inner.max_attempts)
            .field("budget", &self.inner.budget)
            .field("stats", &self.stats())
            .finish()
    }
}
