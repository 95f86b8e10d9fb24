//! One call through every pattern, in the right order, under one deadline.
//!
//! A [`Pipeline`] composes the policies of this crate around an operation in one fixed order:
//!
//! ```text
//! total deadline → retry budget → retry (backoff) → hedge → circuit breaker → limiter slot → attempt timeout → operation
//! ```
//!
//! The builder's methods may be called in any order; the composition is always this one, so a
//! wrong order cannot be written. Why this order:
//!
//! - the **deadline** is outermost: it bounds everything, sleeps included;
//! - the **budget** is asked before each retry, so retries stay a fraction of calls;
//! - **retry** wraps **hedge**: a round of attempts (the primary and its hedges) fails only when
//!   all of them have, and only then does the retry decide;
//! - the **breaker** sees every attempt, hedges included, and a call it refuses never reaches the
//!   limiter nor waits for a slot;
//! - the **limiter** slot is taken last, just before the operation, so a slot is never held
//!   while waiting for another layer (a pair of limiters, `(A, B)`, holds `A`'s slot while it
//!   waits for `B`'s: put the one that may wait second);
//! - the **attempt timeout** is innermost: it bounds the operation alone, not the wait for a slot.
//!   It is a separate setting from the total timeout, fixed
//!   ([`attempt_timeout`](PipelineBuilder::attempt_timeout)) or learnt from the attempts it
//!   bounds ([`attempt_timeout_adaptive`](PipelineBuilder::attempt_timeout_adaptive), an
//!   [`AdaptiveTimeout`](crate::adaptive_timeout::AdaptiveTimeout): a percentile of recent
//!   latency × a factor, within a floor and a ceiling, into which every attempt that ends on its
//!   own is recorded, a cut one as a lower bound).
//!
//! ```
//! use std::time::Duration;
//! use tailguard::backoff::{Backoff, Jitter};
//! use tailguard::breaker::CircuitBreaker;
//! use tailguard::pipeline::{Pipeline, PipelineError};
//! use tailguard::retry::RetryBudget;
//! use tailguard::time::{ManualTimer, Timer};
//!
//! let timer = ManualTimer::new();
//! let pipeline = Pipeline::with_timer(timer.clone())
//!     .attempt_timeout(Duration::from_millis(100))
//!     .breaker(CircuitBreaker::builder().build_with(timer.clone())?)
//!     .max_attempts(3)
//!     .backoff(Backoff::constant(Duration::from_millis(10)).jitter(Jitter::None).build()?)
//!     .retry_budget(RetryBudget::builder().build_with(timer.clone())?)
//!     .total_timeout(Duration::from_secs(1))
//!     .build()?;
//!
//! // The first attempt stalls and is cut at 100 ms; the retry answers.
//! let t = timer.clone();
//! let out = timer.block_on(pipeline.call(|attempt| {
//!     let took = if attempt.number() == 1 { 5_000 } else { 3 };
//!     let sleep = t.sleep(Duration::from_millis(took));
//!     async move {
//!         sleep.await;
//!         Ok::<_, std::io::Error>(attempt.number())
//!     }
//! }));
//! assert_eq!(out.unwrap(), 2);
//! assert_eq!(timer.elapsed(), Duration::from_millis(100 + 10 + 3));
//! # Ok::<(), tailguard::ConfigError>(())
//! ```
//!
//! # One deadline, through every layer
//!
//! A call's deadline is the one given to [`call_until`](Pipeline::call_until) or the pipeline's
//! [`total_timeout`](PipelineBuilder::total_timeout) from the call's start, whichever falls
//! first. It bounds every attempt (each attempt's own limit is capped by it), every wait for a
//! limiter slot, every backoff sleep and every hedge, and it decides:
//!
//! - a deadline already passed when the call starts ends it at once with
//!   [`PipelineError::DeadlinePassed`], before anything is asked or deposited;
//! - a **retry** is not started, nor its backoff sleep taken, when the time left after the sleep
//!   would be shorter than an attempt is *predicted* to take: the call ends at once with
//!   [`PipelineError::DeadlineTooShort`] instead of a doomed attempt;
//! - a **hedge** is not sent when the time left is shorter than the prediction (the attempts in
//!   flight go on);
//! - work still running when the deadline falls is cancelled, with
//!   [`PipelineError::DeadlineReached`].
//!
//! The prediction is the pipeline's own: a percentile
//! ([`predict_percentile`](PipelineBuilder::predict_percentile), p90 by default) of the
//! latencies of its recent attempts, kept in a
//! [`RollingHistogram`](crate::latency::RollingHistogram)
//! ([`latency_window`](PipelineBuilder::latency_window)), and a configured floor
//! ([`predict_floor`](PipelineBuilder::predict_floor)) until the window holds
//! [`predict_min_samples`](PipelineBuilder::predict_min_samples). Every attempt that ends on
//! its own is recorded: a success or a failure at its latency (zero if it was ready on its
//! first poll), a timed-out attempt at its limit. Attempts cancelled (a lost hedge, the call's
//! deadline, a dropped call) are not: they say nothing about how long an attempt takes. The
//! first attempt of a call is never refused on a prediction: only the deadline having passed
//! stops it.
//!
//! ## Fan-out under the same deadline
//!
//! A fan-out gives every leg the caller's deadline: each leg is a
//! [`call_until`](Pipeline::call_until) with it, so no leg retries, hedges or waits for a slot
//! past it, and the [`scatter_gather_with`](crate::fanout::scatter_gather_with) around them stops
//! at the same instant. A leg whose replica stalls ends with the deadline; the others answer.
//!
//! ```
//! use std::time::Duration;
//! use tailguard::backoff::{Backoff, Jitter};
//! use tailguard::fanout::scatter_gather_with;
//! use tailguard::pipeline::{Pipeline, PipelineError};
//! use tailguard::time::{ManualTimer, Timer};
//! use tailguard::timeout::Deadline;
//!
//! let timer = ManualTimer::new();
//! let pipeline = Pipeline::with_timer(timer.clone())
//!     .max_attempts(3)
//!     .attempt_timeout(Duration::from_millis(30))
//!     .backoff(Backoff::constant(Duration::from_millis(5)).jitter(Jitter::None).build()?)
//!     .predict_floor(Duration::from_millis(20)) // until it has measured its own attempts
//!     .build()?;
//! let deadline = Deadline::after_with(timer.clone(), Duration::from_millis(50));
//! let legs = (0..4u64).map(|key| {
//!     let t = timer.clone();
//!     pipeline.call_until(deadline, move |_| {
//!         // Key 2 always stalls; the others take 5 ms.
//!         let sleep = t.sleep(Duration::from_millis(if key == 2 { 1_000 } else { 5 }));
//!         async move {
//!             sleep.await;
//!             Ok::<_, std::io::Error>(key)
//!         }
//!     })
//! });
//! let answers = timer.block_on(scatter_gather_with(timer.clone(), legs, deadline));
//! assert!(matches!(answers[0], Ok(Ok(0))));
//! // Key 2's first attempt was cut at 30 ms; after a 5 ms backoff, 15 ms would be left, less
//! // than an attempt is predicted to take (20 ms): no doomed second attempt.
//! assert!(matches!(answers[2], Ok(Err(PipelineError::DeadlineTooShort { .. }))));
//! assert!(timer.elapsed() <= Duration::from_millis(50)); // nothing ran past the deadline
//! # Ok::<(), tailguard::ConfigError>(())
//! ```
//!
//! # Rejections are not failures
//!
//! A call the breaker refuses ([`PipelineError::BreakerOpen`], with its retry-after), the
//! limiter refuses ([`PipelineError::LimiterFull`]), the budget refuses
//! ([`PipelineError::BudgetEmpty`]) or the deadline stops never counts as a failure in the
//! breaker's window nor as a call in the budget: the breaker permit is released uncounted, a
//! call deposits into the budget only once its first attempt has started, and a retry withdrawn
//! but not made is refunded.
//!
//! # Sans-IO underneath, no nesting
//!
//! The pipeline does not nest the policies' futures. One [`PipelineFuture`] drives their sans-IO
//! cores directly: a [`RetryState`](crate::retry::RetryState) for attempts and backoff, the
//! [`RetryBudget`](crate::retry::RetryBudget), a [`HedgeState`](crate::hedge::HedgeState) per
//! round (with the [`Hedge`](crate::hedge::Hedge)'s budget and adaptive delay), the
//! [`CircuitBreaker`](crate::breaker::CircuitBreaker)'s permits, the [`Limiter`] and one
//! [`Timer`](crate::time::Timer) sleep. So the future is `Send` whenever the operation is,
//! without boxing, and an absent layer costs nothing: no limiter (`()`, the default type) is
//! compiled out, and an absent breaker, budget or hedge is one branch.
//!
//! # Cost
//!
//! A call whose first attempt succeeds at once allocates nothing, creates no sleep, and the
//! pipeline reads its clock at most once, at the start, and only if it needs a start time (a
//! deadline, an attempt timeout, a budget or a limiter); an attempt that was ready dates its
//! zero-latency sample (for the prediction, and an adaptive timeout or hedge delay) with the
//! timer's coarse clock, [`now_coarse_nanos`](crate::time::Timer::now_coarse_nanos): the
//! kernel's coarse clock on `AsyncIoTimer`, an atomic load on `CachedTimer`, exact in virtual
//! time. An adaptive attempt timeout reads its limit without a clock and records the sample
//! the prediction takes: no allocation of its own; it brings its limit up to date when an
//! attempt that waited ends.
//! The layers keep their own costs: a
//! breaker that times slow calls or keeps a time window reads its timer too. Hedges are boxed, on the slow path only.
//! [`call_owned`](Pipeline::call_owned) makes a future that owns a clone of the pipeline, to
//! spawn.

