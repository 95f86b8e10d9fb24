//! Fail fast through long outages, probe carefully, never lose a permit: the circuit breaker.
//!
//! A [`CircuitBreaker`] sits in front of a dependency and watches the outcomes of the calls
//! made to it.
//!
//! * **Closed**: calls flow. Each outcome lands in a sliding window, either the last *N* calls
//!   ([`count_window`](CircuitBreakerBuilder::count_window)) or the last *D* of time in buckets
//!   ([`time_window`](CircuitBreakerBuilder::time_window)). When a failure or a slow call is
//!   recorded and the window holds at least `minimum_calls`, the breaker opens if the failure
//!   rate or the slow-call rate has reached its threshold. It also opens after
//!   `consecutive_failures` failures in a row, if that is set. (A success never opens it.)
//! * **Open**: calls are rejected at once with a hint of when to retry. The open duration is a
//!   [`Backoff`](crate::backoff::Backoff)
//!   ([`open_backoff`](CircuitBreakerBuilder::open_backoff); by default 10 s doubling to
//!   5 min, with equal jitter so a fleet does not probe in lockstep) that moves on with each
//!   failed probe round and starts over when the breaker closes.
//! * **Half-open**: once the open duration has passed, exactly `half_open_calls` probes are
//!   admitted, however many callers race for them. The breaker closes when enough of them
//!   succeed (all, by default) and reopens as soon as that has become impossible. A probe that
//!   neither reports nor is dropped within `half_open_timeout` counts as failed, so a lost
//!   probe cannot keep the breaker half-open.
//! * By hand: [`force_open`](CircuitBreaker::force_open),
//!   [`disable`](CircuitBreaker::disable) (admit everything, keep measuring) and
//!   [`reset`](CircuitBreaker::reset).
//!
//! A [`Permit`] is reported with `success()` or `failure()`; dropping it instead (say, because
//! the call was cancelled) releases it counted as neither, and frees a probe slot at once. An
//! [`OwnedPermit`] ([`try_acquire_owned`](CircuitBreaker::try_acquire_owned)) does the same
//! without borrowing the breaker, and [`call_owned`](CircuitBreaker::call_owned) makes a call
//! future that can be spawned. A
//! permit is tied to the state it was issued in: if the breaker has changed state since, its
//! outcome is ignored, so a slow call from before an outage cannot close or reopen anything.
//!
//! ```
//! use std::time::Duration;
//! use tailguard::breaker::{CallError, CircuitBreaker, State};
//! use tailguard::time::ManualTimer;
//!
//! let timer = ManualTimer::new();
//! let breaker = CircuitBreaker::builder()
//!     .failure_rate(0.5)
//!     .count_window(20)
//!     .minimum_calls(10)
//!     .open_duration(Duration::from_secs(10))
//!     .half_open_calls(2)
//!     .build_with(timer.clone())?;
//!
//! let flaky = |ok: bool| breaker.call(move || async move { if ok { Ok(()) } else { Err("down") } });
//! timer.block_on(async {
//!     for _ in 0..10 {
//!         let _ = flaky(false).await;
//!     }
//!     assert_eq!(breaker.state(), State::Open);
//!     // While open, calls fail fast without running.
//!     assert!(matches!(flaky(true).await, Err(CallError::Rejected(_))));
//!
//!     timer.advance(Duration::from_secs(10));
//!     flaky(true).await.unwrap(); // probe 1
//!     flaky(true).await.unwrap(); // probe 2: closes
//!     assert_eq!(breaker.state(), State::Closed);
//! });
//! # Ok::<(), tailguard::ConfigError>(())
//! ```
//!
//! ## Sans-IO
//!
//! The rules live in [`StateMachine`], whose methods take the current [`Instant`](std::time::Instant)
//! and hand out plain [`Ticket`]s. The handle adds a [`Timer`](crate::time::Timer) and the
//! [`Permit`] guard. Drive the machine directly to use a breaker from another clock or
//! language.
//!
//! ## Speed
//!
//! In the closed state, admitting a call is one atomic load; recording it is a couple of atomic
//! operations on cache lines private to the recording thread (the window is striped per
//! thread, see [`stripes`](CircuitBreakerBuilder::stripes)), and in a count window one shared
//! atomic add per 512 calls. No lock, no allocation, and no
//! clock read unless slow calls or a time window are configured. Transitions take a lock but
//! allocate nothing. The state-change listener is called after that lock is released.
//!
//! Slow calls and time windows are measured on the timer's coarse clock
//! ([`Timer::now_coarse_nanos`](crate::time::Timer::now_coarse_nanos)) where its lag is small
//! beside them: on Linux the default timer reads the kernel's coarse clock (a slow-call-timed
//! call reads it twice, a time window once, each about 3 ns); a
//! [`CachedTimer`](crate::time::CachedTimer) makes each read one atomic load, for the price of
//! a thread that refreshes the time every millisecond:
//!
//! ```
//! use std::time::Duration;
//! use tailguard::breaker::CircuitBreaker;
//! use tailguard::time::{AsyncIoTimer, CachedTimer};
//!
//! let breaker = CircuitBreaker::builder()
//!     .slow_calls(Duration::from_secs(2), 0.5)
//!     .build_with(CachedTimer::new(AsyncIoTimer))?;
//! breaker.try_acquire().unwrap().success();
//! assert_eq!(breaker.metrics().slow_calls, 0);
//! # Ok::<(), tailguard::ConfigError>(())
//! ```

mod call;
mod config;
mod count_window;
mod handle;
mod machine;
mod metrics;
mod open_duration;
mod permit;
mod state;
mod ticket;
mod time_window;
mod window;

pub use self::call::CallError;
pub use self::config::CircuitBreakerBuilder;
pub use self::handle::CircuitBreaker;
pub use self::machine::StateMachine;
pub use self::metrics::Metrics;
pub use self::permit::{OwnedPermit, Permit};
pub use self::state::{Reason, State, Transition};
pub use self::ticket::{Outcome, Rejected, Ticket};
