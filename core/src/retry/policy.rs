//! The [`Retry`] policy, its builder, and the classifier and hook traits.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::budget::RetryBudget;
use super::error::AttemptError;
use crate::backoff::{Backoff, Cursor};
use crate::metrics::{self, Counter, PolicyName};
#[cfg(any(feature = "async-io", feature = "futures-timer"))]
use crate::time::DefaultTimer;
use crate::time::Timer;
use crate::{validate, ConfigError};

/// What to do after a failed attempt, as decided by a classifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// A transient fault: retry after the backoff's next delay.
    Retry,
    /// The server asked to wait this long (a `Retry-After` header, a throttling reply): retry
    /// after this delay instead of the backoff's, capped by
    /// [`max_retry_after`](RetryBuilder::max_retry_after).
    RetryAfter(Duration),
    /// A permanent fault: give up now with [`GaveUp::NotRetryable`](super::GaveUp::NotRetryable).
    Stop,
}

/// Decides whether an error is worth retrying.
///
/// Implemented for every `Fn(&E) -> Decision`, so a closure does:
///
/// ```
/// use std::io;
/// use tailguard::retry::{Classify, Decision};
///
/// let transient_only = |e: &io::Error| match e.kind() {
///     io::ErrorKind::ConnectionRefused | io::ErrorKind::TimedOut => Decision::Retry,
///     _ => Decision::Stop,
/// };
/// assert_eq!(transient_only.classify(&io::ErrorKind::TimedOut.into()), Decision::Retry);
/// assert_eq!(transient_only.classify(&io::ErrorKind::NotFound.into()), Decision::Stop);
/// ```
pub trait Classify<E> {
    /// The decision for `error`.
    fn classify(&self, error: &E) -> Decision;
}

impl<E, F: Fn(&E) -> Decision> Classify<E> for F {
    fn classify(&self, error: &E) -> Decision {
        self(error)
    }
}

/// The default classifier: every error is worth retrying.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryAll;

impl<E> Classify<E> for RetryAll {
    fn classify(&self, _: &E) -> Decision {
        Decision::Retry
    }
}

/// What an [`OnRetry`] hook sees before each retry.
#[derive(Debug)]
#[non_exhaustive]
pub struct RetryEvent<'a, E> {
    /// The attempt that just failed, counting from 1.
    pub attempt: u32,
    /// How it failed.
    pub error: &'a AttemptError<E>,
    /// How long the loop will wait before the next attempt.
    pub delay: Duration,
}

/// Called before each retry, for logs and metrics. Implemented for every
/// `Fn(&RetryEvent<'_, E>)`; `()` is the hook that does nothing.
pub trait OnRetry<E> {
    /// Called once per retry, after the delay is chosen and before sleeping.
    fn on_retry(&self, event: &RetryEvent<'_, E>);
}

impl<E> OnRetry<E> for () {
    fn on_retry(&self, _: &RetryEvent<'_, E>) {}
}

impl<E, F: Fn(&RetryEvent<'_, E>)> OnRetry<E> for F {
    fn on_retry(&self, event: &RetryEvent<'_, E>) {
        self(event)
    }
}

/// The timer-free part of a [`Retry`] policy: limits, backoff, budget. A
/// [`RetryState`](super::RetryState) reads it; the Python binding drives it with its own clock.
pub struct RetryConfig {
    pub(super) max_attempts: u32,
    pub(super) max_elapsed: Option<Duration>,
    pub(super) attempt_timeout: Option<Duration>,
    pub(super) max_retry_after: Duration,
    pub(super) on_timeout: Decision,
    pub(super) backoff: Backoff,
    pub(super) budget: Option<RetryBudget>,
    /// Counts runs that failed at least once, to give each its own stream of a seeded backoff.
    pub(super) runs: AtomicU64,
    pub(super) name: PolicyName,
    /// `tailguard_retry_retries_total` (see [`crate::metrics`]).
    pub(super) retries: Counter,
    /// `tailguard_retry_budget_refusals_total`.
    pub(super) budget_refusals: Counter,
}

impl RetryConfig {
    /// The most attempts one call makes, the first included.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The deadline for a whole call, attempts and sleeps included, if any.
    pub fn max_elapsed(&self) -> Option<Duration> {
        self.max_elapsed
    }

    /// The time limit of each attempt, if any.
    pub fn attempt_timeout(&self) -> Option<Duration> {
        self.attempt_timeout
    }

    /// The longest server-requested delay honoured; longer requests are cut to this.
    pub fn max_retry_after(&self) -> Duration {
        self.max_retry_after
    }

