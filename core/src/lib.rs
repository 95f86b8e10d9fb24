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
//! | [`time`] | the [`Timer`](time::Timer) trait; real timers (async-io's, futures-timer's, and [`HeapTimer`](time::HeapTimer), tailguard's own heaps of deadlines for timeouts that wait); a virtual clock |
//! | [`adaptive_timeout`] | [`AdaptiveTimeout`](adaptive_timeout::AdaptiveTimeout): an attempt timeout from a percentile of recent latency × a factor, clamped |
//! | [`timeout`] | [`timeout`](timeout::timeout), [`Deadline`](timeout::Deadline), `fut.timeout(d)` |
//! | [`deadline_header`] | a call's remaining time over the wire: the `tailguard-timeout` header's [`encode`](deadline_header::encode) and [`decode`](deadline_header::decode) (`grpc-timeout` syntax) |
//! | [`io`] | [`TimeoutIo`](io::TimeoutIo): idle and total limits on reads and writes |
//! | [`shutdown`] | [`Shutdown`](shutdown::Shutdown) signals and the [`TaskTracker`](shutdown::TaskTracker) |
//! | [`backoff`] | [`Backoff`](backoff::Backoff): capped, jittered, seedable retry delays |
//! | [`retry`] | the [`Retry`](retry::Retry) policy, its sans-IO [`RetryState`](retry::RetryState), the [`RetryBudget`](retry::RetryBudget) |
//! | [`latency`] | [`LatencyHistogram`](latency::LatencyHistogram), [`RollingHistogram`](latency::RollingHistogram) |
//! | [`balance`] | [`Balancer`](balance::Balancer): power of two choices over a peak-EWMA of latency, sans-IO |
//! | [`hedge`] | [`Hedge`](hedge::Hedge): backup requests after an adaptive delay, within a budget; its sans-IO [`HedgeState`](hedge::HedgeState) |
//! | [`fanout`] | [`scatter_gather`](fanout::scatter_gather_with), [`first_ok`](fanout::first_ok), [`quorum`](fanout::quorum) |
//! | [`breaker`] | the [`CircuitBreaker`](breaker::CircuitBreaker) and its sans-IO state machine |
//! | [`pipeline`] | [`Pipeline`](pipeline::Pipeline): deadline → budget → retry → hedge → breaker → limiter → attempt timeout, in that order by construction, under one deadline |
//! | [`rate`] | [`RateLimiter`](rate::RateLimiter): a lock-free token bucket (GCRA), smooth or bursty; [`KeyedRateLimiter`](rate::KeyedRateLimiter), per key in bounded memory |
//! | [`throttle`] | [`Throttle`](throttle::Throttle): client-side adaptive throttling, refusing locally as the backend's accept rate falls |
//! | [`bulkhead`] | [`Bulkhead`](bulkhead::Bulkhead): at most N calls at once, a bounded FIFO/LIFO wait until each caller's deadline |
//! | [`limit`] | the [`AdaptiveLimiter`](limit::AdaptiveLimiter): a concurrency limit that follows latency (Gradient2, AIMD, fixed), sans-IO |
//! | [`priority`] | [`Criticality`](priority::Criticality) classes and the [`Shares`](priority::Shares) of a limit each may fill |
//! | [`tied`] | tied requests: the server's [`TiedQueue`](tied::TiedQueue) with cancel-by-id, the client's [`Tied`](tied::Tied) call over two replicas, with a [`Backup`](tied::Backup) for the copy that started and overran |
//! | [`metrics`] | the names of the counters every policy emits with the `metrics` feature |
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
//! | `name_until(deadline)` | waits until an `Instant`, as [`Timer::sleep_until`](time::Timer::sleep_until) does | [`timeout_until`](timeout::timeout_until), [`Pipeline::call_until`](pipeline::Pipeline::call_until) |
//! | `name_owned` | the future owns a clone of its policy instead of borrowing it, so it can be spawned | [`Retry::run_owned`](retry::Retry::run_owned), [`CircuitBreaker::call_owned`](breaker::CircuitBreaker::call_owned), [`Pipeline::call_owned`](pipeline::Pipeline::call_owned) |
//!
//! Other variants are named for what they add, never `_with`:
//! [`call_classified`](breaker::CircuitBreaker::call_classified) takes a classifier,
//! [`run_numbered`](retry::Retry::run_numbered) passes the attempt number to the operation.
//! Attempts are numbered from 1 everywhere: the first attempt is attempt 1.
//!
//! ## Features
//!
//! - `async-io` (default): [`time::HeapTimer`], the [`time::DefaultTimer`] (tailguard's own
//!   heaps of deadlines, driven by async-io's reactor: the cheapest real timer for a timeout that
//!   waits); and [`time::AsyncIoTimer`] (one async-io timer per sleep, no process-wide state).
//! - `futures-timer`: `time::FuturesTimer` (futures-timer's `Delay`, driven by a helper thread).
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

pub mod adaptive_timeout;
pub mod backoff;
pub mod balance;
pub mod breaker;
pub mod bulkhead;
pub mod deadline_header;
mod error;
pub mod fanout;
pub mod hedge;
pub mod io;
pub mod latency;
pub mod limit;
pub mod metrics;
#[cfg(test)]
mod naming;
pub mod pipeline;
pub mod priority;
pub mod rate;
mod reserve;
pub mod retry;
pub mod shutdown;
#[cfg(test)]
mod test_util;
pub mod throttle;
pub mod tied;
pub mod time;
pub mod timeout;
mod validate;

pub use error::ConfigError;
