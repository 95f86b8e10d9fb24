//! The shared core of a bulkhead: the free slots and the waiters, in one atomic word, plus the
//! wait queue behind a lock that only callers who wait (or free a slot someone waits for) take.
//!
//! `state` packs the free slots (low 32 bits) and the queued waiters (high 32 bits). The
//! invariant that keeps the fast paths simple: **while anyone waits, no slot is free**. A
//! released slot goes straight to a waiter (under the lock), so a slot is only ever added to
//! the free count when the queue is empty, and a caller only joins the queue (under the lock,
//! by one compare-and-swap that also checks the free count) when no slot is free. So:
//!
//! - acquiring without waiting is one compare-and-swap (free − 1) when a slot is free;
//! - releasing is one compare-and-swap (free + 1) when nobody waits, and otherwise takes the
//!   lock and hands the slot to the waiter the [`QueueOrder`] picks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::rejected::{Reason, Rejected};
use super::waiters::{Polled, QueueOrder, Waiters};
use crate::metrics::{self, Counter, PolicyName};
use crate::time::Timer;

const FREE: u64 = u32::MAX as u64;
const ONE_WAITER: u64 = 1 << 32;

/// Queue nodes allocated up front (at most `max_queue` of them): waiting allocates nothing
/// until more callers wait at once.
const PREALLOCATED_WAITERS: usize = 1024;

fn wake(waker: Option<Waker>) {
    if let Some(waker) = waker {
        waker.wake();
    }
}

fn free(state: u64) -> u32 {
    (state & FREE) as u32
}

fn queued(state: u64) -> u32 {
    (state >> 32) as u32
}

/// What the bulkhead's counters say, from [`Bulkhead::metrics`](super::Bulkhead::metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Metrics {
    /// Calls holding a slot now.
    pub in_flight: u32,
    /// Callers waiting for a slot now.
    pub queued: u32,
    /// Calls refused because every slot was taken and the queue was full, since the start.
    pub rejected_full: u64,
    /// Callers who gave up waiting at their deadline, since the start.
    pub rejected_deadline: u64,
}

#[derive(Debug)]
pub(super) struct Slots {
    state: AtomicU64,
    max_concurrent: u32,
    max_queue: u32,
    order: QueueOrder,
    waiters: Mutex<Waiters>,
    rejected_full: AtomicU64,
    rejected_deadline: AtomicU64,
    /// `tailguard_bulkhead_rejections_total`, `reason="full"` and `reason="deadline"`.
    counters: [Counter; 2],
}

/// What joining the queue gave.
enum Joined {
    /// A slot was free after all.
    Acquired,
    /// In the queue, at this node.
    Queued(u32),
    /// The queue was full.
    Full,
}

impl Slots {
    pub(super) fn new(
        max_concurrent: u32,
        max_queue: u32,
        order: QueueOrder,
        name: &PolicyName,
    ) -> Self {
        Slots {
            state: AtomicU64::new(u64::from(max_concurrent)),
            max_concurrent,
            max_queue,
            order,
            waiters: Mutex::new(Waiters::with_capacity(
                (max_queue as usize).min(PREALLOCATED_WAITERS),
            )),
            rejected_full: AtomicU64::new(0),
            rejected_deadline: AtomicU64::new(0),
            counters: [
                Counter::with_reason(metrics::BULKHEAD_REJECTIONS, name, "full"),
                Counter::with_reason(metrics::BULKHEAD_REJECTIONS, name, "deadline"),
            ],
        }
    }

    pub(super) fn max_concurrent(&self) -> u32 {
        self.max_concurrent
    }

    pub(super) fn max_queue(&self) -> u32 {
        self.max_queue
    }

    pub(super) fn order(&self) -> QueueOrder {
        self.order
    }

