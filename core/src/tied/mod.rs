//! Tied requests ("The Tail at Scale", Dean & Barroso, 2013): send a request to two replicas,
//! each copy tagged with the identity of the other; when one copy starts executing, its server
//! cancels the twin in the other replica's queue.
//!
//! Hedging waits (for a delay, a percentile) before it sends a backup, and the backup then
//! runs beside the first attempt. A tied request sends both copies up front (the second after
//! a short `delay`, about twice a network hop, so that an idle server starts the first copy
//! and cancels the second before it arrives), and the server that gets to it first does the
//! work: a copy stuck in a slow or stalled replica's queue is cancelled there, so the request
//! pays for the fastest queue and, most of the time, for only one execution.
//!
//! The pieces, usable from any transport:
//!
//! - server side, sans-IO: [`TiedQueue`], a bounded FIFO in front of the workers with
//!   cancel-by-id. [`push_at`](TiedQueue::push_at) a request with its [`Tag`] (its id and its
//!   [`Twin`]); [`start_next_at`](TiedQueue::start_next_at) when a worker is free, and send the
//!   returned [`Start::cancel_twin`] to the twin's replica; [`cancel`](TiedQueue::cancel) when
//!   such a cancel arrives. A cancel that comes after its request started is
//!   [`TooLate`](Cancelled::TooLate): both copies run, and that is counted as duplicate work.
//! - client side: [`TiedCall`], the sans-IO state of one call (two copies, their ids, which
//!   answered first, which loser to cancel), and [`Tied`], the policy whose
//!   [`run_with`](Tied::run_with) drives a call over a [`Timer`](crate::time::Timer): the
//!   first copy now, the second after the delay (at once if the first fails), the first
//!   success wins and the other copy's future is dropped.
//! - the backup, for what tying cannot fix: once a copy has started its twin is cancelled, so
//!   a stall that begins while it runs would hold the call. A [`Backup`] policy sends a third
//!   copy to a third replica when the copy that started has not answered `after` it started
//!   (the client learns that it started when its twin is cancelled and answers so:
//!   [`TiedCall::cancelled_by_twin`]), within a [`HedgeBudget`](crate::hedge::HedgeBudget);
//!   [`Tied::run_backed_with`] drives it. When both tied replicas are stalled neither copy
//!   starts, so none is ever known to run and none of them answers until a stall ends:
//!   [`Backup::with_unstarted`] also backs up a call none of whose copies has started some
//!   time after both were sent ([`TiedCall::send_unstarted_backup`]); both tied copies are
//!   then losers to cancel if the backup answers first. [`Backup::with_learnt_after`] learns
//!   the delay after a start from how long started copies ran, instead of a fixed `after`.
//!   Where replicas do not queue (a worker per request), a backup early enough to cut the
//!   service time's own tail starts beside the copy it backs up, so it is duplicate work:
//!   tying pays off where requests wait in queues.
//!
//! ```
//! use std::time::Duration;
//! use tailguard::tied::{Leg, Tied};
//! use tailguard::time::{ManualTimer, Timer};
//!
//! let tied = Tied::new(Duration::from_millis(1)).unwrap();
//! let timer = ManualTimer::new();
//! let call = tied.call("replica-a", "replica-b");
//! let t = timer.clone();
//! let won = timer.block_on(tied.run_with(timer.clone(), call, move |copy| {
//!     // Replica a is stalled (its copy would take 500 ms); b answers in 3 ms.
//!     let took = if copy.replica == "replica-a" { 500 } else { 3 };
//!     let sleep = t.sleep(Duration::from_millis(took));
//!     async move {
//!         sleep.await;
//!         Ok::<_, ()>(copy.replica)
//!     }
//! }));
//! let won = won.unwrap();
//! assert_eq!((won.value, won.leg), ("replica-b", Leg::Second));
//! assert_eq!(timer.elapsed(), Duration::from_millis(4)); // 1 ms delay + 3 ms
//! // The first copy was still running: tell its replica to drop it, if the transport
//! // does not cancel on drop.
//! assert_eq!(won.cancel[0].unwrap().replica, "replica-a");
//! ```

mod backup;
#[cfg(test)]
mod backup_tests;
mod call;
mod policy;
mod queue;
#[cfg(test)]
mod tests;

pub use self::backup::{Backup, BackupStats};
pub use self::call::{Leg, Outgoing, Settled, TiedCall};
pub use self::policy::{Tied, TiedError, TiedStats, Won};
pub use self::queue::{
    Cancelled, QueueStats, Refusal, Rejected, Start, Ticket, TiedQueue, MAX_QUEUE,
};

/// Where a request's twin was sent: its replica, and its id there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Twin<A> {
    /// The twin's replica (an address, an index: whatever the transport names replicas by).
    pub replica: A,
    /// The twin's request id.
    pub id: u64,
}

/// A queued request's identity: its id, and its twin if it is one copy of a tied pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tag<A> {
    /// The request's id, unique on this server among recent requests.
    pub id: u64,
    /// Its twin on another replica, to cancel when this copy starts.
    pub twin: Option<Twin<A>>,
}

impl<A> Tag<A> {
    /// A request with an id (cancellable by it) and no twin.
    pub fn id(id: u64) -> Self {
        Tag { id, twin: None }
    }

    /// One copy of a tied pair: its id and its twin.
    pub fn tied(id: u64, twin: Twin<A>) -> Self {
        Tag {
            id,
            twin: Some(twin),
        }
    }
}
