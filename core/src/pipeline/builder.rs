//! [`Pipeline`] and its builder: every layer's settings, validated once, composed in one order.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_core::TryFuture;

use super::future::PipelineFuture;
use super::limiter::Limiter;
use super::predict::Predictor;
use super::{Attempt, PipelineError};
use crate::backoff::Backoff;
use crate::breaker::CircuitBreaker;
use crate::hedge::Hedge;
use crate::latency::RollingHistogram;
use crate::metrics::{self, Counter, PolicyName};
use crate::retry::{Classify, Decision, Retry, RetryAll, RetryBudget, RetryConfig};
#[cfg(any(feature = "async-io", feature = "futures-timer"))]
use crate::time::DefaultTimer;
use crate::time::Timer;
use crate::timeout::Deadline;
use crate::{validate, ConfigError};

/// Total deadline → retry budget → retry (backoff) → hedge → circuit breaker → limiter slot →
/// attempt timeout → your operation, composed in that order whatever order the builder was
/// given its settings in. See the [module documentation](super).
///
/// `T` is the timer, `C` the retry [classifier](Classify), `L` the [`Limiter`] (`()` for none).
/// Clones are cheap (a reference count) and share everything: the breaker, the budgets, the
/// limiter and the latency window.
pub struct Pipeline<T: Timer, C = RetryAll, L = ()> {
    pub(super) inner: Arc<Inner<T, C, L>>,
}

/// What the clones of a [`Pipeline`] share.
pub(super) struct Inner<T: Timer, C, L> {
    pub(super) timer: T,
    pub(super) retry: RetryConfig,
    pub(super) classifier: C,
    pub(super) budget: Option<RetryBudget>,
    pub(super) hedge: Option<Hedge>,
    pub(super) breaker: Option<CircuitBreaker<T>>,
    pub(super) limiter: L,
    pub(super) total_timeout: Option<Duration>,
    pub(super) attempt_timeout: Option<Duration>,
    pub(super) predictor: Predictor,
    /// A call reads the clock when it starts: it has a deadline, an attempt timeout, a budget
    /// to deposit into or a limiter to ask.
    pub(super) needs_start_time: bool,
    /// `tailguard_pipeline_deadline_refusals_total`, `reason="passed"` and `"too_short"`.
    pub(super) deadline_refusals: [Counter; 2],
}

impl<T: Timer, C, L> Clone for Pipeline<T, C, L> {
    fn clone(&self) -> Self {
        Pipeline {
            inner: Arc::clone(&self.inner),
        }
    }
}

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
            timer,
            classifier: RetryAll,
            limiter: (),
            total_timeout: None,
            attempt_timeout: None,
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
        }
    }
}

impl<T: Timer, C, L: Limiter> Pipeline<T, C, L> {
    /// Runs one call: `op(attempt)` makes one attempt (attempts are numbered from 1, retries and
    /// hedges included) and returns its future of `Result`. The call's deadline, if the
    /// pipeline has a [`total_timeout`](PipelineBuilder::total_timeout), counts from the first
    /// poll.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tailguard::pipeline::Pipeline;
    /// use tailguard::time::ManualTimer;
    ///
    /// let timer = ManualTimer::new();
    /// let pipeline = Pipeline::with_timer(timer.clone()).max_attempts(3).build()?;
    /// let out = timer.block_on(pipeline.call(|attempt| async move {
    ///     if attempt.number() < 3 { Err("busy") } else { Ok(attempt.number()) }
    /// }));
    /// assert_eq!(out, Ok(3));
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    pub fn call<Op, Fut>(&self, op: Op) -> PipelineFuture<'_, T, C, L, Op, Fut>
    where
        C: Classify<Fut::Error>,
        Op: FnMut(Attempt) -> Fut,
        Fut: TryFuture,
    {
        PipelineFuture::new(&self.inner, op, None)
    }

