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
//! | [`deadline_header`] | a call's remaining time over the wire: the `tailguard-timeout` header's [`encode`](deadline_header::encode) and [`decode`](deadline_header::decode) (`grpc-timeout` syntax) |
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
//! ## Naming
//!
//! One rule names every call that involves time, across the crate (and the demo and the Python
//! binding follow it):
//!
//! | form | meaning | for example |
//! |---|---|---|
//! | `name_at(now)` | sans-IO: the time comes in as an [`Instant`](std::time::Instant) argument and no clock is read | [`RetryBudget::try_withdraw_at`](retry::RetryBudget::try_withdraw_at), [`StateMachine::try_acquire_at`](breaker::StateMachine::try_acquire_at), [`RetryState::begin_attempt_at`](retry::RetryState::begin_attempt_at) |
//! | `name_with(timer)` | the same operation on an explicit [`Timer`](time::Timer), taken by value (timers are cheap clones) | [`timeout_with`](timeout::timeout_with), [`TaskTracker::graceful_with`](shutdown::TaskTracker::graceful_with), [`build_with`](breaker::CircuitBreakerBuilder::build_with) |
//! | `name` | the same operation on the [default timer](time::DefaultTimer) | [`timeout`](timeout::timeout), [`TaskTracker::graceful`](shutdown::TaskTracker::graceful) |
//! | `name_until(deadline)` | waits until an `Instant`, as [`Timer::sleep_until`](time::Timer::sleep_until) does | [`timeout_until`](timeout::timeout_until) |
//! | `name_owned` | the future owns a clone of its policy instead of borrowing it, so it can be spawned | [`Retry::run_owned`](retry::Retry::run_owned), [`CircuitBreaker::call_owned`](breaker::CircuitBreaker::call_owned) |
//!
//! Other variants are named for what they add, never `_with`:
//! [`call_classified`](breaker::CircuitBreaker::call_classified) takes a classifier,
//! [`run_numbered`](retry::Retry::run_numbered) passes the attempt number to the operation.
//! Attempts are numbered from 1 everywhere: the first attempt is attempt 1.
//!
//! ## Features
//!
//! - `async-io` (default): [`time::AsyncIoTimer`], the [`time::DefaultTimer`].
//! - `futures-timer`: [`time::FuturesTimer`].
//!
//! Without either, every API that needs a clock takes a [`time::Timer`] explicitly.
//!
//! ## Examples
//!
//! Whole programs in the repository's `core/examples/`, run with
//! `cargo run -p tailguard --example <name>`: `bounded_server` (a smol + hyper server whose
//! every wait is bounded, with graceful shutdown), `resilient_client` (an HTTP call through
//! retry, breaker and hedge), `tokio_app` (the core on tokio's timer and tasks) and
//! `graceful_workers`.

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

pub mod backoff;
pub mod breaker;
pub mod deadline_header;
mod error;
pub mod fanout;
pub mod hedge;
pub mod io;
pub mod latency;
#[cfg(test)]
mod naming;
mod reserve;
pub mod retry;
pub mod shutdown;
#[cfg(test)]
mod test_util;
pub mod time;
pub mod timeout;
mod validate;

pub use error::ConfigError;
