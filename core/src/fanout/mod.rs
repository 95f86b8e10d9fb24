//! Fan-out: ask many, use what comes back.
//!
//! Three ways to run a set of futures concurrently and stop early:
//!
//! | function | resolves to | stops when |
//! |---|---|---|
//! | [`scatter_gather_with`] / [`scatter_gather`] | one `Result<output, Elapsed>` per future | all done, or the deadline |
//! | [`first_ok`] | the first `Ok` (or every error) | the first success, or all failed |
//! | [`quorum`] | the first `k` successes | `k` succeeded, or `k` became unreachable |
//!
//! Whatever stops them, the futures still running are dropped at once, which cancels them,
//! and so does dropping the combinator itself. Only futures that were woken are polled again
//! (they run in a [`FuturesUnordered`](futures_util::stream::FuturesUnordered)), so a fan-out
//! of thousands stays cheap.
//!
//! Combine with [`hedge`](crate::hedge) to hedge each leg of a scatter-gather, the way "The
//! Tail at Scale" does for a read of a thousand keys:
//!
//! ```
//! use std::time::Duration;
//! use tailguard::fanout::scatter_gather_with;
//! use tailguard::hedge::Hedge;
//! use tailguard::time::{ManualTimer, Timer};
//! use tailguard::timeout::Deadline;
//!
//! let timer = ManualTimer::new();
//! let hedge = Hedge::builder()
//!     .fixed_delay(Duration::from_millis(10))
//!     .unbudgeted()
//!     .build()?;
//! // Key 3's first replica is stalled for a second; every other read takes 2 ms.
//! let read = |key: u32| {
//!     let timer = timer.clone();
//!     hedge.run_with(timer.clone(), move |attempt| {
//!         let timer = timer.clone();
//!         async move {
//!             let stalled = key == 3 && attempt == 1;
//!             timer.sleep(Duration::from_millis(if stalled { 1000 } else { 2 })).await;
//!             Ok::<_, std::io::Error>(key * 10)
//!         }
//!     })
//! };
//! let deadline = Deadline::after_with(timer.clone(), Duration::from_millis(100));
//! let values = timer.block_on(scatter_gather_with(timer.clone(), (0..8).map(read), deadline));
//! assert!(values.iter().all(|v| matches!(v, Ok(Ok(_)))));
//! assert_eq!(timer.elapsed(), Duration::from_millis(12)); // not 1000
//! # Ok::<(), tailguard::ConfigError>(())
//! ```

mod first_ok;
mod indexed;
mod quorum;
mod scatter_gather;

pub use self::first_ok::{first_ok, AllFailed, FirstOk};
pub use self::quorum::{quorum, Quorum, QuorumError};
#[cfg(any(feature = "async-io", feature = "futures-timer"))]
pub use self::scatter_gather::scatter_gather;
pub use self::scatter_gather::{scatter_gather_with, ScatterGather};

#[cfg(test)]
mod tests;
