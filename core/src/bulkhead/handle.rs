//! The shared handle: the slots and a timer to bound waits with.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::acquire::{Acquire, AcquireOwned};
#[cfg(any(feature = "async-io", feature = "futures-timer"))]
use super::config::BulkheadBuilder;
use super::permit::{OwnedPermit, Permit};
use super::rejected::Rejected;
use super::slots::{Limit, Metrics, Slots, Wait};
use super::waiters::QueueOrder;
use crate::metrics::PolicyName;
#[cfg(any(feature = "async-io", feature = "futures-timer"))]
use crate::time::DefaultTimer;
use crate::time::Timer;

/// A bulkhead: at most `max_concurrent` calls at once, and at most `max_queue` callers waiting
/// for a slot, each no later than its deadline. A cheap-to-clone, `Send + Sync` handle; clones
/// share the slots.
///
/// ```
/// use std::time::Duration;
/// use tailguard::bulkhead::{Bulkhead, Reason};
/// use tailguard::time::{ManualTimer, Timer};
///
/// let timer = ManualTimer::new();
/// let bulkhead = Bulkhead::builder()
///     .max_concurrent(1)
///     .max_queue(1)
///     .build_with(timer.clone())?;
///
/// timer.block_on(async {
///     let first = bulkhead.try_acquire().unwrap();
///     // The second caller waits, at most until its deadline.
///     let deadline = timer.now() + Duration::from_millis(50);
///     let refused = bulkhead.acquire_until(deadline).await.unwrap_err();
///     assert_eq!(refused.reason(), Reason::Deadline);
///     drop(first);
///     let _second = bulkhead.acquire_until(timer.now() + Duration::from_millis(50)).await.unwrap();
/// });
/// # Ok::<(), tailguard::ConfigError>(())
/// ```
#[cfg(any(feature = "async-io", feature = "futures-timer"))]
pub struct Bulkhead<T: Timer = DefaultTimer> {
    pub(super) slots: Arc<Slots>,
    pub(super) timer: T,
}

/// A bulkhead: at most `max_concurrent` calls at once, and at most `max_queue` callers waiting
/// for a slot, each no later than its deadline.
#[cfg(not(any(feature = "async-io", feature = "futures-timer")))]
pub struct Bulkhead<T: Timer> {
    pub(super) slots: Arc<Slots>,
    pub(super) timer: T,
}

#[cfg(any(feature = "async-io", feature = "futures-timer"))]
impl Bulkhead<DefaultTimer> {
    /// A builder; same as [`BulkheadBuilder::new`].
    pub fn builder() -> BulkheadBuilder {
        BulkheadBuilder::new()
    }
}

impl<T: Timer> Bulkhead<T> {
    pub(super) fn new(
        max_concurrent: u32,
        max_queue: u32,
        order: QueueOrder,
        name: &PolicyName,
        timer: T,
    ) -> Self {
        Bulkhead {
            slots: Arc::new(Slots::new(max_concurrent, max_queue, order, name)),
            timer,
        }
    }

    /// A slot now, or [`Reason::Full`](super::Reason::Full) at once: never waits, reads no
    /// clock, allocates nothing (one compare-and-swap; releasing is another). A caller that
    /// finds the slots taken does not jump the queue: while anyone waits, no slot is free.
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit<'_>, Rejected> {
        self.slots.try_acquire()?;
        Ok(Permit::new(&self.slots))
    }

    /// [`try_acquire`](Self::try_acquire) in the sans-IO shape every limiter shares. A
    /// bulkhead's decision does not depend on the time, so `now` is not used.
    #[inline]
    pub fn try_acquire_at(&self, now: Instant) -> Result<Permit<'_>, Rejected> {
        let _ = now;
        self.try_acquire()
    }

    /// Like [`try_acquire`](Self::try_acquire), but the permit owns a reference to the slots,
    /// to hold across tasks (one reference count).
    pub fn try_acquire_owned(&self) -> Result<OwnedPermit, Rejected> {
        self.slots.try_acquire()?;
        Ok(OwnedPermit::new(Arc::clone(&self.slots)))
    }

    /// A slot, waiting in the queue for one if all are taken, until `deadline` at the latest
    /// (pass a [`Deadline`](crate::timeout::Deadline)'s
    /// [`instant`](crate::timeout::Deadline::instant)). Refused at once
    /// ([`Reason::Full`](super::Reason::Full)) when the queue is full, and at once
    /// ([`Reason::Deadline`](super::Reason::Deadline)) when the deadline has passed and no slot
    /// is free.
    ///
    /// Dropping the future leaves the queue; a slot handed to it at that moment goes to the
    /// next waiter. A slot that is free on the first poll is taken without reading the clock;
    /// only a caller who waits reads it and arms a sleep.
    pub fn acquire_until(&self, deadline: Instant) -> Acquire<'_, T> {
        Acquire::new(self, Limit::Until(deadline))
    }

    /// Like [`acquire_until`](Self::acquire_until), but waits at most `max_wait`, counted from
    /// when it finds every slot taken: a free slot is taken without reading the clock.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tailguard::bulkhead::{Bulkhead, Reason};
    /// use tailguard::time::ManualTimer;
    ///
    /// let timer = ManualTimer::new();
    /// let bulkhead = Bulkhead::builder().max_concurrent(1).max_queue(4).build_with(timer.clone())?;
    /// let _held = bulkhead.try_acquire().unwrap();
    /// let refused = timer.block_on(bulkhead.acquire_within(Duration::from_millis(20))).unwrap_err();
    /// assert_eq!(refused.reason(), Reason::Deadline);
    /// assert_eq!(timer.elapsed(), Duration::from_millis(20));
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    pub fn acquire_within(&self, max_wait: Duration) -> Acquire<'_, T> {
        Acquire::new(self, Limit::Within(max_wait))
    }

    /// [`acquire_within`](Self::acquire_within), owning a clone of this handle.
    pub fn acquire_within_owned(&self, max_wait: Duration) -> AcquireOwned<T> {
        AcquireOwned::new(self.clone(), Limit::Within(max_wait))
    }

    /// Like [`acquire_until`](Self::acquire_until), but the future (and the permit) own a
    /// clone of this handle, so it can be spawned.
    pub fn acquire_until_owned(&self, deadline: Instant) -> AcquireOwned<T> {
        AcquireOwned::new(self.clone(), Limit::Until(deadline))
    }

    /// Calls allowed at once.
    pub fn max_concurrent(&self) -> u32 {
        self.slots.max_concurrent()
    }

    /// Callers allowed to wait at once.
    pub fn max_queue(&self) -> u32 {
        self.slots.max_queue()
    }

    /// Which waiter a released slot goes to.
    pub fn queue_order(&self) -> QueueOrder {
        self.slots.order()
    }

    /// Calls in flight, callers waiting, and rejections so far.
    pub fn metrics(&self) -> Metrics {
        self.slots.metrics()
    }

    /// The timer waits sleep on.
    pub fn timer(&self) -> &T {
        &self.timer
    }

    pub(super) fn new_wait(&self) -> Wait<T::Sleep> {
        Wait::Start
    }
}

impl<T: Timer> Clone for Bulkhead<T> {
    fn clone(&self) -> Self {
        Bulkhead {
            slots: Arc::clone(&self.slots),
            timer: self.timer.clone(),
        }
    }
}

impl<T: Timer> fmt::Debug for Bulkhead<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bulkhead")
            .field("max_concurrent", &self.max_concurrent())
            .field("max_queue", &self.max_queue())
            .field("queue_order", &self.queue_order())
            .field("metrics", &self.metrics())
            .finish_non_exhaustive()
    }
}
