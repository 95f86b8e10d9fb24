//! [tower] `Layer`s and `Service`s for [tailguard]'s policies: [`timeout`], [`retry`] (with a
//! budget), [`breaker`] (a circuit breaker whose `poll_ready` tells the truth), [`hedge`], the
//! limiters ([`limit`]: readiness holds a slot) and a whole [`pipeline`].
//!
//! Each adapter is a thin shell around the core's state machine, so a service stacked with
//! these layers decides exactly as `tailguard` does elsewhere (and as the Python binding does),
//! and pays what the core pays: no allocation and no clock read on a call that succeeds at once.
//! The crate brings no runtime: `tower-service` and `tower-layer` are traits, and time comes
//! from a tailguard [`Timer`](tailguard::time::Timer) (the default `HeapTimer`, or any other,
//! such as [`ManualTimer`](tailguard::time::ManualTimer) in tests). The same stack runs under
//! smol, tokio or any other executor.
//!
//! | module | layer | service | its own errors |
//! |---|---|---|---|
//! | [`timeout`] | [`TimeoutLayer`] | [`Timeout`] | [`Elapsed`](tailguard::timeout::Elapsed) |
//! | [`retry`] | [`RetryLayer`] | [`Retry`] | an attempt's [`Elapsed`](tailguard::timeout::Elapsed) |
//! | [`breaker`] | [`CircuitBreakerLayer`] | [`CircuitBreaker`] | [`Rejected`](tailguard::breaker::Rejected) |
//! | [`hedge`] | [`HedgeLayer`] | [`Hedge`] | none (the last attempt's error) |
//! | [`limit`] | [`BulkheadLayer`], [`RateLimitLayer`], [`AdaptiveLimitLayer`], [`ThrottleLayer`] | [`limit::Bulkhead`], [`limit::RateLimit`], [`limit::AdaptiveLimit`], [`limit::Throttle`] | each limiter's `Rejected` |
//! | [`pipeline`] | [`PipelineLayer`] | [`Pipeline`] | [`PipelineError`](tailguard::pipeline::PipelineError) of the inner error |
//!
//! Errors follow tower's convention: a service that adds errors of its own returns a
//! [`BoxError`], from which they are recovered with `downcast_ref`; the inner service's error
//! only needs `Into<BoxError>`. Clones of a service share its policy's state (the breaker, the
//! budgets, the hedge statistics and latency window), as clones of the core's policies do.
//!
//! ```
//! use std::time::Duration;
//! use tailguard::breaker::CircuitBreaker;
//! use tailguard::retry::Retry;
//! use tailguard_tower::{BoxError, CircuitBreakerLayer, RetryLayer, TimeoutLayer};
//! use tower_layer::Layer;
//! use tower_service::Service;
//!
//! # fn main() -> Result<(), BoxError> {
//! // A backend that fails its first call.
//! let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
//! let backend = tower::service_fn(move |name: &'static str| {
//!     let n = calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
//!     async move {
//!         if n == 0 { Err::<String, BoxError>("flaky".into()) } else { Ok(format!("hello, {name}")) }
//!     }
//! });
//!
//! let retry = Retry::builder().max_attempts(3).build()?;
//! let breaker = CircuitBreaker::builder().build()?;
//! let layers = (
//!     RetryLayer::new(retry),
//!     CircuitBreakerLayer::new(breaker),
//!     TimeoutLayer::new(Duration::from_secs(1)),
//! );
//! let mut service = layers.layer(backend);
//!
//! let answer = smol::block_on(async {
//!     std::future::poll_fn(|cx| service.poll_ready(cx)).await?;
//!     service.call("world").await
//! })?;
//! assert_eq!(answer, "hello, world");
//! # Ok(())
//! # }
//! ```
//!
//! [tower]: https://docs.rs/tower
//! [tailguard]: tailguard

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod breaker;
pub mod hedge;
pub mod limit;
pub mod pipeline;
pub mod retry;
pub mod timeout;

pub use breaker::{CircuitBreaker, CircuitBreakerLayer};
pub use hedge::{Hedge, HedgeLayer};
pub use limit::{AdaptiveLimitLayer, BulkheadLayer, RateLimitLayer, ThrottleLayer};
pub use pipeline::{Pipeline, PipelineLayer};
pub use retry::{Retry, RetryLayer};
pub use timeout::{Timeout, TimeoutLayer};

/// The error type of the services that add errors of their own, as in tower.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// `now + duration`, saturating far in the future instead of overflowing (as the core does).
pub(crate) fn deadline_after(
    now: std::time::Instant,
    duration: std::time::Duration,
) -> std::time::Instant {
    const FAR_FUTURE: std::time::Duration = std::time::Duration::from_secs(86_400 * 365 * 30);
    now.checked_add(duration)
        .or_else(|| now.checked_add(FAR_FUTURE))
        .unwrap_or(now)
}
