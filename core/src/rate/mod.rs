//! At most N calls per period: the rate limiter, shared or per key.
//!
//! A [`RateLimiter`] is a token bucket kept by the generic cell rate algorithm (GCRA): one
//! number, the time the next call is due, moved forward by one interval per admitted call with a
//! compare-and-swap. It limits how often calls *start*; to limit how many run at once, use a
//! [`Bulkhead`](crate::bulkhead::Bulkhead).
//!
//! * **Smooth** (`burst(1)`, the default): calls are spaced evenly, one per
//!   [`interval`](RateLimiter::interval).
//! * **Bursty** (`burst(n)`): after a quiet spell up to `n` calls may go at once; the average
//!   stays at the rate.
//!
//! A call either takes a token now ([`try_acquire`](RateLimiter::try_acquire), or the sans-IO
//! [`try_acquire_at`](RateLimiter::try_acquire_at)) or waits for one
//! ([`acquire_until`](RateLimiter::acquire_until) bounded by the call's deadline,
//! [`until_ready`](RateLimiter::until_ready) unbounded). A wait whose token would only come after
//! the deadline is refused at once, not slept through. Waiting reserves nothing, so dropping a
//! waiting future gives nothing back because it holds nothing. A refusal says when the next
//! token comes ([`Rejected::retry_after`]), ready for a `Retry-After` header.
//!
//! A [`KeyedRateLimiter`] keeps one bucket per key (per client, per host) in bounded memory:
//! idle keys are forgotten exactly when forgetting them changes nothing, and a maximum key
//! count is enforced (see its "Memory" section for the policy).
//!
//! ```
//! use std::time::Duration;
//! use tailguard::rate::RateLimiter;
//! use tailguard::time::{ManualTimer, Timer};
//!
//! let timer = ManualTimer::new();
//! let limiter = RateLimiter::builder()
//!     .rate(100, Duration::from_secs(1))
//!     .burst(5)
//!     .build_with(timer.clone())?;
//!
//! let start = timer.now();
//! let admitted = (0..20).filter(|_| limiter.try_acquire_at(start).is_ok()).count();
//! assert_eq!(admitted, 5); // the burst
//!
//! // 50 ms later, five more intervals of 10 ms have passed.
//! let later = start + Duration::from_millis(50);
//! assert_eq!(limiter.available_at(later), 5);
//!
//! // A caller with 5 ms left is refused at once: the next token is 10 ms away.
//! timer.advance(Duration::from_millis(50));
//! timer.block_on(async {
//!     for _ in 0..5 {
//!         limiter.try_acquire().unwrap();
//!     }
//!     let deadline = timer.now() + Duration::from_millis(5);
//!     assert!(limiter.acquire_until(deadline).await.is_err());
//! });
//! # Ok::<(), tailguard::ConfigError>(())
//! ```
//!
//! ## Speed
//!
//! The shared limiter takes a token with one atomic load and one compare-and-swap: no lock, no
//! allocation. [`try_acquire`](RateLimiter::try_acquire) reads the timer's clock once; the
//! `_at` form takes the time from the caller. The keyed limiter hashes the key, takes one
//! shard's lock and looks the key up; only a key it has not seen (or has forgotten) is cloned in.

mod config;
mod gcra;
mod handle;
mod keyed;
mod rejected;
mod share;
#[cfg(test)]
mod tests;
mod wait;

pub use self::config::RateLimiterBuilder;
pub use self::handle::{Permit, RateLimiter};
pub use self::keyed::KeyedRateLimiter;
pub use self::rejected::{Reason, Rejected};
pub use self::wait::{Acquire, AcquireKey};