    /// What to do after an attempt times out.
    pub fn on_timeout(&self) -> Decision {
        self.on_timeout
    }

    /// The backoff each call starts from (each call uses its own copy).
    pub fn backoff(&self) -> &Backoff {
        &self.backoff
    }

    /// The shared retry budget, if any.
    pub fn budget(&self) -> Option<&RetryBudget> {
        self.budget.as_ref()
    }

    /// The policy's name, the `name` label of its [metrics](crate::metrics).
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// A fresh backoff position for one call.
    pub(super) fn fork_backoff(&self) -> Cursor {
        let stream = match self.backoff.seed() {
            Some(_) => self.runs.fetch_add(1, Ordering::Relaxed),
            None => 0,
        };
        self.backoff.fork_cursor(stream)
    }
}

impl Clone for RetryConfig {
    fn clone(&self) -> Self {
        RetryConfig {
            max_attempts: self.max_attempts,
            max_elapsed: self.max_elapsed,
            attempt_timeout: self.attempt_timeout,
            max_retry_after: self.max_retry_after,
            on_timeout: self.on_timeout,
            backoff: self.backoff.clone(),
            budget: self.budget.clone(),
            runs: AtomicU64::new(self.runs.load(Ordering::Relaxed)),
            name: self.name.clone(),
            retries: self.retries.clone(),
            budget_refusals: self.budget_refusals.clone(),
        }
    }
}

impl fmt::Debug for RetryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryConfig")
            .field("max_attempts", &self.max_attempts)
            .field("max_elapsed", &self.max_elapsed)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("max_retry_after", &self.max_retry_after)
            .field("on_timeout", &self.on_timeout)
            .field("backoff", &self.backoff)
            .field("budget", &self.budget)
            .field("name", &self.name.as_str())
            .finish()
    }
}

/// A retry policy: how many attempts, how long in all, which errors, which delays, which budget.
///
/// Build one with [`Retry::builder`] (on the [`DefaultTimer`]) or [`Retry::with_timer`], keep it,
/// and run operations under it with [`run`](Retry::run),
/// [`run_numbered`](Retry::run_numbered) or the [`Retryable`](super::Retryable)
/// extension; to spawn the call as a task of its own, [`run_owned`](Retry::run_owned). See the
/// [module documentation](super).
///
/// Clones are cheap (a reference count) and share everything, the seeded backoff's stream
/// counter included.
///
/// `T` is the timer, `C` the [classifier](Classify), `H` the [`OnRetry`] hook.
pub struct Retry<T, C = RetryAll, H = ()> {
    pub(super) shared: Arc<Shared<T, C, H>>,
}

/// What the clones of a [`Retry`] share.
pub(super) struct Shared<T, C, H> {
    pub(super) config: RetryConfig,
    pub(super) timer: T,
    pub(super) classifier: C,
    pub(super) hook: H,
}

impl<T, C, H> Clone for Retry<T, C, H> {
    fn clone(&self) -> Self {
        Retry {
            shared: Arc::clone(&self.shared),
        }
    }
}

#[cfg(any(feature = "async-io", feature = "futures-timer"))]
impl Retry<DefaultTimer> {
    /// A policy on the [`DefaultTimer`], starting from the defaults listed on [`RetryBuilder`].
    pub fn builder() -> RetryBuilder<DefaultTimer> {
        Retry::with_timer(DefaultTimer::default())
    }
}

impl<T: Timer> Retry<T> {
    /// A policy on `timer` (a [`ManualTimer`](crate::time::ManualTimer) in tests), starting from
    /// the defaults listed on [`RetryBuilder`].
    pub fn with_timer(timer: T) -> RetryBuilder<T> {
        RetryBuilder {
            timer,
            classifier: RetryAll,
            hook: (),
            settings: Settings {
                max_attempts: 3,
                max_elapsed: None,
                attempt_timeout: None,
                max_retry_after: Duration::from_secs(60),
                on_timeout: Decision::Retry,
                backoff: None,
                budget: None,
                name: PolicyName::DEFAULT,
            },
        }
    }
}

impl<T, C, H> std::borrow::Borrow<RetryConfig> for Retry<T, C, H> {
    fn borrow(&self) -> &RetryConfig {
        &self.shared.config
    }
}

impl<T, C, H> std::borrow::Borrow<RetryConfig> for &Retry<T, C, H> {
    fn borrow(&self) -> &RetryConfig {
        &self.shared.config
    }
}