    /// Runs one call that must end by `deadline` (an [`Instant`] or a [`Deadline`]), or by the
    /// pipeline's [`total_timeout`](PipelineBuilder::total_timeout) if that falls first. A
    /// deadline already passed when the call is first polled ends it at once with
    /// [`PipelineError::DeadlinePassed`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use tailguard::pipeline::{Pipeline, PipelineError};
    /// use tailguard::time::{ManualTimer, Timer};
    ///
    /// let timer = ManualTimer::new();
    /// let pipeline = Pipeline::with_timer(timer.clone()).max_attempts(5).build()?;
    /// let deadline = timer.now() + Duration::from_millis(250);
    /// let t = timer.clone();
    /// let out = timer.block_on(pipeline.call_until(deadline, |_| {
    ///     let slow = t.sleep(Duration::from_secs(1));
    ///     async move { slow.await; Ok::<_, std::io::Error>(()) }
    /// }));
    /// assert!(matches!(out, Err(PipelineError::DeadlineReached { attempts: 1, .. })));
    /// assert_eq!(timer.elapsed(), Duration::from_millis(250));
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    pub fn call_until<Op, Fut>(
        &self,
        deadline: impl Into<Deadline>,
        op: Op,
    ) -> PipelineFuture<'_, T, C, L, Op, Fut>
    where
        C: Classify<Fut::Error>,
        Op: FnMut(Attempt) -> Fut,
        Fut: TryFuture,
    {
        PipelineFuture::new(&self.inner, op, Some(deadline.into().instant()))
    }

    /// Like [`call`](Pipeline::call), but the future owns a clone of the pipeline (a reference
    /// count) instead of borrowing it, so it can be spawned as a task of its own.
    ///
    /// ```
    /// use tailguard::pipeline::Pipeline;
    ///
    /// let pipeline = Pipeline::builder().max_attempts(3).build()?;
    /// let task = smol::spawn(pipeline.call_owned(|_| async { Ok::<_, std::io::Error>("pong") }));
    /// assert_eq!(smol::block_on(task).unwrap(), "pong");
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    pub fn call_owned<Op, Fut>(
        &self,
        op: Op,
    ) -> impl Future<Output = Result<Fut::Ok, PipelineError<Fut::Error>>>
    where
        C: Classify<Fut::Error>,
        Op: FnMut(Attempt) -> Fut,
        Fut: TryFuture,
    {
        let pipeline = self.clone();
        async move { pipeline.call(op).await }
    }

    /// Like [`call_until`](Pipeline::call_until), owning a clone of the pipeline; see
    /// [`call_owned`](Pipeline::call_owned).
    pub fn call_until_owned<Op, Fut>(
        &self,
        deadline: impl Into<Deadline>,
        op: Op,
    ) -> impl Future<Output = Result<Fut::Ok, PipelineError<Fut::Error>>>
    where
        C: Classify<Fut::Error>,
        Op: FnMut(Attempt) -> Fut,
        Fut: TryFuture,
    {
        let pipeline = self.clone();
        let deadline = deadline.into();
        async move { pipeline.call_until(deadline, op).await }
    }
}

impl<T: Timer, C, L> Pipeline<T, C, L> {
    /// The timer the pipeline reads and sleeps on.
    pub fn timer(&self) -> &T {
        &self.inner.timer
    }

    /// The window of attempt latencies the predictions are drawn from.
    pub fn latency(&self) -> &RollingHistogram {
        &self.inner.predictor.latency
    }

    /// How long an attempt started at `now` is predicted to take: the configured percentile of
    /// the window once it holds enough samples, the floor until then. A retry or a hedge starts
    /// only if at least this much time is left before the call's deadline.
    pub fn predicted_latency_at(&self, now: Instant) -> Duration {
        self.inner.predictor.predict_at(now)
    }

    /// The circuit breaker, if any.
    pub fn breaker(&self) -> Option<&CircuitBreaker<T>> {
        self.inner.breaker.as_ref()
    }

    /// The retry budget, if any.
    pub fn budget(&self) -> Option<&RetryBudget> {
        self.inner.budget.as_ref()
    }

    /// The hedging policy, if any.
    pub fn hedge(&self) -> Option<&Hedge> {
        self.inner.hedge.as_ref()
    }

    /// The limiter.
    pub fn limiter(&self) -> &L {
        &self.inner.limiter
    }

    /// The deadline of a whole call, if any.
    pub fn total_timeout(&self) -> Option<Duration> {
        self.inner.total_timeout
    }