mod attempt_limit;
mod builder;
mod calls;
mod error;
mod future;
mod hedging;
mod leg;
mod limiter;
mod limiters;
mod predict;

use std::time::Instant;

pub use self::builder::PipelineBuilder;
pub use self::calls::Pipeline;
pub use self::error::PipelineError;
pub use self::future::PipelineFuture;
pub use self::limiter::{Limiter, LimiterPermit, LimiterRejected, Outcome};
pub use self::limiters::{BulkheadSlot, PairSlot, RateSlot, ThrottlePermit};

/// What the operation is told about the attempt it makes.
///
/// ```
/// use tailguard::pipeline::Pipeline;
/// use tailguard::time::ManualTimer;
///
/// let timer = ManualTimer::new();
/// let pipeline = Pipeline::with_timer(timer.clone()).max_attempts(2).build()?;
/// let seen = std::cell::RefCell::new(Vec::new());
/// let out = timer.block_on(pipeline.call(|attempt| {
///     seen.borrow_mut().push((attempt.number(), attempt.round(), attempt.is_hedge()));
///     async { Err::<(), _>("down") }
/// }));
/// assert!(out.is_err());
/// assert_eq!(*seen.borrow(), [(1, 1, false), (2, 2, false)]);
/// # Ok::<(), tailguard::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Attempt {
    number: u32,
    round: u32,
    hedge: u32,
    deadline: Option<Instant>,
}