impl<T, C, H> Retry<T, C, H> {
    /// The timer-free settings, shared with [`RetryState`](super::RetryState).
    pub fn config(&self) -> &RetryConfig {
        &self.shared.config
    }

    /// The timer the policy sleeps on.
    pub fn timer(&self) -> &T {
        &self.shared.timer
    }
}

impl<T, C, H> fmt::Debug for Retry<T, C, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

/// Settings for a [`Retry`] policy, validated by [`build`](RetryBuilder::build).
///
/// Defaults: 3 attempts, no deadline, no per-attempt timeout, every error retried, timed-out
/// attempts retried, server-requested delays honoured up to 60 s, no budget, and
/// [`Backoff::default`] (exponential from 100 ms, factor 2, capped at 10 s, full jitter).
#[must_use = "a builder does nothing until `build` is called"]
pub struct RetryBuilder<T, C = RetryAll, H = ()> {
    timer: T,
    classifier: C,
    hook: H,
    settings: Settings,
}

/// The settings of a [`RetryBuilder`] that do not depend on its type parameters.
#[derive(Debug)]
struct Settings {
    max_attempts: u32,
    max_elapsed: Option<Duration>,
    attempt_timeout: Option<Duration>,
    max_retry_after: Duration,
    on_timeout: Decision,
    backoff: Option<Backoff>,
    budget: Option<RetryBudget>,
    name: PolicyName,
}

