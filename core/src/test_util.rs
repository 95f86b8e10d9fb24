//! Helpers shared by the unit tests of several modules.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// `n` milliseconds.
pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Counts the drops of the [`DropGuard`]s it hands out, to show that cancelled work is really
/// dropped. Clones share the count.
#[derive(Clone, Debug, Default)]
pub(crate) struct Drops(Arc<AtomicUsize>);

/// Adds one to its [`Drops`] when dropped; move it into a future to count that future's drop.
#[derive(Debug)]
pub(crate) struct DropGuard(Drops);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0 .0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Drops {
    /// A guard that counts here when dropped.
    pub(crate) fn guard(&self) -> DropGuard {
        DropGuard(self.clone())
    }

    /// How many guards have been dropped.
    pub(crate) fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

#[test]
fn drops_counts_each_guard_once() {
    let drops = Drops::default();
    let (a, b) = (drops.guard(), drops.clone().guard());
    assert_eq!(drops.count(), 0);
    drop(a);
    assert_eq!(drops.count(), 1);
    drop(b);
    assert_eq!(drops.count(), 2);
}
