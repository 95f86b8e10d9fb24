//! Retry what is transient, without turning an outage into a retry storm.
//!
//! A [`Retry`] policy says how many attempts a call may make, how long it may take in all, which
//! errors are worth another try, how long to wait in between (a [`Backoff`](crate::backoff)), and
//! which [`RetryBudget`] its retries draw from. Run an operation under it with
//! [`Retry::run`], [`Retry::run_numbered`], or the [`Retryable`] extension (these borrow the
//! policy; [`Retry::run_owned`] makes a future that owns a clone of it, to spawn as a task):
//!
//! ```
//! use std::io;
//! use std::time::Duration;
//! use tailguard::backoff::Backoff;
//! use tailguard::retry::{Decision, Retry, Retryable};
//! use tailguard::time::ManualTimer;
//!
//! # let timer = ManualTimer::new();
//! # let start = std::cell::Cell::new(0);
//! # let fetch = || async { start.set(start.get() + 1);
//! #     if start.get() < 3 { Err(io::Error::from(io::ErrorKind::ConnectionRefused)) } else { Ok("body") } };
//! let policy = Retry::with_timer(timer.clone()) // `Retry::builder()` on the default timer
//!     .max_attempts(5)
//!     .max_elapsed(Duration::from_secs(10))
//!     .attempt_timeout(Duration::from_secs(2))
//!     .backoff(Backoff::exponential(Duration::from_millis(100)).max_delay(Duration::from_secs(2)).build()?)
//!     .classify(|e: &io::Error| match e.kind() {
//!         io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset => Decision::Retry,
//!         _ => Decision::Stop,
//!     })
//!     .build()?;
//!
//! let body = timer.block_on((|| fetch()).retry(&policy));
//! assert_eq!(body.unwrap(), "body");
//! # Ok::<(), tailguard::ConfigError>(())
//! ```
//!
//! When the policy gives up, the caller gets a [`RetryError`]: the reason ([`GaveUp`]), the last
//! attempt's error (recoverable with [`into_inner`](RetryError::into_inner)), the number of
//! attempts and the time taken.
//!
//! # The deadline
//!
//! [`max_elapsed`](RetryBuilder::max_elapsed) bounds the whole call, attempts and sleeps alike:
//! the loop never sleeps past it, never starts an attempt after it, and cuts an attempt still
//! running when it falls. A per-attempt [`attempt_timeout`](RetryBuilder::attempt_timeout) is
//! capped by what is left of it. A timed-out attempt is an [`AttemptError::TimedOut`]; whether to
//! retry it is [`on_timeout`](RetryBuilder::on_timeout)'s decision, as the classifier only sees
//! the operation's own errors.
//!
//! # The budget
//!
//! Retries help when a fault is rare and brief, and hurt when it is broad: if every layer of a
//! five-deep call chain makes three attempts, a dead backend receives 3⁵ = 243 calls per user
//! request. A [`RetryBudget`] shared by a client's calls caps retries at a fraction of the calls
//! (plus a small floor), so a healthy dependency sees all the retries it needs and a failing one
//! only a few percent of extra load. `tailguard-demo herd` shows both.
//!
//! # Zero cost on the happy path
//!
//! A call whose first attempt succeeds allocates nothing and creates no sleep. The clock is read
//! only where a decision needs it: when an attempt has to wait (to know when the call started,
//! and to set its time limit if it has one), at each failure under `max_elapsed` or a budget,
//! before a non-zero delay, once per call to deposit into a budget, and to give up after the call
//! started (for [`RetryError::elapsed`]). Failures retried with zero delay, without a deadline or
//! a budget, read no clock and create no sleep.
//!
//! # Sans-IO
//!
//! The decisions live in [`RetryState`], a state machine that takes the time as an argument and
//! does no I/O. [`Retry::run`] drives it with a [`Timer`](crate::time::Timer); a synchronous loop,
//! a simulation or the Python binding can drive it with their own clock.

mod budget;
mod error;
mod policy;
mod run;
mod state;

pub(crate) use self::budget::Grant;
pub use self::budget::{RetryBudget, RetryBudgetBuilder};
pub use self::error::{AttemptError, GaveUp, RetryError};
pub use self::policy::{
    Classify, Decision, OnRetry, Retry, RetryAll, RetryBuilder, RetryConfig, RetryEvent,
};
pub use self::run::{RetryFuture, Retryable};
pub use self::state::{Next, RetryState};

#[cfg(test)]
mod tests;