impl<T: Timer, C, H> RetryBuilder<T, C, H> {
    /// The most attempts per call, the first included: at least 1 (1 means no retries).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.settings.max_attempts = attempts;
        self
    }

    /// A deadline for the whole call, counted from the first attempt's start and covering
    /// attempts and sleeps alike. The loop never sleeps past it and never starts an attempt after
    /// it, and an attempt still running at the deadline is cut short
    /// ([`GaveUp::DeadlineExceeded`](super::GaveUp::DeadlineExceeded)). Must be greater than zero.
    pub fn max_elapsed(mut self, deadline: Duration) -> Self {
        self.settings.max_elapsed = Some(deadline);
        self
    }

    /// A time limit for each attempt, itself capped by what is left of
    /// [`max_elapsed`](RetryBuilder::max_elapsed). A timed-out attempt is a failure
    /// ([`AttemptError::TimedOut`]) handled as [`on_timeout`](RetryBuilder::on_timeout) says.
    /// Must be greater than zero.
    pub fn attempt_timeout(mut self, limit: Duration) -> Self {
        self.settings.attempt_timeout = Some(limit);
        self
    }

    /// What to do after an attempt times out (default [`Decision::Retry`]).
    pub fn on_timeout(mut self, decision: Decision) -> Self {
        self.settings.on_timeout = decision;
        self
    }

    /// The longest delay a [`Decision::RetryAfter`] can ask for (default 60 s); longer requests
    /// wait this long.
    pub fn max_retry_after(mut self, cap: Duration) -> Self {
        self.settings.max_retry_after = cap;
        self
    }

    /// The delays between attempts. Each call starts its own copy from the beginning; a seeded
    /// backoff gives call `k` a reproducible stream of its own. Its `max_retries`, if set, also
    /// limits the attempts.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.settings.backoff = Some(backoff);
        self
    }

    /// Names the policy: the `name` label of its [metrics](crate::metrics) (`"default"` if
    /// not set).
    pub fn name(mut self, name: &str) -> Self {
        self.settings.name = PolicyName::new(name);
        self
    }

    /// A retry budget, usually shared by every policy that calls the same dependency. Each call
    /// deposits once; each retry withdraws, and gives up with
    /// [`GaveUp::BudgetExhausted`](super::GaveUp::BudgetExhausted) when refused.
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.settings.budget = Some(budget);
        self
    }

    /// Another timer.
    pub fn timer<T2: Timer>(self, timer: T2) -> RetryBuilder<T2, C, H> {
        RetryBuilder {
            timer,
            classifier: self.classifier,
            hook: self.hook,
            settings: self.settings,
        }
    }

    /// Which errors to retry: any [`Classify`], such as a closure `|e: &E| -> Decision`.
    ///
    /// The policy is built before it meets the operation whose errors it will see, so a
    /// closure that calls a method on the error must name its type, `|e: &io::Error|`, or the
    /// compiler stops with E0282 ("type annotations needed"):
    ///
    /// ```
    /// use std::io;
    /// use tailguard::retry::{Decision, Retry};
    /// use tailguard::time::ManualTimer;
    ///
    /// let timer = ManualTimer::new();
    /// let policy = Retry::with_timer(timer.clone())
    ///     .classify(|e: &io::Error| match e.kind() {
    ///         io::ErrorKind::ConnectionRefused => Decision::Retry,
    ///         _ => Decision::Stop,
    ///     })
    ///     .build()?;
    /// let out = timer.block_on(policy.run(|| async { Err::<(), _>(io::Error::from(io::ErrorKind::NotFound)) }));
    /// assert_eq!(out.unwrap_err().attempts(), 1); // NotFound: stopped at once
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    ///
    /// ```compile_fail,E0282
    /// # use std::io;
    /// # use tailguard::retry::{Decision, Retry};
    /// # let timer = tailguard::time::ManualTimer::new();
    /// let policy = Retry::with_timer(timer.clone())
    ///     .classify(|e| match e.kind() { // E0282: the type of `e` is not known yet
    ///         io::ErrorKind::ConnectionRefused => Decision::Retry,
    ///         _ => Decision::Stop,
    ///     })
    ///     .build()
    ///     .unwrap();
    /// let _ = policy.run(|| async { Err::<(), _>(io::Error::from(io::ErrorKind::NotFound)) });
    /// ```
    ///
    /// (It takes any [`Classify`], not only closures, so it cannot give the closure its
    /// parameter type the way [`on_retry`](RetryBuilder::on_retry) does.)
    pub fn classify<C2>(self, classifier: C2) -> RetryBuilder<T, C2, H> {
        RetryBuilder {
            timer: self.timer,
            classifier,
            hook: self.hook,
            settings: self.settings,
        }
    }

    /// A hook called before each retry with the attempt number, the error and the delay: a
    /// closure `|event| ...` taking a [`&RetryEvent<'_, E>`](RetryEvent). It needs no type
    /// annotation: `E` is inferred from the operation the policy runs.
    ///
    /// ```
    /// use std::cell::Cell;
    /// use tailguard::retry::Retry;
    /// use tailguard::time::ManualTimer;
    ///
    /// let timer = ManualTimer::new();
    /// let retries = Cell::new(0);
    /// let policy = Retry::with_timer(timer.clone())
    ///     .max_attempts(3)
    ///     .on_retry(|event| {
    ///         println!("attempt {} failed ({}), next in {:?}", event.attempt, event.error, event.delay);
    ///         retries.set(retries.get() + 1);
    ///     })
    ///     .build()?;
    /// let out = timer.block_on(policy.run(|| async { Err::<(), _>("connection refused") }));
    /// assert_eq!(out.unwrap_err().attempts(), 3);
    /// assert_eq!(retries.get(), 2);
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    ///
    /// A hook type of your own implementing [`OnRetry`] goes in a closure:
    /// `.on_retry(move |event| hook.on_retry(event))`.
    pub fn on_retry<E, H2>(self, hook: H2) -> RetryBuilder<T, C, H2>
    where
        H2: Fn(&RetryEvent<'_, E>),
    {
        RetryBuilder {
            timer: self.timer,
            classifier: self.classifier,
            hook,
            settings: self.settings,
        }
    }

    /// Checks the settings and makes the policy.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming `max_attempts` if zero, `max_elapsed` or `attempt_timeout` if
    /// zero.
    pub fn build(self) -> Result<Retry<T, C, H>, ConfigError> {
        let settings = self.settings;
        validate::at_least_one(
            "max_attempts",
            settings.max_attempts,
            "the first attempt counts",
        )?;
        if let Some(deadline) = settings.max_elapsed {
            validate::positive_duration("max_elapsed", deadline, "no attempt could start")?;
        }
        if let Some(limit) = settings.attempt_timeout {
            validate::positive_duration("attempt_timeout", limit, "every attempt would time out")?;
        }
        Ok(Retry {
            shared: Arc::new(Shared {
                config: RetryConfig {
                    max_attempts: settings.max_attempts,
                    max_elapsed: settings.max_elapsed,
                    attempt_timeout: settings.attempt_timeout,
                    max_retry_after: settings.max_retry_after,
                    on_timeout: settings.on_timeout,
                    backoff: settings.backoff.unwrap_or_default(),
                    budget: settings.budget,
                    runs: AtomicU64::new(0),
                    retries: Counter::new(metrics::RETRY_RETRIES, &settings.name),
                    budget_refusals: Counter::new(metrics::RETRY_BUDGET_REFUSALS, &settings.name),
                    name: settings.name,
                },
                timer: self.timer,
                classifier: self.classifier,
                hook: self.hook,
            }),
        })
    }
}

impl<T, C, H> fmt::Debug for RetryBuilder<T, C, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBuilder")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}
