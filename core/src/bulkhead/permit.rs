//! The permit guards: a slot, given back on drop.

use std::fmt;
use std::sync::Arc;

use super::slots::Slots;

/// One of the bulkhead's slots, held until dropped. It borrows the bulkhead; see
/// [`OwnedPermit`] to hold one across tasks.
///
/// ```
/// use tailguard::bulkhead::Bulkhead;
/// use tailguard::time::ManualTimer;
///
/// let bulkhead = Bulkhead::builder().max_concurrent(2).build_with(ManualTimer::new())?;
/// let permit = bulkhead.try_acquire().unwrap();
/// assert_eq!(bulkhead.metrics().in_flight, 1);
/// drop(permit);
/// assert_eq!(bulkhead.metrics().in_flight, 0);
/// # Ok::<(), tailguard::ConfigError>(())
/// ```
#[must_use = "the slot is given back as soon as the permit is dropped"]
pub struct Permit<'a> {
    slots: &'a Slots,
}

impl<'a> Permit<'a> {
    #[inline]
    pub(super) fn new(slots: &'a Slots) -> Self {
        Permit { slots }
    }
}

impl Drop for Permit<'_> {
    #[inline]
    fn drop(&mut self) {
        self.slots.release();
    }
}

impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit").finish_non_exhaustive()
    }
}

/// A [`Permit`] that owns a reference to the bulkhead's slots instead of borrowing it: move it
/// into a spawned task, keep it in a `'static` struct. The slot is given back on drop.
///
/// ```
/// use tailguard::bulkhead::Bulkhead;
/// use tailguard::time::ManualTimer;
///
/// let bulkhead = Bulkhead::builder().max_concurrent(1).build_with(ManualTimer::new())?;
/// let permit = bulkhead.try_acquire_owned().unwrap();
/// std::thread::spawn(move || drop(permit)).join().unwrap();
/// assert!(bulkhead.try_acquire().is_ok());
/// # Ok::<(), tailguard::ConfigError>(())
/// ```
#[must_use = "the slot is given back as soon as the permit is dropped"]
pub struct OwnedPermit {
    slots: Arc<Slots>,
}

impl OwnedPermit {
    pub(super) fn new(slots: Arc<Slots>) -> Self {
        OwnedPermit { slots }
    }
}

impl Drop for OwnedPermit {
    fn drop(&mut self) {
        self.slots.release();
    }
}

impl fmt::Debug for OwnedPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedPermit").finish_non_exhaustive()
    }
}
