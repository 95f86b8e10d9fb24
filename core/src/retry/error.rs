//! What a retry loop returns when it gives up.

use std::error::Error;
use std::fmt;
use std::time::Duration;

use crate::timeout::Elapsed;

/// Why a retry loop stopped retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GaveUp {
    /// Every attempt allowed by `max_attempts` (or by the backoff's `max_retries`) failed.
    Exhausted,
    /// The next attempt could not start before the deadline (`max_elapsed`), or the deadline cut
    /// an attempt short.
    DeadlineExceeded,
    /// The shared [`RetryBudget`](super::RetryBudget) refused the retry: retries across the
    /// callers sharing it already reached their allowed fraction of calls.
    BudgetExhausted,
    /// The classifier said the error is not worth retrying.
    NotRetryable,
}

impl GaveUp {
    /// What to change if this was not the outcome you wanted.
    pub fn advice(self) -> &'static str {
        match self {
            GaveUp::Exhausted => {
                "if the fault is transient and the dependency can take it, raise `max_attempts` \
                 (or the backoff's `max_retries`)"
            }
            GaveUp::DeadlineExceeded => {
                "raise `max_elapsed`, shorten the backoff delays or the `attempt_timeout`, or \
                 accept that the call cannot finish in time"
            }
            GaveUp::BudgetExhausted => {
                "the dependency is failing for many callers at once; retrying harder would \
                 multiply the outage, so look at the dependency before raising the budget's ratio"
            }
            GaveUp::NotRetryable => {
                "the classifier marked this error permanent; change the classifier if it is \
                 in fact transient"
            }
        }
    }
}

impl fmt::Display for GaveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GaveUp::Exhausted => "every allowed attempt failed",
            GaveUp::DeadlineExceeded => "the deadline would pass before another attempt",
            GaveUp::BudgetExhausted => "the retry budget is spent",
            GaveUp::NotRetryable => "the error is not retryable",
        })
    }
}

/// How one attempt failed: its own error, or the per-attempt time limit.
///
/// The classifier only sees [`Failed`](AttemptError::Failed) errors; what to do after a
/// [`TimedOut`](AttemptError::TimedOut) attempt is set with
/// [`RetryBuilder::on_timeout`](super::RetryBuilder::on_timeout) (retry, by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptError<E> {
    /// The attempt ran out of time: its `attempt_timeout`, or what was left of `max_elapsed`.
    TimedOut(Elapsed),
    /// The attempt returned this error.
    Failed(E),
}

impl<E> AttemptError<E> {
    /// The attempt's own error, if it did not time out.
    pub fn into_inner(self) -> Option<E> {
        match self {
            AttemptError::Failed(error) => Some(error),
            AttemptError::TimedOut(_) => None,
        }
    }

    /// The attempt's own error, by reference.
    pub fn inner(&self) -> Option<&E> {
        match self {
            AttemptError::Failed(error) => Some(error),
            AttemptError::TimedOut(_) => None,
        }
    }

    /// Whether the attempt timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, AttemptError::TimedOut(_))
    }
}

impl<E: fmt::Display> fmt::Display for AttemptError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttemptError::TimedOut(_) => f.write_str("the attempt timed out"),
            AttemptError::Failed(error) => error.fmt(f),
        }
    }
}

impl<E: Error + 'static> Error for AttemptError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            AttemptError::TimedOut(elapsed) => Some(elapsed),
            AttemptError::Failed(error) => Some(error),
        }
    }
}

/// A retry loop gave up: why, the last attempt's error, how many attempts, how long.
///
/// ```
/// use std::time::Duration;
/// use tailguard::backoff::Backoff;
/// use tailguard::retry::{GaveUp, Retry};
/// use tailguard::time::ManualTimer;
///
/// let timer = ManualTimer::new();
/// let policy = Retry::with_timer(timer.clone())
///     .max_attempts(3)
///     .backoff(Backoff::constant(Duration::from_millis(10)).build()?)
///     .build()?;
/// let err = timer
///     .block_on(policy.run(|| async { Err::<(), _>("connection refused") }))
///     .unwrap_err();
/// assert_eq!(err.reason(), GaveUp::Exhausted);
/// assert_eq!(err.attempts(), 3);
/// assert!(err.to_string().starts_with("gave up after 3 attempts"));
/// assert_eq!(err.into_inner(), Some("connection refused"));
/// # Ok::<(), tailguard::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryError<E> {
    reason: GaveUp,
    last_error: AttemptError<E>,
    attempts: u32,
    elapsed: Duration,
}

impl<E> RetryError<E> {
    /// Assembles an error; used by the retry loop and by code driving a
    /// [`RetryState`](super::RetryState) by hand.
    pub fn new(
        reason: GaveUp,
        last_error: AttemptError<E>,
        attempts: u32,
        elapsed: Duration,
    ) -> Self {
        RetryError {
            reason,
            last_error,
            attempts,
            elapsed,
        }
    }

    /// Why the loop stopped.
    pub fn reason(&self) -> GaveUp {
        self.reason
    }

    /// How many attempts were made.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Time from the start of the first attempt to giving up, on the policy's timer. The clock is
    /// first read when an attempt has to wait or a decision needs the time, so attempts that
    /// failed at once and were retried with zero delay, without a deadline or a budget, count as
    /// no time.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// The last attempt's failure.
    pub fn last_error(&self) -> &AttemptError<E> {
        &self.last_error
    }

    /// The last attempt's failure, by value.
    pub fn into_last_error(self) -> AttemptError<E> {
        self.last_error
    }

    /// The last attempt's own error, or `None` if it timed out.
    pub fn into_inner(self) -> Option<E> {
        self.last_error.into_inner()
    }
}

impl<E: fmt::Display> fmt::Display for RetryError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = if self.attempts == 1 { "" } else { "s" };
        write!(
            f,
            "gave up after {} attempt{plural} in {:?}: {}; last error: {}. To change this: {}",
            self.attempts,
            self.elapsed,
            self.reason,
            self.last_error,
            self.reason.advice()
        )
    }
}

impl<E: Error + 'static> Error for RetryError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match &self.last_error {
            AttemptError::TimedOut(elapsed) => Some(elapsed),
            AttemptError::Failed(error) => Some(error),
        }
    }
}
