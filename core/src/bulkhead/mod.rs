//! At most N calls at once: the bulkhead.
//!
//! A [`Bulkhead`] caps the calls in flight to a dependency at `max_concurrent`, so a slow
//! dependency cannot take every thread, connection or task of its caller with it, and a burst
//! cannot push more work at a service than it can do at once. A call that finds every slot
//! taken either is refused at once ([`try_acquire`](Bulkhead::try_acquire)) or waits
//! ([`acquire_until`](Bulkhead::acquire_until)) in a bounded queue:
//!
//! * at most `max_queue` callers wait; beyond that a call is refused at once
//!   ([`Reason::Full`]), so waiting never grows without bound;
//! * each waits until its own deadline at the latest ([`Reason::Deadline`]): a call that could
//!   not finish in time anyway is not started late;
//! * a released slot goes to the longest waiting caller ([`QueueOrder::Fifo`]) or the newest
//!   ([`QueueOrder::Lifo`], which under overload keeps the latency of admitted calls low and
//!   lets the stale ones time out).
//!
//! A [`Permit`] gives its slot back when dropped. Dropping a waiting future leaves the queue;
//! a slot handed to a waiter that is dropped at that same moment goes on to the next one, so no
//! slot is ever lost. Rejections are not failures: they say nothing about the dependency.
//!
//! ```
//! use std::time::Duration;
//! use tailguard::bulkhead::{Bulkhead, QueueOrder};
//! use tailguard::time::{ManualTimer, Timer};
//!
//! let timer = ManualTimer::new();
//! let bulkhead = Bulkhead::builder()
//!     .max_concurrent(2)
//!     .max_queue(8)
//!     .queue_order(QueueOrder::Fifo)
//!     .build_with(timer.clone())?;
//!
//! timer.block_on(async {
//!     let deadline = timer.now() + Duration::from_secs(1);
//!     let permit = bulkhead.acquire_until(deadline).await.unwrap();
//!     // ... make the call ...
//!     drop(permit);
//! });
//! assert_eq!(bulkhead.metrics().in_flight, 0);
//! # Ok::<(), tailguard::ConfigError>(())
//! ```
//!
//! ## Speed
//!
//! The free slots and the number of waiters share one atomic word. Taking a free slot is one
//! compare-and-swap, giving it back another; neither locks, allocates or reads a clock. Only
//! callers who wait take a lock (to join the queue), read the clock and arm a sleep until their
//! deadline; the queue's nodes live in a slab allocated up front (up to 1024 of them), reused
//! from then on.

mod acquire;
mod config;
mod handle;
mod permit;
mod rejected;
mod slots;
#[cfg(test)]
mod tests;
mod waiters;

pub use self::acquire::{Acquire, AcquireOwned};
pub use self::config::BulkheadBuilder;
pub use self::handle::Bulkhead;
pub use self::permit::{OwnedPermit, Permit};
pub use self::rejected::{Reason, Rejected};
pub use self::slots::Metrics;
pub use self::waiters::QueueOrder;
