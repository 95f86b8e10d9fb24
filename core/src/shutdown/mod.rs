//! Graceful shutdown: stop taking work, finish what was accepted, cancel the rest at a deadline.
//!
//! Two pieces, used together:
//!
//! - [`Shutdown`] is the trigger and [`ShutdownSignal`] the cloneable future every worker holds.
//!   A signal completes when its trigger fires. [`Shutdown::child`] makes a trigger for a part of
//!   the program (one connection, one subsystem) that fires with its parent or on its own.
//! - [`TaskTracker`] counts work in flight. Each task holds a [`TaskGuard`] (or is wrapped by
//!   [`TaskTracker::track_future`]); [`TaskTracker::wait`] completes when none is left, and
//!   [`TaskTracker::graceful`] waits with a deadline and says how many tasks were still running.
//!
//! # The worker pattern
//!
//! Workers select on the signal between units of work; `main` triggers the signal, then waits on
//! the tracker with a deadline:
//!
//! ```
//! use std::time::Duration;
//! use futures::future::{select, Either};
//! use tailguard::shutdown::{Shutdown, TaskTracker};
//! use tailguard::time::{ManualTimer, Timer};
//!
//! let timer = ManualTimer::new();
//! let shutdown = Shutdown::new();
//! let tracker = TaskTracker::new();
//!
//! let workers: Vec<_> = (0..4)
//!     .map(|id| {
//!         let signal = shutdown.signal();
//!         let timer = timer.clone();
//!         tracker.track_future(async move {
//!             let mut jobs = 0;
//!             loop {
//!                 // One unit of work, then check for shutdown: a job in progress always ends.
//!                 let job = timer.sleep(Duration::from_millis(10 + id));
//!                 match select(job, signal.clone()).await {
//!                     Either::Left(_) => jobs += 1,
//!                     Either::Right(_) => return jobs,
//!                 }
//!             }
//!         })
//!     })
//!     .collect();
//!
//! let t = timer.clone();
//! let (jobs, drained) = timer.block_on(async move {
//!     let run = futures::future::join_all(workers);
//!     let stop = async {
//!         t.sleep(Duration::from_millis(100)).await;
//!         shutdown.trigger();
//!         tracker.graceful_with(t.clone(), Duration::from_secs(5)).await
//!     };
//!     futures::join!(run, stop)
//! });
//! assert!(drained.is_ok());
//! // Each worker finished every job it started before the 100 ms mark.
//! assert_eq!(jobs, vec![10, 9, 8, 7]);
//! ```

mod signal;
mod tracker;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use event_listener::{Event, EventListener};

pub use self::signal::{Shutdown, ShutdownSignal};
pub use self::tracker::{Graceful, TaskGuard, TaskTracker, TasksDone, Tracked, Unfinished};

/// Polls until `done()` holds, listening on `event` in between. Listens first and checks again,
/// so a notification between the check and the listen is not lost.
fn poll_until(
    done: impl Fn() -> bool,
    event: &Event,
    listener: &mut Option<EventListener>,
    cx: &mut Context<'_>,
) -> Poll<()> {
    loop {
        if done() {
            *listener = None;
            return Poll::Ready(());
        }
        match listener.as_mut() {
            None => *listener = Some(event.listen()),
            Some(waiting) => {
                if Pin::new(waiting).poll(cx).is_pending() {
                    return Poll::Pending;
                }
                *listener = None;
            }
        }
    }
}
