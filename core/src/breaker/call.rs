//! Wrapping a call: acquire, run, classify, record.

use std::fmt;
use std::future::Future;

use super::ticket::{Outcome, Rejected};
use super::CircuitBreaker;
use crate::time::Timer;

/// Why a call through the breaker did not return `Ok`.
///
/// ```
/// use tailguard::breaker::{CallError, CircuitBreaker};
/// use tailguard::time::ManualTimer;
///
/// let breaker = CircuitBreaker::builder().build_with(ManualTimer::new())?;
/// breaker.force_open();
/// let result = futures::executor::block_on(breaker.call(|| async { Ok::<_, std::io::Error>(1) }));
/// match result {
///     Err(CallError::Rejected(rejected)) => assert_eq!(rejected.retry_after(), None),
///     other => panic!("expected a rejection, got {other:?}"),
/// }
/// # Ok::<(), tailguard::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError<E> {
    /// The breaker refused the call; the operation never ran.
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

    /// The rejection, if the breaker refused the call.
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

impl<T: Timer> CircuitBreaker<T> {
    /// Runs `operation` if the breaker admits it, counting `Err` as a failure.
    ///
    /// Dropping the returned future before it completes drops the permit: the call counts as
    /// neither success nor failure, and a half-open probe slot is freed at once.
    ///
    /// ```
    /// use tailguard::breaker::CircuitBreaker;
    /// use tailguard::time::ManualTimer;
    ///
    /// let breaker = CircuitBreaker::builder().build_with(ManualTimer::new())?;
    /// let reply = futures::executor::block_on(breaker.call(|| async { Ok::<_, String>("pong") }));
    /// assert_eq!(reply, Ok("pong"));
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    pub async fn call<F, Fut, R, E>(&self, operation: F) -> Result<R, CallError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<R, E>>,
    {
        self.call_classified(
            |result: &Result<R, E>| match result {
                Ok(_) => Outcome::Success,
                Err(_) => Outcome::Failure,
            },
            operation,
        )
        .await
    }

    /// Like [`call`](Self::call), but the future owns a clone of this handle instead of
    /// borrowing it, so it can be spawned as a task of its own.
    ///
    /// On tokio:
    ///
    /// ```
    /// use tailguard::breaker::CircuitBreaker;
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let breaker = CircuitBreaker::builder().build()?;
    /// let task = tokio::spawn(breaker.call_owned(|| async { Ok::<_, std::io::Error>("pong") }));
    /// assert_eq!(task.await.unwrap().unwrap(), "pong");
    /// assert_eq!(breaker.metrics().calls, 1);
    /// # Ok::<(), tailguard::ConfigError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// And on smol:
    ///
    /// ```
    /// use tailguard::breaker::CircuitBreaker;
    ///
    /// let breaker = CircuitBreaker::builder().build()?;
    /// let task = smol::spawn(breaker.call_owned(|| async { Ok::<_, std::io::Error>("pong") }));
    /// assert_eq!(smol::block_on(task).unwrap(), "pong");
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    pub fn call_owned<F, Fut, R, E>(
        &self,
        operation: F,
    ) -> impl Future<Output = Result<R, CallError<E>>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<R, E>>,
    {
        let breaker = self.clone();
        async move { breaker.call(operation).await }
    }

    /// Runs `operation` if the breaker admits it, and lets `classify` say what its result means
    /// for the dependency's health: an error that is the caller's fault can be
    /// [`Ignored`](Outcome::Ignored), a successful response that signals overload can count as
    /// a [`Failure`](Outcome::Failure). The result itself is returned unchanged.
    ///
    /// ```
    /// use tailguard::breaker::{CallError, CircuitBreaker, Outcome};
    /// use tailguard::time::ManualTimer;
    ///
    /// #[derive(Debug, PartialEq)]
    /// enum ApiError { BadRequest, Unavailable }
    ///
    /// let breaker = CircuitBreaker::builder().build_with(ManualTimer::new())?;
    /// let classify = |result: &Result<u32, ApiError>| match result {
    ///     Ok(_) => Outcome::Success,
    ///     Err(ApiError::BadRequest) => Outcome::Ignored, // our fault, not theirs
    ///     Err(ApiError::Unavailable) => Outcome::Failure,
    /// };
    /// let result = futures::executor::block_on(
    ///     breaker.call_classified(classify, || async { Err(ApiError::BadRequest) }),
    /// );
    /// assert_eq!(result, Err(CallError::Inner(ApiError::BadRequest)));
    /// assert_eq!(breaker.metrics().calls, 0);
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    pub async fn call_classified<C, F, Fut, R, E>(
        &self,
        classify: C,
        operation: F,
    ) -> Result<R, CallError<E>>
    where
        C: FnOnce(&Result<R, E>) -> Outcome,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<R, E>>,
    {
        let permit = self.try_acquire().map_err(CallError::Rejected)?;
        let result = operation().await;
        permit.record(classify(&result));
        result.map_err(CallError::Inner)
    }
}
