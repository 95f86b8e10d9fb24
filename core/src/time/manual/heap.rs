//! A 4-ary min-heap of [`Entry`]s in a `Vec`: the far part of the sleep queue (see
//! [`queue`](super::queue)), which holds the sleeps beyond the calendar's window.

/// One registration in the queue: its deadline, its sequence number (unique, and its place in
/// registration order) and the slot that holds its waker. Entries order by deadline, then
/// registration order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Entry {
    /// The deadline, in nanoseconds since the clock's origin.
    pub(super) at: u64,
    pub(super) seq: u64,
    pub(super) slot: u32,
}

impl Entry {
    /// The order of entries as one number, so that comparisons compile to conditional moves:
    /// the order of a pop's comparisons is data-dependent, and mispredicted branches, not
    /// memory, were the cost of a pop.
    #[inline]
    pub(super) fn key(&self) -> u128 {
        (u128::from(self.at) << 64) | u128::from(self.seq)
    }
}

/// Children per node: half the levels of a binary heap.
const ARITY: usize = 4;

pub(super) fn push(heap: &mut Vec<Entry>, entry: Entry) {
    let hole = heap.len();
    heap.push(entry);
    sift_up(heap, entry.key(), entry, hole);
}

/// Moves `entry` up from `hole` to its place. (`key` is `entry.key()`.)
fn sift_up(heap: &mut [Entry], key: u128, entry: Entry, mut hole: usize) {
    while hole > 0 {
        let parent = (hole - 1) / ARITY;
        if heap[parent].key() <= key {
            break;
        }
        heap[hole] = heap[parent];
        hole = parent;
    }
    heap[hole] = entry;
}

/// Removes and returns the smallest entry; the heap must not be empty.
pub(super) fn pop(heap: &mut Vec<Entry>) -> Entry {
    let last = heap.pop().expect("pop on an empty heap");
    let Some(top) = heap.first_mut() else {
        return last;
    };
    let smallest = std::mem::replace(top, last);
    // Bottom-up: the last entry is usually among the latest, so walk the hole down to a leaf
    // along the smallest children without comparing against it, then move it up into place.
    let len = heap.len();
    let mut hole = 0;
    loop {
        let first = hole * ARITY + 1;
        if first >= len {
            break;
        }
        let child = smallest_child(heap, first);
        heap[hole] = heap[child];
        hole = child;
    }
    sift_up(heap, last.key(), last, hole);
    smallest
}

/// Keeps the entries `keep` accepts and restores the heap order.
pub(super) fn retain(heap: &mut Vec<Entry>, keep: impl FnMut(&Entry) -> bool) {
    heap.retain(keep);
    for index in (0..heap.len().div_ceil(ARITY)).rev() {
        sift_down(heap, index);
    }
}

/// The index of the smallest of the children starting at `first` (which exists).
#[inline]
fn smallest_child(heap: &[Entry], first: usize) -> usize {
    let end = (first + ARITY).min(heap.len());
    let mut child = first;
    let mut key = heap[first].key();
    for (other, entry) in heap[first + 1..end].iter().enumerate() {
        let other_key = entry.key();
        let less = other_key < key;
        child = if less { first + 1 + other } else { child };
        key = if less { other_key } else { key };
    }
    child
}

fn sift_down(heap: &mut [Entry], mut hole: usize) {
    let len = heap.len();
    let entry = heap[hole];
    let key = entry.key();
    loop {
        let first = hole * ARITY + 1;
        if first >= len {
            break;
        }
        let child = smallest_child(heap, first);
        if key <= heap[child].key() {
            break;
        }
        heap[hole] = heap[child];
        hole = child;
    }
    heap[hole] = entry;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_key_order_after_retain() {
        let mut rng = fastrand::Rng::with_seed(4);
        let mut heap = Vec::new();
        for seq in 1..=500u64 {
            push(
                &mut heap,
                Entry {
                    at: rng.u64(0..100),
                    seq,
                    slot: 0,
                },
            );
        }
        retain(&mut heap, |entry| entry.seq % 3 != 0);
        let mut popped = Vec::new();
        while !heap.is_empty() {
            popped.push(pop(&mut heap).key());
        }
        assert_eq!(popped.len(), 334);
        assert!(popped.windows(2).all(|w| w[0] < w[1]));
    }
}
