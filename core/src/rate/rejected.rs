//! Why a rate limiter refused a call.

use std::fmt;
use std::time::Duration;

/// Why a call was refused, from [`Rejected::reason`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// No token now; [`retry_after`](Rejected::retry_after) says when the next one comes.
    Empty,
    /// The next token comes after the caller's deadline, so the caller was not made to wait
    /// for it.
    Deadline,
    /// More tokens were asked at once than the burst can ever hold: never admitted.
    TooMany,
}

/// A call the rate limiter refused; a rejection, not a failure of the dependency.
///
/// ```
/// use std::time::Duration;
/// use tailguard::rate::{RateLimiter, Reason};
/// use tailguard::time::{ManualTimer, Timer};
///
/// let timer = ManualTimer::new();
/// let limiter = RateLimiter::builder().rate(10, Duration::from_secs(1)).build_with(timer.clone())?;
/// limiter.try_acquire().unwrap();
/// let refused = limiter.try_acquire().unwrap_err();
/// assert_eq!(refused.reason(), Reason::Empty);
/// assert_eq!(refused.retry_after(), Some(Duration::from_millis(100)));
/// assert_eq!(refused.to_string(), "rate limited: the next token comes in 100ms");
/// # Ok::<(), tailguard::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejected {
    pub(super) reason: Reason,
    /// Nanoseconds until the tokens asked for are there; `u64::MAX` for never.
    pub(super) wait_nanos: u64,
    pub(super) asked: u32,
    pub(super) burst: u32,
}

impl Rejected {
    pub(super) fn new(reason: Reason, wait_nanos: u64, asked: u32, burst: u32) -> Self {
        Rejected {
            reason,
            wait_nanos,
            asked,
            burst,
        }
    }

    /// Why the call was refused.
    pub fn reason(&self) -> Reason {
        self.reason
    }

    /// How long until the tokens asked for are there (assuming nobody else takes them), or
    /// `None` if they never can be ([`Reason::TooMany`]).
    pub fn retry_after(&self) -> Option<Duration> {
        (self.reason != Reason::TooMany).then(|| Duration::from_nanos(self.wait_nanos))
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let wait = Duration::from_nanos(self.wait_nanos);
        match self.reason {
            Reason::Empty => write!(f, "rate limited: the next token comes in {wait:?}"),
            Reason::Deadline => write!(
                f,
                "rate limited: the next token comes in {wait:?}, after the call's deadline"
            ),
            Reason::TooMany => write!(
                f,
                "rate limiter: {} tokens asked at once, more than its burst of {} can ever hold",
                self.asked, self.burst
            ),
        }
    }
}

impl std::error::Error for Rejected {}