impl Attempt {
    /// A leg not yet started: no number yet.
    const UNSTARTED: Attempt = Attempt {
        number: 0,
        round: 0,
        hedge: 0,
        deadline: None,
    };

    fn new(round: u32, hedge: u32) -> Self {
        Attempt {
            round,
            hedge,
            ..Attempt::UNSTARTED
        }
    }

    /// This attempt's number in the call, from 1, counting every operation started (retries and
    /// hedges alike).
    pub fn number(&self) -> u32 {
        self.number
    }

    /// The retry round it belongs to, from 1.
    pub fn round(&self) -> u32 {
        self.round
    }

    /// Its place in the round: 1 for the primary, 2 and up for hedges.
    pub fn hedge(&self) -> u32 {
        self.hedge
    }

    /// Whether it is a hedge (a backup of a slow primary).
    pub fn is_hedge(&self) -> bool {
        self.hedge > 1
    }

    /// When this attempt must end: its own timeout from its start, capped by the call's
    /// deadline; `None` if neither is set. An operation that calls a remote service can send it
    /// on (as the time left) so that the service does not work past it.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    fn is_started(&self) -> bool {
        self.number != 0
    }
}

#[cfg(test)]
mod adaptive_tests;
#[cfg(test)]
mod limiter_tests;
#[cfg(test)]
mod tests;
