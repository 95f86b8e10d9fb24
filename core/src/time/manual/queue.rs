//! The sleeps registered with a [`ManualTimer`](super::ManualTimer): a binary heap ordered by
//! deadline and then registration order, over a slab that holds each sleep's waker.
//!
//! Cancelling a sleep frees its slot at once but leaves its heap entry behind (lazy deletion):
//! an entry whose slot no longer carries its sequence number is stale, and is skipped when it
//! reaches the top. When stale entries outnumber live ones the heap is rebuilt without them, so
//! sleeps that are made and dropped in a loop never pile up. Registering, cancelling and firing
//! a sleep are O(log n) with no allocation once the heap and the slab have grown to the number
//! of sleeps pending at once.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::num::NonZeroU64;
use std::task::Waker;
use std::time::Instant;

/// One registration: the slot holding its waker and its sequence number, which is unique and
/// gives its place in registration order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Key {
    slot: usize,
    seq: NonZeroU64,
}

/// A heap entry; `seq` is unique, so entries order by deadline, then registration order.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    deadline: Instant,
    seq: u64,
    slot: usize,
}

struct Slot {
    /// The sequence number of the registration in this slot; 0 while the slot is free.
    seq: u64,
    waker: Option<Waker>,
}

/// Stale entries tolerated beyond the number of live ones before the heap is rebuilt.
const SLACK: usize = 64;

pub(super) struct SleepQueue {
    heap: BinaryHeap<Reverse<Entry>>,
    slots: Vec<Slot>,
    free: Vec<usize>,
    live: usize,
    next_seq: u64,
}

impl SleepQueue {
    pub(super) fn new() -> Self {
        SleepQueue {
            heap: BinaryHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            next_seq: 1,
        }
    }

    /// Registered sleeps: not yet fired, not cancelled.
    pub(super) fn len(&self) -> usize {
        self.live
    }

    /// Registers a sleep due at `deadline`, after every sleep registered before it with the same
    /// deadline.
    pub(super) fn register(&mut self, deadline: Instant, waker: &Waker) -> Key {
        let seq = self.next_seq;
        self.next_seq += 1;
        let slot = Slot {
            seq,
            waker: Some(waker.clone()),
        };
        let index = match self.free.pop() {
            Some(index) => {
                self.slots[index] = slot;
                index
            }
            None => {
                self.slots.push(slot);
                self.slots.len() - 1
            }
        };
        self.heap.push(Reverse(Entry {
            deadline,
            seq,
            slot: index,
        }));
        self.live += 1;
        Key {
            slot: index,
            seq: NonZeroU64::new(seq).expect("sequence numbers start at 1"),
        }
    }

    /// Whether `key` is still registered (neither fired nor removed).
    pub(super) fn contains(&self, key: Key) -> bool {
        self.slots[key.slot].seq == key.seq.get()
    }

    /// Makes a registered sleep wake `waker`. Returns the waker it replaces, if any, for the
    /// caller to drop outside its lock.
    pub(super) fn set_waker(&mut self, key: Key, waker: &Waker) -> Option<Waker> {
        debug_assert!(self.contains(key));
        let slot = &mut self.slots[key.slot];
        match &slot.waker {
            Some(current) if current.will_wake(waker) => None,
            _ => slot.waker.replace(waker.clone()),
        }
    }

    /// Cancels a registration, returning its waker (to drop outside the caller's lock) if it
    /// was still registered.
    pub(super) fn remove(&mut self, key: Key) -> Option<Waker> {
        if !self.contains(key) {
            return None;
        }
        let waker = self.release(key.slot);
        if self.heap.len() > 2 * self.live + SLACK {
            let slots = &self.slots;
            self.heap
                .retain(|Reverse(entry)| slots[entry.slot].seq == entry.seq);
        }
        waker
    }

    /// The earliest deadline of a registered sleep.
    pub(super) fn next_deadline(&mut self) -> Option<Instant> {
        self.drop_stale_top();
        self.heap.peek().map(|Reverse(entry)| entry.deadline)
    }

    /// Removes the earliest registered sleep if it is due at `now`, and returns its waker.
    /// Called repeatedly, yields the due sleeps by deadline, then registration order.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<Waker> {
        self.drop_stale_top();
        let Reverse(top) = self.heap.peek()?;
        if top.deadline > now {
            return None;
        }
        let slot = top.slot;
        self.heap.pop();
        self.release(slot)
    }

    fn drop_stale_top(&mut self) {
        while let Some(Reverse(top)) = self.heap.peek() {
            if self.slots[top.slot].seq == top.seq {
                return;
            }
            self.heap.pop();
        }
    }

    fn release(&mut self, index: usize) -> Option<Waker> {
        let slot = &mut self.slots[index];
        slot.seq = 0;
        self.free.push(index);
        self.live -= 1;
        slot.waker.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn waker() -> Waker {
        Waker::noop().clone()
    }

    #[test]
    fn due_sleeps_pop_by_deadline_then_registration_order() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut q = SleepQueue::new();
        let keys: Vec<_> = [30, 10, 20, 10, 40]
            .iter()
            .map(|&n| (n, q.register(ms(n), &waker())))
            .collect();
        let mut order = Vec::new();
        while let Some(Reverse(top)) = q.heap.peek() {
            if top.deadline > ms(30) {
                break;
            }
            let seq = top.seq;
            assert!(q.pop_due(ms(30)).is_some());
            order.push(keys.iter().find(|(_, k)| k.seq.get() == seq).unwrap().0);
        }
        assert_eq!(order, vec![10, 10, 20, 30]);
        assert_eq!(keys[1].1.seq.get() + 2, keys[3].1.seq.get());
        assert_eq!(q.len(), 1);
        assert_eq!(q.next_deadline(), Some(ms(40)));
    }

    #[test]
    fn removed_sleeps_are_skipped_and_do_not_pile_up() {
        let t0 = Instant::now();
        let mut q = SleepQueue::new();
        let keep = q.register(t0 + Duration::from_secs(5), &waker());
        for i in 0..10_000u64 {
            let key = q.register(t0 + Duration::from_millis(i % 100 + 1), &waker());
            assert!(q.remove(key).is_some());
            assert!(q.remove(key).is_none());
            assert!(!q.contains(key));
        }
        assert_eq!(q.len(), 1);
        assert!(q.heap.len() <= 2 + SLACK, "{} entries", q.heap.len());
        assert!(q.slots.len() <= 2);
        assert!(q.pop_due(t0 + Duration::from_secs(1)).is_none());
        assert_eq!(q.next_deadline(), Some(t0 + Duration::from_secs(5)));
        assert!(q.contains(keep));
    }

    #[test]
    fn a_reused_slot_does_not_revive_a_stale_entry() {
        let t0 = Instant::now();
        let mut q = SleepQueue::new();
        let early = q.register(t0 + Duration::from_millis(1), &waker());
        q.remove(early);
        // Takes the freed slot, with a later deadline.
        let late = q.register(t0 + Duration::from_millis(9), &waker());
        assert_eq!(late.slot, early.slot);
        assert!(q.pop_due(t0 + Duration::from_millis(5)).is_none());
        assert_eq!(q.len(), 1);
        assert!(q.pop_due(t0 + Duration::from_millis(9)).is_some());
        assert_eq!(q.len(), 0);
        assert_eq!(q.next_deadline(), None);
    }
}