    fn waiters(&self) -> MutexGuard<'_, Waiters> {
        // The queue is consistent after every statement that can panic (none do while it is
        // half-linked), so a poisoned lock is still a good queue.
        self.waiters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a free slot without waiting (one compare-and-swap).
    #[inline]
    pub(super) fn try_take(&self) -> bool {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if free(state) == 0 {
                return false;
            }
            match self.state.compare_exchange_weak(
                state,
                state - 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => state = now,
            }
        }
    }

    /// Takes a free slot or refuses (counted): the non-waiting acquire.
    #[inline]
    pub(super) fn try_acquire(&self) -> Result<(), Rejected> {
        if self.try_take() {
            Ok(())
        } else {
            Err(self.refuse(Reason::Full))
        }
    }

    /// Gives a slot back: to the next waiter if anyone waits, otherwise to the free count.
    #[inline]
    pub(super) fn release(&self) {
        let mut state = self.state.load(Ordering::Relaxed);
        while queued(state) == 0 {
            match self.state.compare_exchange_weak(
                state,
                state + 1,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(now) => state = now,
            }
        }
        self.hand_over();
    }

    #[cold]
    fn hand_over(&self) {
        let waker = self.hand_over_locked(&mut self.waiters());
        // Woken with the lock released: a waker may run arbitrary code (the Python binding's
        // takes the interpreter lock), which must never wait on this lock's holder.
        wake(waker);
    }

    /// Under the lock: the slot goes to the next waiter, or (none left) to the free count.
    /// Returns the waiter's waker, to wake once the lock is released.
    #[must_use = "the waiter must be woken after the lock is released"]
    fn hand_over_locked(&self, waiters: &mut MutexGuard<'_, Waiters>) -> Option<Waker> {
        match waiters.grant_next(self.order) {
            Some(waker) => {
                self.state.fetch_sub(ONE_WAITER, Ordering::AcqRel);
                waker
            }
            None => {
                self.state.fetch_add(1, Ordering::Release);
                None
            }
        }
    }

    fn refuse(&self, reason: Reason) -> Rejected {
        match reason {
            Reason::Full => {
                self.counters[0].increment();
                self.rejected_full.fetch_add(1, Ordering::Relaxed)
            }
            Reason::Deadline => {
                self.counters[1].increment();
                self.rejected_deadline.fetch_add(1, Ordering::Relaxed)
            }
        };
        Rejected {
            reason,
            max_concurrent: self.max_concurrent,
            max_queue: self.max_queue,
        }
    }

    /// Under the lock: a free slot, a place in the queue, or a full queue.
    fn join(&self, waker: &Waker) -> Joined {
        let mut waiters = self.waiters();
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            debug_assert_eq!(
                queued(state),
                waiters.len(),
                "the count is the queue's length"
            );
            let (next, joined) = if free(state) > 0 {
                (state - 1, Joined::Acquired)
            } else if queued(state) >= self.max_queue {
                return Joined::Full;
            } else {
                (state + ONE_WAITER, Joined::Queued(0))
            };
            match self
                .state
                .compare_exchange_weak(state, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    return match joined {
                        Joined::Queued(_) => Joined::Queued(waiters.push(waker.clone())),
                        other => other,
                    }
                }
                Err(now) => state = now,
            }
        }
    }

    /// Leaves the queue (a waiter dropped or out of time). Returns whether it had been handed
    /// a slot meanwhile; if `keep` is false that slot is passed on at once.
    fn leave(&self, node: u32, keep: bool) -> bool {
        let mut waiters = self.waiters();
        if waiters.cancel(node) {
            if !keep {
                let waker = self.hand_over_locked(&mut waiters);
                drop(waiters);
                wake(waker);
            }
            true
        } else {
            self.state.fetch_sub(ONE_WAITER, Ordering::AcqRel);
            false
        }
    }

    /// Slots in use and callers waiting, and the rejection counts.
    pub(super) fn metrics(&self) -> Metrics {
        let state = self.state.load(Ordering::Relaxed);
        Metrics {
            in_flight: self.max_concurrent - free(state),
            queued: queued(state),
            rejected_full: self.rejected_full.load(Ordering::Relaxed),
            rejected_deadline: self.rejected_deadline.load(Ordering::Relaxed),
        }
    }
}

/// How long a caller may wait: until an instant, or for a duration from when it starts
/// waiting (read from the clock only then).
#[derive(Clone, Copy, Debug)]
pub(super) enum Limit {
    Until(Instant),
    Within(Duration),
}

/// One caller's wait for a slot, bounded by a deadline: the state shared by the borrowing and
/// the owning acquire futures. It must be [`cancel`](Self::cancel)led when dropped unfinished.
#[derive(Debug)]
pub(super) enum Wait<S> {
    /// Not polled yet.
    Start,
    /// In the queue at `node`, sleeping until the deadline.
    Queued { node: u32, sleep: S },
    /// Finished (a slot was taken, or the caller was refused).
    Done,
}

impl<S: std::future::Future + Unpin> Wait<S> {
    /// Drives the wait: `Ready(Ok(()))` once a slot is the caller's.
    pub(super) fn poll<T: Timer<Sleep = S>>(
        &mut self,
        slots: &Slots,
        timer: &T,
        limit: Limit,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Rejected>> {
        loop {
            match self {
                Wait::Start => {
                    if slots.try_take() {
                        *self = Wait::Done;
                        return Poll::Ready(Ok(()));
                    }
                    if slots.max_queue == 0 {
                        *self = Wait::Done;
                        return Poll::Ready(Err(slots.refuse(Reason::Full)));
                    }
                    let now = timer.now();
                    let deadline = match limit {
                        Limit::Until(deadline) => deadline,
                        Limit::Within(wait) => crate::time::deadline_after(now, wait),
                    };
                    if now >= deadline {
                        *self = Wait::Done;
                        return Poll::Ready(Err(slots.refuse(Reason::Deadline)));
                    }
                    match slots.join(cx.waker()) {
                        Joined::Acquired => {
                            *self = Wait::Done;
                            return Poll::Ready(Ok(()));
                        }
                        Joined::Full => {
                            *self = Wait::Done;
                            return Poll::Ready(Err(slots.refuse(Reason::Full)));
                        }
                        Joined::Queued(node) => {
                            *self = Wait::Queued {
                                node,
                                sleep: timer.sleep_until(deadline),
                            };
                        }
                    }
                }
                Wait::Queued { node, sleep } => {
                    if slots.waiters().poll(*node, cx.waker()) == Polled::Granted {
                        *self = Wait::Done;
                        return Poll::Ready(Ok(()));
                    }
                    if std::pin::Pin::new(sleep).poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    // Out of time; a slot granted at this very moment is still taken.
                    let granted = slots.leave(*node, true);
                    *self = Wait::Done;
                    return Poll::Ready(if granted {
                        Ok(())
                    } else {
                        Err(slots.refuse(Reason::Deadline))
                    });
                }
                Wait::Done => panic!("bulkhead acquire polled after it completed"),
            }
        }
    }

    /// The caller gave up: leave the queue, passing on a slot handed over meanwhile.
    pub(super) fn cancel(&mut self, slots: &Slots) {
        if let Wait::Queued { node, .. } = *self {
            slots.leave(node, false);
        }
        *self = Wait::Done;
    }
}