    /// The time limit of each attempt, if any.
    pub fn attempt_timeout(&self) -> Option<Duration> {
        self.inner.attempt_timeout
    }

    /// The retry settings (attempts, backoff); the budget and the timeouts are the pipeline's.
    pub fn retry_config(&self) -> &RetryConfig {
        &self.inner.retry
    }
}

impl<T: Timer, C, L> fmt::Debug for Pipeline<T, C, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("Pipeline")
            .field("total_timeout", &inner.total_timeout)
            .field("retry", &inner.retry)
            .field("budget", &inner.budget)
            .field("hedge", &inner.hedge)
            .field("breaker", &inner.breaker)
            .field("attempt_timeout", &inner.attempt_timeout)
            .field("predictor", &inner.predictor)
            .finish_non_exhaustive()
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
    timer: T,
    classifier: C,
    limiter: L,
    total_timeout: Option<Duration>,
    attempt_timeout: Option<Duration>,
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
        self.total_timeout = Some(timeout);
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
        self.name = PolicyName::new(name);
        self
    }

    /// The time limit of each attempt, counted from the operation's start (after its limiter
    /// slot), itself capped by the call's deadline. A timed-out attempt is a failure to the
    /// breaker and the limiter, retried as [`on_timeout`](Self::on_timeout) says. Must be
    /// greater than zero.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// The most rounds of attempts per call, the first included (hedges do not count): at least
    /// 1, the default, which means no retry.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// The delays between retries (default [`Backoff::default`]).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Some(backoff);
        self
    }

    /// The longest delay a [`Decision::RetryAfter`] may ask for (default 60 s).
    pub fn max_retry_after(mut self, cap: Duration) -> Self {
        self.max_retry_after = cap;
        self
    }

    /// Whether to retry an attempt that timed out (default [`Decision::Retry`]).
    pub fn on_timeout(mut self, decision: Decision) -> Self {
        self.on_timeout = decision;
        self
    }

    /// A retry budget (usually shared by everything calling the same dependency): each call
    /// that makes an attempt deposits once, each retry withdraws. A call the breaker or the
    /// limiter refuses, or whose deadline has passed, deposits nothing, and a retry withdrawn
    /// but never made is refunded.
    pub fn retry_budget(mut self, budget: RetryBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Hedging inside each retry round: a backup attempt after the policy's delay, within its
    /// budget, never when less time is left than an attempt is predicted to take.
    pub fn hedge(mut self, hedge: Hedge) -> Self {
        self.hedge = Some(hedge);
        self
    }

    /// A circuit breaker asked before every attempt (hedges included); each attempt's outcome is
    /// recorded (an error or an attempt timeout is a failure). A cancelled attempt, and every
    /// rejection by a later layer, releases its permit uncounted.
    pub fn breaker(mut self, breaker: CircuitBreaker<T>) -> Self {
        self.breaker = Some(breaker);
        self
    }

    /// The percentile of recent attempt latencies taken as an attempt's predicted latency, in
    /// `(0, 1]` (default 0.9).
    pub fn predict_percentile(mut self, percentile: f64) -> Self {
        self.percentile = percentile;
        self
    }

    /// The predicted latency while the window holds fewer than
    /// [`predict_min_samples`](Self::predict_min_samples) samples (default zero: every retry
    /// and hedge that has any time left starts).
    pub fn predict_floor(mut self, floor: Duration) -> Self {
        self.floor = floor;
        self
    }

    /// The samples the window needs before its percentile is used (default 20, at least 1).
    pub fn predict_min_samples(mut self, samples: u64) -> Self {
        self.min_samples = samples;
        self
    }

    /// The window of attempt latencies: `window` long, in `slots` slices (default 10 s, 10).
    pub fn latency_window(mut self, window: Duration, slots: usize) -> Self {
        self.window = (window, slots);
        self
    }

    /// Which errors to retry: any [`Classify`], such as a closure `|e: &E| -> Decision` (name
    /// the error's type in the closure; see [`RetryBuilder::classify`](crate::retry::RetryBuilder::classify)).
    pub fn classify<C2>(self, classifier: C2) -> PipelineBuilder<T, C2, L> {
        PipelineBuilder {
            timer: self.timer,
            classifier,
            limiter: self.limiter,
            total_timeout: self.total_timeout,
            attempt_timeout: self.attempt_timeout,
            max_attempts: self.max_attempts,
            backoff: self.backoff,
            max_retry_after: self.max_retry_after,
            on_timeout: self.on_timeout,
            budget: self.budget,
            hedge: self.hedge,
            breaker: self.breaker,
            percentile: self.percentile,
            min_samples: self.min_samples,
            floor: self.floor,
            window: self.window,
            name: self.name,
        }
    }

    /// A [`Limiter`] asked for a slot before every attempt, after the breaker.
    pub fn limiter<L2: Limiter>(self, limiter: L2) -> PipelineBuilder<T, C, L2> {
        PipelineBuilder {
            timer: self.timer,
            classifier: self.classifier,
            limiter,
            total_timeout: self.total_timeout,
            attempt_timeout: self.attempt_timeout,
            max_attempts: self.max_attempts,
            backoff: self.backoff,
            max_retry_after: self.max_retry_after,
            on_timeout: self.on_timeout,
            budget: self.budget,
            hedge: self.hedge,
            breaker: self.breaker,
            percentile: self.percentile,
            min_samples: self.min_samples,
            floor: self.floor,
            window: self.window,
            name: self.name,
        }
    }

    /// Checks every setting and makes the pipeline.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming `total_timeout` or `attempt_timeout` if zero, `max_attempts`
    /// if zero, `predict_percentile` outside `(0, 1]`, `predict_min_samples` if zero, or
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
        if let Some(timeout) = self.total_timeout {
            validate::positive_duration("total_timeout", timeout, "no attempt could start")?;
        }
        if let Some(timeout) = self.attempt_timeout {
            validate::positive_duration(
                "attempt_timeout",
                timeout,
                "every attempt would time out",
            )?;
        }
        validate::rate("predict_percentile", self.percentile, "a percentile")?;
        validate::at_least_one("predict_min_samples", self.min_samples, "")?;
        let (window, slots) = self.window;
        let latency = RollingHistogram::new(window, slots).map_err(|e| {
            let field = if e.field() == "slots" {
                "latency_window.slots"
            } else {
                "latency_window.window"
            };
            ConfigError::new(field, e.message().to_owned())
        })?;
        let mut retry = Retry::with_timer(self.timer.clone())
            .name(self.name.as_str())
            .max_attempts(self.max_attempts)
            .max_retry_after(self.max_retry_after)
            .on_timeout(self.on_timeout);
        if let Some(backoff) = self.backoff {
            retry = retry.backoff(backoff);
        }
        let retry = retry.build()?.config().clone();
        let needs_start_time = self.total_timeout.is_some()
            || self.attempt_timeout.is_some()
            || self.budget.is_some()
            || L::PRESENT;
        Ok(Pipeline {
            inner: Arc::new(Inner {
                timer: self.timer,
                retry,
                classifier: self.classifier,
                budget: self.budget,
                hedge: self.hedge,
                breaker: self.breaker,
                limiter: self.limiter,
                total_timeout: self.total_timeout,
                attempt_timeout: self.attempt_timeout,
                predictor: Predictor::new(latency, self.percentile, self.min_samples, self.floor),
                needs_start_time,
                deadline_refusals: [
                    Counter::with_reason(metrics::PIPELINE_DEADLINE_REFUSALS, &self.name, "passed"),
                    Counter::with_reason(
                        metrics::PIPELINE_DEADLINE_REFUSALS,
                        &self.name,
                        "too_short",
                    ),
                ],
            }),
        })
    }
}

impl<T: Timer, C, L> fmt::Debug for PipelineBuilder<T, C, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineBuilder")
            .field("total_timeout", &self.total_timeout)
            .field("max_attempts", &self.max_attempts)
            .field("budget", &self.budget)
            .field("hedge", &self.hedge)
            .field("breaker", &self.breaker)
            .field("attempt_timeout", &self.attempt_timeout)
            .finish_non_exhaustive()
    }
}
