//! [`Pipeline`]: the validated, shared policy, and its calls.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_core::TryFuture;

use super::attempt_limit::AttemptLimit;
use super::future::PipelineFuture;
use super::limiter::Limiter;
use super::predict::Predictor;
use super::{Attempt, PipelineError};
use crate::adaptive_timeout::AdaptiveTimeout;
use crate::breaker::CircuitBreaker;
use crate::hedge::Hedge;
use crate::latency::RollingHistogram;
use crate::metrics::Counter;
use crate::retry::{Classify, RetryAll, RetryBudget, RetryConfig};
use crate::time::Timer;
use crate::timeout::Deadline;

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
    pub(super) attempt_limit: AttemptLimit,
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

impl<T: Timer, C, L: Limiter> Pipeline<T, C, L> {
    /// Runs one call: `op(attempt)` makes one attempt (attempts are numbered from 1, retries and
    /// hedges included) and returns its future of `Result`. The call's deadline, if the
    /// pipeline has a [`total_timeout`](super::PipelineBuilder::total_timeout), counts from the first
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
    /// pipeline's [`total_timeout`](super::PipelineBuilder::total_timeout) if that falls first. A
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

    /// The fixed time limit of each attempt, if any (`None` with an
    /// [adaptive](Pipeline::attempt_timeout_adaptive) one).
    pub fn attempt_timeout(&self) -> Option<Duration> {
        self.inner.attempt_limit.fixed()
    }

    /// The adaptive attempt timeout, if any: its
    /// [`stats`](AdaptiveTimeout::stats) count the attempts it let complete and those it cut,
    /// and [`record_late`](AdaptiveTimeout::record_late) takes what a caller learns later of
    /// a cut attempt's fate (for the false-timeout estimate).
    pub fn attempt_timeout_adaptive(&self) -> Option<&AdaptiveTimeout> {
        self.inner.attempt_limit.adaptive()
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
            .field("attempt_timeout", &inner.attempt_limit)
            .field("predictor", &inner.predictor)
            .finish_non_exhaustive()
    }
}
