//! The thin async glue: acquire, run, measure on a timer, record.

use std::fmt;
use std::future::Future;

use super::permit::{Outcome, Rejected};
use super::AdaptiveLimiter;
use crate::priority::Criticality;
use crate::time::Timer;

/// Why a call through the limiter did not return `Ok`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError<E> {
    /// The limiter refused the call; the operation never ran.
    Rejected(Rejected),
    /// The operation ran and returned this error.
    Inner(E),
}

impl<E> CallError<E> {
    /// The operation's own error, if it ran.
    pub fn into_inner(self) -> Option<E> {
        match self {
            CallError::Inner(error) => Some(error),
            CallError::Rejected(_) => None,
        }
    }

    /// The rejection, if the limiter refused the call.
    pub fn rejected(&self) -> Option<&Rejected> {
        match self {
            CallError::Rejected(rejected) => Some(rejected),
            CallError::Inner(_) => None,
        }
    }
}

impl<E: fmt::Display> fmt::Display for CallError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Rejected(rejected) => rejected.fmt(f),
            CallError::Inner(error) => error.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for CallError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CallError::Rejected(rejected) => Some(rejected),
            CallError::Inner(error) => Some(error),
        }
    }
}

impl AdaptiveLimiter {
    /// Runs `operation` as a call of `class` if the limiter admits it, timed on `timer`: `Ok`
    /// is a [`Success`](Outcome::Success) sample, `Err` is [`Ignored`](Outcome::Ignored)
    /// (as concurrency-limits' default: an error says nothing about load unless you say so
    /// with [`call_classified_with`](Self::call_classified_with)).
    ///
    /// Dropping the future before it completes drops the permit: the slot is freed at once
    /// and the call counts as [`Dropped`](Outcome::Dropped), with no latency.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tailguard::limit::AdaptiveLimiter;
    /// use tailguard::priority::Criticality;
    /// use tailguard::time::{ManualTimer, Timer};
    ///
    /// let timer = ManualTimer::new();
    /// let limiter = AdaptiveLimiter::builder().build()?;
    /// let reply = timer.block_on(limiter.call_with(timer.clone(), Criticality::Critical, || async {
    ///     timer.sleep(Duration::from_millis(5)).await;
    ///     Ok::<_, String>("pong")
    /// }));
    /// assert_eq!(reply, Ok("pong"));
    /// assert_eq!(limiter.metrics().samples, 1);
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    pub async fn call_with<T, F, Fut, R, E>(
        &self,
        timer: T,
        class: Criticality,
        operation: F,
    ) -> Result<R, CallError<E>>
    where
        T: Timer,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<R, E>>,
    {
        let classify = |result: &Result<R, E>| match result {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Ignored,
        };
        self.call_classified_with(timer, class, classify, operation)
            .await
    }

    /// Like [`call_with`](Self::call_with), with `classify` saying what the result means for
    /// load: a timeout or a 503 from further down is [`Dropped`](Outcome::Dropped).
    ///
    /// ```
    /// use tailguard::limit::{AdaptiveLimiter, Outcome};
    /// use tailguard::priority::Criticality;
    /// use tailguard::time::ManualTimer;
    ///
    /// let timer = ManualTimer::new();
    /// let limiter = AdaptiveLimiter::builder().build()?;
    /// let classify = |r: &Result<(), u16>| match r {
    ///     Ok(()) => Outcome::Success,
    ///     Err(503) => Outcome::Dropped,
    ///     Err(_) => Outcome::Ignored,
    /// };
    /// let result = timer.block_on(limiter.call_classified_with(
    ///     timer.clone(),
    ///     Criticality::Default,
    ///     classify,
    ///     || async { Err(503) },
    /// ));
    /// assert!(result.is_err());
    /// assert_eq!(limiter.metrics().samples, 1);
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    pub async fn call_classified_with<T, C, F, Fut, R, E>(
        &self,
        timer: T,
        class: Criticality,
        classify: C,
        operation: F,
    ) -> Result<R, CallError<E>>
    where
        T: Timer,
        C: FnOnce(&Result<R, E>) -> Outcome,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<R, E>>,
    {
        let permit = self
            .try_acquire_class_at(class, timer.now())
            .map_err(CallError::Rejected)?;
        let result = operation().await;
        permit.record_at(classify(&result), timer.now());
        result.map_err(CallError::Inner)
    }
}
