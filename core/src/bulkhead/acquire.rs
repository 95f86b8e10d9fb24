//! The futures that wait for a slot: [`Acquire`] (borrows the bulkhead) and [`AcquireOwned`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::permit::{OwnedPermit, Permit};
use super::rejected::Rejected;
use super::slots::{Limit, Wait};
use super::Bulkhead;
use crate::time::Timer;

/// The future of [`Bulkhead::acquire_until`] and [`Bulkhead::acquire_within`]: a [`Permit`], or a [`Rejected`] when the queue is
/// full or the deadline comes first. Dropping it leaves the queue and never loses a slot.
#[must_use = "futures do nothing unless polled"]
pub struct Acquire<'a, T: Timer> {
    bulkhead: &'a Bulkhead<T>,
    limit: Limit,
    wait: Wait<T::Sleep>,
}

impl<'a, T: Timer> Acquire<'a, T> {
    pub(super) fn new(bulkhead: &'a Bulkhead<T>, limit: Limit) -> Self {
        Acquire {
            bulkhead,
            limit,
            wait: bulkhead.new_wait(),
        }
    }
}

impl<'a, T: Timer> Future for Acquire<'a, T> {
    type Output = Result<Permit<'a>, Rejected>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let bulkhead = this.bulkhead;
        this.wait
            .poll(&bulkhead.slots, &bulkhead.timer, this.limit, cx)
            .map_ok(|()| Permit::new(&bulkhead.slots))
    }
}

impl<T: Timer> Drop for Acquire<'_, T> {
    fn drop(&mut self) {
        self.wait.cancel(&self.bulkhead.slots);
    }
}

impl<T: Timer> fmt::Debug for Acquire<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acquire")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

/// The future of [`Bulkhead::acquire_until_owned`] and [`Bulkhead::acquire_within_owned`]: like [`Acquire`], but it owns a clone of
/// the bulkhead, so it is `'static` and can be spawned; it gives an [`OwnedPermit`].
#[must_use = "futures do nothing unless polled"]
pub struct AcquireOwned<T: Timer> {
    bulkhead: Bulkhead<T>,
    limit: Limit,
    wait: Wait<T::Sleep>,
}

impl<T: Timer> AcquireOwned<T> {
    pub(super) fn new(bulkhead: Bulkhead<T>, limit: Limit) -> Self {
        let wait = bulkhead.new_wait();
        AcquireOwned {
            bulkhead,
            limit,
            wait,
        }
    }
}

// Nothing in it is ever pinned (the sleep is `Unpin`), whatever the timer is.
impl<T: Timer> Unpin for AcquireOwned<T> {}

impl<T: Timer> Future for AcquireOwned<T> {
    type Output = Result<OwnedPermit, Rejected>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let bulkhead = &this.bulkhead;
        this.wait
            .poll(&bulkhead.slots, &bulkhead.timer, this.limit, cx)
            .map_ok(|()| OwnedPermit::new(Arc::clone(&bulkhead.slots)))
    }
}

impl<T: Timer> Drop for AcquireOwned<T> {
    fn drop(&mut self) {
        self.wait.cancel(&self.bulkhead.slots);
    }
}

impl<T: Timer> fmt::Debug for AcquireOwned<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcquireOwned")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}
