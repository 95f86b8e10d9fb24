//! # tailguard
//!
//! The code around every remote call, done right and runtime-agnostic: timeouts that bound every
//! wait, graceful shutdown that loses no accepted work, retry with backoff, jitter and budgets,
//! circuit breakers, and hedged requests and fan-out against tail latency.
//!
//! tailguard has no executor and no tokio. Everything is a plain [`Future`](std::future::Future)
//! or a sans-IO state machine, and time comes in through the [`time::Timer`] trait, so the same
//! code runs under smol, tokio, `futures::executor` or anything else, and runs in virtual time
//! ([`time::ManualTimer`]) in tests and simulations.
//!
//! | module | what it gives you |
//! |---|---|
//! | [`time`] | the [`Timer`](time::Timer) trait; real timers; a virtual clock |
//! | [`timeout`] | [`timeout`](timeout::timeout), [`Deadline`](timeout::Deadline), `fut.timeout(d)` |
//! | [`io`] | [`TimeoutIo`](io::TimeoutIo): idle and total limits on reads and writes |
//! | [`shutdown`] | [`Shutdown`](shutdown::Shutdown) signals and the [`TaskTracker`](shutdown::TaskTracker) |
//! | [`backoff`] | [`Backoff`](backoff::Backoff): capped, jittered, seedable retry delays |
//! | [`retry`] | the [`Retry`](retry::Retry) policy, its sans-IO [`RetryState`](retry::RetryState), the [`RetryBudget`](retry::RetryBudget) |
//! | [`latency`] | [`LatencyHistogram`](latency::LatencyHistogram), [`RollingHistogram`](latency::RollingHistogram) |
//! | [`hedge`] | [`Hedge`](hedge::Hedge): backup requests after an adaptive delay, within a budget; its sans-IO [`HedgeState`](hedge::HedgeState) |
//! | [`fanout`] | [`scatter_gather`](fanout::scatter_gather_with), [`first_ok`](fanout::first_ok), [`quorum`](fanout::quorum) |
//! | [`breaker`] | the [`CircuitBreaker`](breaker::CircuitBreaker) and its sans-IO state machine |
//!
//! ## Every wait is bounded
//!
//! ```
//! use std::time::Duration;
//! use tailguard::timeout::FutureExt;
//!
//! # futures::executor::block_on(async {
//! let reply = async { "pong" }.timeout(Duration::from_secs(1)).await;
//! assert_eq!(reply, Ok("pong"));
//! # });
//! ```
//!
//! ## Features
//!
//! - `async-io` (default): [`time::AsyncIoTimer`], the [`time::DefaultTimer`].
//! - `futures-timer`: [`time::FuturesTimer`].
//!
//! Without either, every API that needs a clock takes a [`time::Timer`] explicitly.

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

pub mod backoff;
pub mod breaker;
mod error;
pub mod fanout;
pub mod hedge;
pub mod io;
pub mod latency;
mod reserve;
pub mod retry;
pub mod shutdown;
#[cfg(test)]
mod test_util;
pub mod time;
pub mod timeout;
mod validate;

pub use error::ConfigError;
