//! [`PipelineError`]: which layer ended the call, and why.

use std::fmt;
use std::time::Duration;

use super::limiter::LimiterRejected;
use crate::breaker::Rejected;

/// Why a call through a [`Pipeline`](super::Pipeline) did not succeed: one variant per layer
/// that can end a call.
///
/// `attempts` counts the operations started (retries and hedges included); `last` is the error
/// of the last attempt that failed, if one did (a timed-out attempt has none).
///
/// The rejections ([`DeadlinePassed`](Self::DeadlinePassed),
/// [`DeadlineTooShort`](Self::DeadlineTooShort), [`BudgetEmpty`](Self::BudgetEmpty),
/// [`BreakerOpen`](Self::BreakerOpen), [`LimiterFull`](Self::LimiterFull)) are decisions not to
/// start work; they never count as failures in a breaker's window nor as calls in a budget
/// ([`is_rejection`](Self::is_rejection)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PipelineError<E> {
    /// The deadline had already passed when the call was made: nothing was tried.
    DeadlinePassed,
    /// The call's deadline fell while it was working (an attempt running, or waiting for a
    /// limiter slot); the work in flight was cancelled.
    DeadlineReached {
        /// Operations started.
        attempts: u32,
        /// The last failed attempt's error, if any.
        last: Option<E>,
    },
    /// A retry was due, but the time left before the deadline (after the backoff sleep) was
    /// shorter than an attempt is predicted to take: it was not started, nor the sleep taken.
    DeadlineTooShort {
        /// What would have been left when the retry started (zero if the sleep ends past the
        /// deadline).
        remaining: Duration,
        /// The predicted attempt latency it was compared with.
        predicted: Duration,
        /// Operations started.
        attempts: u32,
        /// The last failed attempt's error, if any.
        last: Option<E>,
    },
    /// A retry was due, but the retry budget refused it.
    BudgetEmpty {
        /// Operations started.
        attempts: u32,
        /// The last failed attempt's error, if any.
        last: Option<E>,
    },
    /// The circuit breaker refused the call (or its retry), with its retry-after hint.
    BreakerOpen {
        /// The breaker's answer: its state and when to try again.
        rejected: Rejected,
        /// Operations started.
        attempts: u32,
        /// The last failed attempt's error, if any.
        last: Option<E>,
    },
    /// The limiter had no slot for the call (or its retry).
    LimiterFull {
        /// The limiter's answer.
        rejected: LimiterRejected,
        /// Operations started.
        attempts: u32,
        /// The last failed attempt's error, if any.
        last: Option<E>,
    },
    /// The last attempt failed and no retry follows: the error is not retryable, or the
    /// attempts are used up.
    GaveUp {
        /// Operations started.
        attempts: u32,
        /// The last attempt's error.
        error: E,
    },
    /// The last attempt ran out of its
    /// [`attempt_timeout`](super::PipelineBuilder::attempt_timeout) and no retry follows.
    AttemptTimedOut {
        /// Operations started.
        attempts: u32,
    },
}

impl<E> PipelineError<E> {
    /// Operations started before the call ended.
    pub fn attempts(&self) -> u32 {
        match self {
            PipelineError::DeadlinePassed => 0,
            PipelineError::DeadlineReached { attempts, .. }
            | PipelineError::DeadlineTooShort { attempts, .. }
            | PipelineError::BudgetEmpty { attempts, .. }
            | PipelineError::BreakerOpen { attempts, .. }
            | PipelineError::LimiterFull { attempts, .. }
            | PipelineError::GaveUp { attempts, .. }
            | PipelineError::AttemptTimedOut { attempts } => *attempts,
        }
    }

    /// The last failed attempt's error, if there is one.
    pub fn last_error(&self) -> Option<&E> {
        match self {
            PipelineError::GaveUp { error, .. } => Some(error),
            PipelineError::DeadlineReached { last, .. }
            | PipelineError::DeadlineTooShort { last, .. }
            | PipelineError::BudgetEmpty { last, .. }
            | PipelineError::BreakerOpen { last, .. }
            | PipelineError::LimiterFull { last, .. } => last.as_ref(),
            PipelineError::DeadlinePassed | PipelineError::AttemptTimedOut { .. } => None,
        }
    }

    /// The last failed attempt's error, by value.
    pub fn into_inner(self) -> Option<E> {
        match self {
            PipelineError::GaveUp { error, .. } => Some(error),
            PipelineError::DeadlineReached { last, .. }
            | PipelineError::DeadlineTooShort { last, .. }
            | PipelineError::BudgetEmpty { last, .. }
            | PipelineError::BreakerOpen { last, .. }
            | PipelineError::LimiterFull { last, .. } => last,
            PipelineError::DeadlinePassed | PipelineError::AttemptTimedOut { .. } => None,
        }
    }

    /// Whether the call ended on a decision not to start work (a deadline already passed or too
    /// short, an empty budget, an open breaker, a full limiter), rather than on a failure.
    pub fn is_rejection(&self) -> bool {
        matches!(
            self,
            PipelineError::DeadlinePassed
                | PipelineError::DeadlineTooShort { .. }
                | PipelineError::BudgetEmpty { .. }
                | PipelineError::BreakerOpen { .. }
                | PipelineError::LimiterFull { .. }
        )
    }

    /// Whether the call ended because of its deadline (passed, reached, or too short).
    pub fn is_deadline(&self) -> bool {
        matches!(
            self,
            PipelineError::DeadlinePassed
                | PipelineError::DeadlineReached { .. }
                | PipelineError::DeadlineTooShort { .. }
        )
    }
}

impl<E: fmt::Display> fmt::Display for PipelineError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PipelineError::DeadlinePassed => {
                f.write_str("the deadline had passed before the call started")
            }
            PipelineError::DeadlineReached { attempts, .. } => {
                write!(f, "deadline reached after {attempts} attempt(s)")
            }
            PipelineError::DeadlineTooShort {
                remaining,
                predicted,
                attempts,
                ..
            } => write!(
                f,
                "retry not started after {attempts} attempt(s): {remaining:?} would be left \
                 before the deadline, an attempt is predicted to take {predicted:?}"
            ),
            PipelineError::BudgetEmpty { attempts, .. } => {
                write!(f, "retry budget empty after {attempts} attempt(s)")
            }
            PipelineError::BreakerOpen { rejected, .. } => rejected.fmt(f),
            PipelineError::LimiterFull { rejected, .. } => rejected.fmt(f),
            PipelineError::GaveUp { attempts, error } => {
                write!(f, "gave up after {attempts} attempt(s): {error}")
            }
            PipelineError::AttemptTimedOut { attempts } => {
                write!(f, "attempt {attempts} timed out")
            }
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for PipelineError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PipelineError::BreakerOpen { rejected, .. } => Some(rejected),
            PipelineError::LimiterFull { rejected, .. } => Some(rejected),
            other => other
                .last_error()
                .map(|e| e as &(dyn std::error::Error + 'static)),
        }
    }
}
