//! The shared handle: one bucket on a timer's clock.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

#[cfg(any(feature = "async-io", feature = "futures-timer"))]
use super::config::RateLimiterBuilder;
use super::gcra::{Gcra, Params};
use super::rejected::Rejected;
use super::wait::Acquire;
use crate::metrics::{self, Counter, PolicyName};
#[cfg(any(feature = "async-io", feature = "futures-timer"))]
use crate::time::DefaultTimer;
use crate::time::Timer;

/// Proof that a token was taken. There is nothing to give back: a token is spent when taken,
/// whatever the call then does (a rate limits how often calls start, not how many run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Permit;

/// Nanoseconds from `origin` to `now`: 0 before it; saturating 584 years after it (a limiter
/// that old refuses everything, safely). In `u64` arithmetic, not through `u128`.
#[inline(always)]
pub(super) fn nanos_since(origin: Instant, now: Instant) -> u64 {
    let elapsed = now.saturating_duration_since(origin);
    elapsed
        .as_secs()
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(elapsed.subsec_nanos()))
}

#[derive(Debug)]
pub(super) struct Shared {
    pub(super) gcra: Gcra,
    pub(super) params: Params,
    pub(super) origin: Instant,
    /// `tailguard_rate_rejections_total`.
    pub(super) rejections: Counter,
    /// Refusals since built, whatever the metrics feature: read by
    /// [`RateLimiter::refusals`] (counted on the refusal path only).
    pub(super) refused: AtomicU64,
}

/// A rate limiter: a token bucket kept by the generic cell rate algorithm, lock-free (one
/// compare-and-swap per call). A cheap-to-clone, `Send + Sync` handle; clones share the bucket.
///
/// ```
/// use std::time::Duration;
/// use tailguard::rate::RateLimiter;
/// use tailguard::time::{ManualTimer, Timer};
///
/// let timer = ManualTimer::new();
/// let limiter = RateLimiter::builder()
///     .rate(10, Duration::from_secs(1))
///     .burst(2)
///     .build_with(timer.clone())?;
///
/// assert!(limiter.try_acquire().is_ok());
/// assert!(limiter.try_acquire().is_ok()); // the burst
/// assert!(limiter.try_acquire().is_err());
///
/// // Waiting: the third call goes 100 ms later, when the next token comes.
/// let start = timer.now();
/// timer.block_on(limiter.until_ready()).unwrap();
/// assert_eq!(timer.now() - start, Duration::from_millis(100));
/// # Ok::<(), tailguard::ConfigError>(())
/// ```
#[cfg(any(feature = "async-io", feature = "futures-timer"))]
pub struct RateLimiter<T: Timer = DefaultTimer> {
    pub(super) shared: Arc<Shared>,
    timer: T,
}

/// A rate limiter: a token bucket kept by the generic cell rate algorithm, lock-free.
#[cfg(not(any(feature = "async-io", feature = "futures-timer")))]
pub struct RateLimiter<T: Timer> {
    pub(super) shared: Arc<Shared>,
    timer: T,
}

#[cfg(any(feature = "async-io", feature = "futures-timer"))]
impl RateLimiter<DefaultTimer> {
    /// A builder; same as [`RateLimiterBuilder::new`].
    pub fn builder() -> RateLimiterBuilder {
        RateLimiterBuilder::new()
    }
}

impl<T: Timer> RateLimiter<T> {
    pub(super) fn new(params: Params, name: &PolicyName, timer: T) -> Self {
        RateLimiter {
            shared: Arc::new(Shared {
                gcra: Gcra::new(),
                params,
                origin: timer.now(),
                rejections: Counter::new(metrics::RATE_REJECTIONS, name),
                refused: AtomicU64::new(0),
            }),
            timer,
        }
    }

    #[inline(always)]
    pub(super) fn since_origin(&self, now: Instant) -> u64 {
        nanos_since(self.shared.origin, now)
    }

    /// Takes a token at `now` if there is one (sans-IO: no clock read). Lock-free, no
    /// allocation. Pass non-decreasing instants; an instant before the limiter was built counts
    /// as the moment it was built.
    #[inline]
    pub fn try_acquire_at(&self, now: Instant) -> Result<Permit, Rejected> {
        self.take_at(now).inspect_err(|_| self.count_rejection())
    }

    /// A token at `now` or the refusal, not counted (a waiting caller's attempts).
    #[inline]
    pub(super) fn take_at(&self, now: Instant) -> Result<Permit, Rejected> {
        let t = self.since_origin(now);
        self.shared.gcra.try_acquire(&self.shared.params, 1, t)?;
        Ok(Permit)
    }

    /// Counts one refusal in `tailguard_rate_rejections_total`.
    #[inline]
    pub(super) fn count_rejection(&self) {
        self.shared.rejections.increment();
        self.shared.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// [`try_acquire_at`](Self::try_acquire_at) the timer's now.
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit, Rejected> {
        self.try_acquire_at(self.timer.now())
    }

    /// Takes `n` tokens at once at `now` (a weighted call), or none.
    /// [`Reason::TooMany`](super::Reason::TooMany) if `n` is more than the burst.
    pub fn try_acquire_n_at(&self, n: u32, now: Instant) -> Result<Permit, Rejected> {
        let t = self.since_origin(now);
        self.shared
            .gcra
            .try_acquire(&self.shared.params, n, t)
            .inspect_err(|_| self.count_rejection())?;
        Ok(Permit)
    }

    /// Waits for a token, as long as it takes. Cancel-safe: it holds nothing while waiting.
    pub fn until_ready(&self) -> Acquire<'_, T> {
        Acquire::new(self, None)
    }

    /// Waits for a token until `deadline` at the latest; if the next token would come after
    /// it, refuses at once ([`Reason::Deadline`](super::Reason::Deadline)) rather than sleeping
    /// in vain. Cancel-safe: it holds nothing while waiting.
    pub fn acquire_until(&self, deadline: Instant) -> Acquire<'_, T> {
        Acquire::new(self, Some(deadline))
    }

    /// Whole tokens in the bucket at `now`.
    pub fn available_at(&self, now: Instant) -> u32 {
        self.shared
            .gcra
            .available(&self.shared.params, self.since_origin(now))
    }

    /// Tokens the bucket holds when full.
    pub fn burst(&self) -> u32 {
        self.shared.params.burst
    }

    /// The time between two tokens.
    pub fn interval(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.shared.params.interval)
    }

    /// The timer this limiter reads.
    pub fn timer(&self) -> &T {
        &self.timer
    }
}

impl<T: Timer> Clone for RateLimiter<T> {
    fn clone(&self) -> Self {
        RateLimiter {
            shared: Arc::clone(&self.shared),
            timer: self.timer.clone(),
        }
    }
}

impl<T: Timer> fmt::Debug for RateLimiter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("interval", &self.interval())
            .field("burst", &self.burst())
            .finish_non_exhaustive()
    }
}
