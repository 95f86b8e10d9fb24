//! [`PipelineBuilder`]: every layer's settings, validated once, composed in one order.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::attempt_limit::AttemptLimit;
use super::calls::{Inner, Pipeline};
use super::limiter::Limiter;
use super::predict::Predictor;
use crate::adaptive_timeout::AdaptiveTimeout;
use crate::backoff::Backoff;
use crate::breaker::CircuitBreaker;
use crate::hedge::Hedge;
use crate::latency::RollingHistogram;
use crate::metrics::{self, Counter, PolicyName};
use crate::retry::{Decision, Retry, RetryAll, RetryBudget};
#[cfg(any(feature = "async-io", feature = "futures-timer"))]
use crate::time::DefaultTimer;
use crate::time::Timer;
use crate::{validate, ConfigError};

#[cfg(any(feature = "async-io", feature = "futures-timer"))]
impl Pipeline<DefaultTimer> {
    /// A pipeline on the [`DefaultTimer`], from the defaults listed on [`PipelineBuilder`].
    pub fn builder() -> PipelineBuilder<DefaultTimer> {
        Pipeline::with_timer(DefaultTimer::default())
    }
}

impl<T: Timer> Pipeline<T> {
    /// A pipeline on `timer` (a [`ManualTimer`](crate::time::ManualTimer) in tests), from the
    /// defaults listed on [`PipelineBuilder`].
    pub fn with_timer(timer: T) -> PipelineBuilder<T> {
        PipelineBuilder {
            classifier: RetryAll,
            limiter: (),
            settings: Settings {
                timer,
                total_timeout: None,
                attempt_timeout: None,
                adaptive: None,
                max_attempts: 1,
                backoff: None,
                max_retry_after: Duration::from_secs(60),
                on_timeout: Decision::Retry,
                budget: None,
                hedge: None,
                breaker: None,
                percentile: 0.9,
                min_samples: 20,
                floor: Duration::ZERO,
                window: (Duration::from_secs(10), 10),
                name: PolicyName::DEFAULT,
            },
        }
    }
}

/// The settings of a [`Pipeline`], validated by [`build`](PipelineBuilder::build). The methods
/// may be called in any order: the layers are always composed in the canonical order.
///
/// Defaults: no total timeout, no attempt timeout, 1 attempt (no retry) with
/// [`Backoff::default`] between attempts when more are allowed, every error retried, timed-out
/// attempts retried, server-requested delays honoured up to 60 s, no retry budget, no hedging,
/// no breaker, no limiter; predictions at the p90 of the attempt latencies of the last 10 s (10
/// slices) once at least 20 are known, and a floor of zero until then.
#[must_use = "a builder does nothing until `build` is called"]
pub struct PipelineBuilder<T: Timer, C = RetryAll, L = ()> {
    classifier: C,
    limiter: L,
    settings: Settings<T>,
}

/// Every setting but the classifier and the limiter (whose setters change the builder's type).
struct Settings<T: Timer> {
    timer: T,
    total_timeout: Option<Duration>,
    attempt_timeout: Option<Duration>,
    adaptive: Option<AdaptiveTimeout>,
    max_attempts: u32,
    backoff: Option<Backoff>,
    max_retry_after: Duration,
    on_timeout: Decision,
    budget: Option<RetryBudget>,
    hedge: Option<Hedge>,
    breaker: Option<CircuitBreaker<T>>,
    percentile: f64,
    min_samples: u64,
    floor: Duration,
    window: (Duration, usize),
    name: PolicyName,
}

impl<T: Timer, C, L> PipelineBuilder<T, C, L> {
    /// The deadline of a whole call, from its first poll: every attempt, backoff sleep, limiter
    /// wait and hedge ends by it. A call given its own deadline
    /// ([`call_until`](Pipeline::call_until)) ends by the earlier of the two. Must be greater
    /// than zero.
    pub fn total_timeout(mut self, timeout: Duration) -> Self {
        self.settings.total_timeout = Some(timeout);
        self
    }

