//! Limiters in front of a service: a [`Bulkhead`], a [`RateLimit`], an [`AdaptiveLimit`] and a
//! [`Throttle`], each with its layer.
//!
//! ## Readiness holds the slot
//!
//! As tower's own `ConcurrencyLimit` keeps an owned semaphore permit between `poll_ready` and
//! `call`, these services take their slot **in `poll_ready`** and keep it in the service until
//! `call` hands it to the response future:
//!
//! | service | `poll_ready` when there is no slot | the slot is given back |
//! |---|---|---|
//! | [`Bulkhead`] | waits in the bulkhead's queue (bounded by [`BulkheadLayer::max_wait`]); `Err` with a [`bulkhead::Rejected`](tailguard::bulkhead::Rejected) when there is no queue, the queue is full or the wait ends | when the response future finishes or is dropped |
//! | [`RateLimit`] | sleeps on the timer until the next token | never: a token is spent when taken |
//! | [`AdaptiveLimit`] | `Err` at once with a [`limit::Rejected`](tailguard::limit::Rejected) | when the response future finishes (a sample: latency and outcome) or is dropped (no sample) |
//! | [`Throttle`] | `Err` at once with a [`throttle::Rejected`](tailguard::throttle::Rejected) | when the response future finishes (an accept or a refusal counted) or is dropped (nothing counted) |
//!
//! A slot reserved by `poll_ready` and never used by a `call` is released when the service is
//! dropped (a rate limiter's token is lost, as with tower's `RateLimit`). A clone of a service
//! starts without a slot, and every clone shares the limiter's state. Calling `call` without a
//! successful `poll_ready` first breaks tower's contract, and panics, as tower's
//! `ConcurrencyLimit` does.
//!
//! An adaptive limiter and a throttle **shed rather than queue**: their point is to refuse at
//! once the work a saturated dependency cannot take, so a caller can answer `503` (with a
//! `Retry-After`) instead of piling up. tower asks a caller to drop a service whose `poll_ready`
//! failed; these services are handles, so that costs nothing, and a fresh clone asks again.
//!
//! What counts as a drop (load) for the adaptive limiter, or a refusal for the throttle, is
//! said by a [`Classify`]; by default ([`ErrorsDrop`]) an error is one and a response is not.
//!
//! ```
//! use tailguard::bulkhead::{Bulkhead, Rejected};
//! use tailguard::time::ManualTimer;
//! use tailguard_tower::limit::BulkheadLayer;
//! use tower::{Layer, Service, ServiceExt};
//!
//! let timer = ManualTimer::new();
//! let bulkhead = Bulkhead::builder().max_concurrent(1).build_with(timer.clone())?;
//! let echo = tower::service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n) });
//! let mut first = BulkheadLayer::new(bulkhead.clone()).layer(echo);
//! let mut second = first.clone();
//!
//! timer.block_on(async {
//!     first.ready().await.unwrap(); // holds the only slot until `call`
//!     let refused = second.ready().await.unwrap_err();
//!     assert!(refused.is::<Rejected>());
//!     assert_eq!(first.call(7).await.unwrap(), 7); // the slot came back
//!     assert_eq!(second.ready().await.unwrap().call(8).await.unwrap(), 8);
//! });
//! assert_eq!(bulkhead.metrics().in_flight, 0);
//! # Ok::<(), tailguard::ConfigError>(())
//! ```

mod adaptive;
mod bulkhead;
mod future;
mod rate;
mod throttle;

pub use self::adaptive::{AdaptiveLimit, AdaptiveLimitLayer, AdaptiveSlot};
pub use self::bulkhead::{Bulkhead, BulkheadLayer};
pub use self::future::{ResponseFuture, Settle};
pub use self::rate::{RateLimit, RateLimitLayer};
pub use self::throttle::{Throttle, ThrottleLayer, ThrottleSlot};

use tailguard::limit::Outcome;

/// Says what a call's result tells a limiter about load: [`Outcome::Success`] (a sample),
/// [`Outcome::Dropped`] (overload: a timeout, a `503`; the throttle counts it as a refusal) or
/// [`Outcome::Ignored`] (nothing: the caller's own bad request).
///
/// Implemented for every `Fn(Result<&Res, &E>) -> Outcome`:
///
/// ```
/// use tailguard::limit::Outcome;
/// use tailguard_tower::limit::Classify;
///
/// let status = |result: Result<&u16, &std::io::Error>| match result {
///     Ok(503) | Ok(429) | Err(_) => Outcome::Dropped,
///     Ok(code) if (400..500).contains(code) => Outcome::Ignored,
///     Ok(_) => Outcome::Success,
/// };
/// assert_eq!(status.classify(Ok(&503)), Outcome::Dropped);
/// assert_eq!(status.classify(Ok(&404)), Outcome::Ignored);
/// ```
pub trait Classify<Res, E> {
    /// What `result` says about load.
    fn classify(&self, result: Result<&Res, &E>) -> Outcome;
}

impl<F, Res, E> Classify<Res, E> for F
where
    F: Fn(Result<&Res, &E>) -> Outcome,
{
    #[inline]
    fn classify(&self, result: Result<&Res, &E>) -> Outcome {
        self(result)
    }
}

/// The default classifier: a response is a success, an error a drop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorsDrop;

impl<Res, E> Classify<Res, E> for ErrorsDrop {
    #[inline]
    fn classify(&self, result: Result<&Res, &E>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Dropped,
        }
    }
}

/// The panic of a `call` made without a successful `poll_ready`.
pub(crate) const NOT_READY: &str =
    "a limiter service was called without a slot: call poll_ready first";

#[cfg(test)]
mod tests;