    /// Names the pipeline: the `name` label of its [metrics], its deadline
    /// refusals and its retries (`"default"` if not set).
    ///
    /// ```
    /// use tailguard::pipeline::Pipeline;
    /// use tailguard::time::ManualTimer;
    ///
    /// let pipeline = Pipeline::with_timer(ManualTimer::new()).name("search").build()?;
    /// # let _ = pipeline;
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    pub fn name(mut self, name: &str) -> Self {
        self.settings.name = PolicyName::new(name);
        self
    }

    /// The time limit of each attempt, counted from the operation's start (after its limiter
    /// slot), itself capped by the call's deadline. A timed-out attempt is a failure to the
    /// breaker and the limiter, retried as [`on_timeout`](Self::on_timeout) says. Must be
    /// greater than zero.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.settings.attempt_timeout = Some(timeout);
        self
    }

    /// An attempt timeout learnt from the attempts it bounds, instead of a fixed
    /// [`attempt_timeout`](Self::attempt_timeout) (setting both is refused by
    /// [`build`](Self::build)): each attempt's limit is the [`AdaptiveTimeout`]'s value when it
    /// starts ([`attempt_timeout`](AdaptiveTimeout::attempt_timeout): as last computed, no
    /// clock read), capped by the call's deadline like a fixed one. Every attempt that ends on
    /// its own is recorded into it, with the same latency sample the pipeline's prediction takes
    /// (no clock read of its own): a success or a failure at its latency, an attempt it cut at
    /// the time it had been out, as a lower bound; an attempt that waited then brings the value
    /// up to date ([`timeout_at`](AdaptiveTimeout::timeout_at): a percentile once per slice of
    /// its window). Attempts cancelled (a lost hedge, the call's
    /// deadline, a dropped call) are not recorded, as they are not for the prediction. Share
    /// the timeout between the pipelines that call the same destination; its
    /// [`stats`](AdaptiveTimeout::stats) give the share of attempts cut, and the false-timeout
    /// estimate once the caller reports cut attempts' fates with
    /// [`record_late`](AdaptiveTimeout::record_late).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tailguard::adaptive_timeout::AdaptiveTimeout;
    /// use tailguard::backoff::Backoff;
    /// use tailguard::pipeline::Pipeline;
    /// use tailguard::time::{ManualTimer, Timer};
    ///
    /// let timer = ManualTimer::new();
    /// let adaptive = AdaptiveTimeout::builder()
    ///     .percentile(0.99)
    ///     .factor(2.0)
    ///     .floor(Duration::from_millis(5)) // the least limit, and the limit until it knows 20
    ///     .ceiling(Duration::from_secs(1))
    ///     .min_samples(20)
    ///     .build()?;
    /// let pipeline = Pipeline::with_timer(timer.clone())
    ///     .attempt_timeout_adaptive(adaptive.clone())
    ///     .max_attempts(2)
    ///     .backoff(Backoff::constant(Duration::ZERO).build()?)
    ///     .build()?;
    /// // Attempts take 4 ms, except the first of a call that stalls for a second.
    /// let call = |stall: bool| {
    ///     let t = timer.clone();
    ///     timer.block_on(pipeline.call(move |attempt| {
    ///         let took = if stall && attempt.number() == 1 { 1_000 } else { 4 };
    ///         let sleep = t.sleep(Duration::from_millis(took));
    ///         async move {
    ///             sleep.await;
    ///             Ok::<_, std::io::Error>(attempt.number())
    ///         }
    ///     }))
    /// };
    /// for _ in 0..20 {
    ///     assert_eq!(call(false).unwrap(), 1);
    /// }
    /// // Learnt (recomputed once per slice of its window, 1 s by default): p99 × 2 ≈ 8 ms.
    /// timer.advance(Duration::from_secs(1));
    /// let limit = adaptive.timeout_at(timer.now());
    /// assert!(limit > Duration::from_micros(7_900) && limit < Duration::from_micros(8_100));
    /// // A stalled attempt is cut at the learnt limit, recorded as cut, and retried.
    /// let before = timer.now();
    /// assert_eq!(call(true).unwrap(), 2);
    /// assert_eq!(timer.now() - before, limit + Duration::from_millis(4));
    /// let stats = adaptive.stats();
    /// assert_eq!((stats.completed, stats.timed_out), (21, 1));
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    pub fn attempt_timeout_adaptive(mut self, timeout: AdaptiveTimeout) -> Self {
        self.settings.adaptive = Some(timeout);
        self
    }

    /// The most rounds of attempts per call, the first included (hedges do not count): at least
    /// 1, the default, which means no retry.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.settings.max_attempts = attempts;
        self
    }

    /// The delays between retries (default [`Backoff::default`]).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.settings.backoff = Some(backoff);
        self
    }

    /// The longest delay a [`Decision::RetryAfter`] may ask for (default 60 s).
    pub fn max_retry_after(mut self, cap: Duration) -> Self {
        self.settings.max_retry_after = cap;
        self
    }

    /// Whether to retry an attempt that timed out (default [`Decision::Retry`]).
    pub fn on_timeout(mut self, decision: Decision) -> Self {
        self.settings.on_timeout = decision;
        self
    }

    /// A retry budget (usually shared by everything calling the same dependency): each call
    /// that makes an attempt deposits once, each retry withdraws. A call the breaker or the
    /// limiter refuses, or whose deadline has passed, deposits nothing, and a retry withdrawn
    /// but never made is refunded.
    pub fn retry_budget(mut self, budget: RetryBudget) -> Self {
        self.settings.budget = Some(budget);
        self
    }

    /// Hedging inside each retry round: a backup attempt after the policy's delay, within its
    /// budget, never when less time is left than an attempt is predicted to take.
    pub fn hedge(mut self, hedge: Hedge) -> Self {
        self.settings.hedge = Some(hedge);
        self
    }

    /// A circuit breaker asked before every attempt (hedges included); each attempt's outcome is
    /// recorded (an error or an attempt timeout is a failure). A cancelled attempt, and every
    /// rejection by a later layer, releases its permit uncounted.
    pub fn breaker(mut self, breaker: CircuitBreaker<T>) -> Self {
        self.settings.breaker = Some(breaker);
        self
    }

    /// The percentile of recent attempt latencies taken as an attempt's predicted latency, in
    /// `(0, 1]` (default 0.9).
    pub fn predict_percentile(mut self, percentile: f64) -> Self {
        self.settings.percentile = percentile;
        self
    }

    /// The predicted latency while the window holds fewer than
    /// [`predict_min_samples`](Self::predict_min_samples) samples (default zero: every retry
    /// and hedge that has any time left starts).
    pub fn predict_floor(mut self, floor: Duration) -> Self {
        self.settings.floor = floor;
        self
    }

    /// The samples the window needs before its percentile is used (default 20, at least 1).
    pub fn predict_min_samples(mut self, samples: u64) -> Self {
        self.settings.min_samples = samples;
        self
    }

    /// The window of attempt latencies: `window` long, in `slots` slices (default 10 s, 10).
    pub fn latency_window(mut self, window: Duration, slots: usize) -> Self {
        self.settings.window = (window, slots);
        self
    }

    /// Which errors to retry: any [`Classify`](crate::retry::Classify), such as a closure `|e: &E| -> Decision` (name
    /// the error's type in the closure; see [`RetryBuilder::classify`](crate::retry::RetryBuilder::classify)).
    pub fn classify<C2>(self, classifier: C2) -> PipelineBuilder<T, C2, L> {
        PipelineBuilder {
            classifier,
            limiter: self.limiter,
            settings: self.settings,
        }
    }

    /// A [`Limiter`] asked for a slot before every attempt, after the breaker.
    pub fn limiter<L2: Limiter>(self, limiter: L2) -> PipelineBuilder<T, C, L2> {
        PipelineBuilder {
            classifier: self.classifier,
            limiter,
            settings: self.settings,
        }
    }

    /// Checks every setting and makes the pipeline.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming `total_timeout` or `attempt_timeout` if zero,
    /// `attempt_timeout_adaptive` if a fixed `attempt_timeout` is set too, `max_attempts` if zero, `predict_percentile` outside `(0, 1]`, `predict_min_samples` if zero, or
    /// `latency_window.window` / `latency_window.slots` if the window cannot be made (see
    /// [`RollingHistogram::new`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tailguard::pipeline::Pipeline;
    /// use tailguard::time::ManualTimer;
    ///
    /// let err = Pipeline::with_timer(ManualTimer::new())
    ///     .attempt_timeout(Duration::ZERO)
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.field(), "attempt_timeout");
    /// ```
    pub fn build(self) -> Result<Pipeline<T, C, L>, ConfigError>
    where
        L: Limiter,
    {
        let PipelineBuilder {
            classifier,
            limiter,
            settings: s,
        } = self;
        if let Some(timeout) = s.total_timeout {
            validate::positive_duration("total_timeout", timeout, "no attempt could start")?;
        }
        if let Some(timeout) = s.attempt_timeout {
            validate::positive_duration(
                "attempt_timeout",
                timeout,
                "every attempt would time out",
            )?;
        }
        let attempt_limit = match (s.attempt_timeout, s.adaptive) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "attempt_timeout_adaptive",
                    "cannot be set together with a fixed `attempt_timeout`: choose one",
                ))
            }
            (Some(fixed), None) => AttemptLimit::Fixed(fixed),
            (None, Some(adaptive)) => AttemptLimit::Adaptive(adaptive),
            (None, None) => AttemptLimit::None,
        };
        validate::rate("predict_percentile", s.percentile, "a percentile")?;
        validate::at_least_one("predict_min_samples", s.min_samples, "")?;
        let (window, slots) = s.window;
        let latency = RollingHistogram::new(window, slots).map_err(|e| {
            let field = if e.field() == "slots" {
                "latency_window.slots"
            } else {
                "latency_window.window"
            };
            ConfigError::new(field, e.message().to_owned())
        })?;
        let mut retry = Retry::with_timer(s.timer.clone())
            .name(s.name.as_str())
            .max_attempts(s.max_attempts)
            .max_retry_after(s.max_retry_after)
            .on_timeout(s.on_timeout);
        if let Some(backoff) = s.backoff {
            retry = retry.backoff(backoff);
        }
        let retry = retry.build()?.config().clone();
        let needs_start_time =
            s.total_timeout.is_some() || attempt_limit.is_set() || s.budget.is_some() || L::PRESENT;
        Ok(Pipeline {
            inner: Arc::new(Inner {
                timer: s.timer,
                retry,
                classifier,
                budget: s.budget,
                hedge: s.hedge,
                breaker: s.breaker,
                limiter,
                total_timeout: s.total_timeout,
                attempt_limit,
                predictor: Predictor::new(latency, s.percentile, s.min_samples, s.floor),
                needs_start_time,
                deadline_refusals: [
                    Counter::with_reason(metrics::PIPELINE_DEADLINE_REFUSALS, &s.name, "passed"),
                    Counter::with_reason(metrics::PIPELINE_DEADLINE_REFUSALS, &s.name, "too_short"),
                ],
            }),
        })
    }
}

impl<T: Timer, C, L> fmt::Debug for PipelineBuilder<T, C, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        f.debug_struct("PipelineBuilder")
            .field("total_timeout", &s.total_timeout)
            .field("max_attempts", &s.max_attempts)
            .field("budget", &s.budget)
            .field("hedge", &s.hedge)
            .field("breaker", &s.breaker)
            .field("attempt_timeout", &s.attempt_timeout)
            .field("attempt_timeout_adaptive", &s.adaptive)
            .finish_non_exhaustive()
    }
}
