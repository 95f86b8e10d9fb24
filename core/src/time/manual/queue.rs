//! The sleeps registered with a [`ManualTimer`](super::ManualTimer): a 4-ary min-heap ordered
//! by deadline and then registration order, over a slab that holds each sleep's waker.
//!
//! Cancelling a sleep frees its slot at once but leaves its heap entry behind (lazy deletion):
//! an entry whose slot no longer carries its sequence number is stale, and is skipped when it
//! reaches the top. When stale entries outnumber live ones the heap is rebuilt without them, so
//! sleeps that are made and dropped in a loop never pile up. Registering, cancelling and firing
//! a sleep are O(log n) with no allocation once the heap and the slab have grown to the number
//! of sleeps pending at once.
//!
//! Popping is bound by memory: a simulation keeps thousands of sleeps pending, most of them far
//! in the future (the arrivals of later requests, long timeouts). So the heap is split in two:
//! `near` holds the entries due within a window of the earliest one and `far` the rest, which
//! move to `near` a window at a time once it runs dry; and both are 4-ary heaps of 24-byte
//! entries (deadlines in nanoseconds since the clock's origin), half the levels of a binary
//! heap. Deadlines more than 584 years past the origin do not fit in the nanoseconds; they wait,
//! exactly ordered, in an overflow map that is consulted only when both heaps are empty.

use std::collections::BTreeMap;
use std::num::NonZeroU64;
use std::task::Waker;
use std::time::{Duration, Instant};

/// One registration: the slot holding its waker and its sequence number, which is unique and
/// gives its place in registration order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Key {
    slot: usize,
    seq: NonZeroU64,
}

/// A heap entry; `seq` is unique, so entries order by deadline, then registration order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    /// The deadline, in nanoseconds since the origin.
    at: u64,
    seq: u64,
    slot: u32,
}

struct Slot {
    /// The sequence number of the registration in this slot; 0 while the slot is free.
    seq: u64,
    waker: Option<Waker>,
}

/// Stale entries tolerated beyond the number of live ones before the heap is rebuilt.
const SLACK: usize = 64;

/// Children per node.
const ARITY: usize = 4;

/// How far past the earliest far entry a refill of `near` reaches, in nanoseconds (about 0.27 s
/// of virtual time): wide enough that a burst of short sleeps stays in `near`, narrow enough
/// that sleeps far in the future (arrivals of later requests, long timeouts) stay out of it.
const WINDOW: u64 = 1 << 28;

pub(super) struct SleepQueue {
    origin: Instant,
    /// Entries due at or before `limit`, as a heap.
    near: Vec<Entry>,
    /// Entries due after `limit`, as a heap; they move to `near` once `near` runs dry.
    far: Vec<Entry>,
    limit: u64,
    /// Registrations whose deadline is too far from `origin` for `Entry::at`, by (deadline,
    /// seq), with their slots; all of them are later than every heap entry.
    overflow: BTreeMap<(Instant, u64), u32>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
    next_seq: u64,
}

impl SleepQueue {
    /// An empty queue for deadlines at or after `origin`.
    pub(super) fn new(origin: Instant) -> Self {
        SleepQueue {
            origin,
            near: Vec::new(),
            far: Vec::new(),
            limit: 0,
            overflow: BTreeMap::new(),
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

    /// Registers a sleep due at `deadline` (not before the origin), after every sleep
    /// registered before it with the same deadline.
    pub(super) fn register(&mut self, deadline: Instant, waker: &Waker) -> Key {
        let seq = self.next_seq;
        self.next_seq += 1;
        let slot = Slot {
            seq,
            waker: Some(waker.clone()),
        };
        let index = match self.free.pop() {
            Some(index) => {
                self.slots[index as usize] = slot;
                index
            }
            None => {
                let index = u32::try_from(self.slots.len())
                    .expect("fewer than 2^32 sleeps pending on one ManualTimer");
                self.slots.push(slot);
                index
            }
        };
        let since = deadline.saturating_duration_since(self.origin).as_nanos();
        match u64::try_from(since) {
            Ok(at) => {
                let entry = Entry {
                    at,
                    seq,
                    slot: index,
                };
                let heap = if at <= self.limit {
                    &mut self.near
                } else {
                    &mut self.far
                };
                push(heap, entry);
            }
            Err(_) => {
                self.overflow.insert((deadline, seq), index);
            }
        }
        self.live += 1;
        Key {
            slot: index as usize,
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
        let waker = self.release(key.slot as u32);
        if self.near.len() + self.far.len() + self.overflow.len() > 2 * self.live + SLACK {
            self.compact();
        }
        waker
    }

    /// The earliest deadline of a registered sleep.
    pub(super) fn next_deadline(&mut self) -> Option<Instant> {
        match self.top() {
            Some(top) => Some(self.origin + Duration::from_nanos(top.at)),
            None => self.overflow_top(),
        }
    }

    /// Removes the earliest registered sleep if it is due at `now`, and returns its waker.
    /// Called repeatedly, yields the due sleeps by deadline, then registration order.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<Waker> {
        if let Some(top) = self.top() {
            let now = u64::try_from(now.saturating_duration_since(self.origin).as_nanos())
                .unwrap_or(u64::MAX);
            if top.at > now {
                return None;
            }
            let slot = pop(&mut self.near).slot;
            return self.release(slot);
        }
        if self.overflow_top()? > now {
            return None;
        }
        let (_, slot) = self.overflow.pop_first()?;
        self.release(slot)
    }

    fn is_live(&self, entry: &Entry) -> bool {
        self.slots[entry.slot as usize].seq == entry.seq
    }

    /// The earliest live heap entry, left at the top of `near`; drops stale entries on the way
    /// and refills `near` from `far` when it runs dry.
    fn top(&mut self) -> Option<Entry> {
        loop {
            while let Some(top) = self.near.first() {
                if self.is_live(top) {
                    return Some(*top);
                }
                pop(&mut self.near);
            }
            // `near` is empty: move the next window of `far` into it.
            while let Some(top) = self.far.first() {
                if self.is_live(top) {
                    break;
                }
                pop(&mut self.far);
            }
            let first = self.far.first()?.at;
            self.limit = first.saturating_add(WINDOW);
            while self.far.first().is_some_and(|top| top.at <= self.limit) {
                let entry = pop(&mut self.far);
                if self.is_live(&entry) {
                    push(&mut self.near, entry);
                }
            }
        }
    }

    /// The earliest live overflow registration, dropping stale ones on the way.
    fn overflow_top(&mut self) -> Option<Instant> {
        loop {
            let (&(deadline, seq), &slot) = self.overflow.first_key_value()?;
            if self.slots[slot as usize].seq == seq {
                return Some(deadline);
            }
            self.overflow.pop_first();
        }
    }

    fn release(&mut self, index: u32) -> Option<Waker> {
        let slot = &mut self.slots[index as usize];
        slot.seq = 0;
        self.free.push(index);
        self.live -= 1;
        slot.waker.take()
    }

    /// Drops every stale entry and rebuilds the heaps.
    fn compact(&mut self) {
        let slots = &self.slots;
        let live = |seq: u64, slot: u32| slots[slot as usize].seq == seq;
        for heap in [&mut self.near, &mut self.far] {
            heap.retain(|entry| live(entry.seq, entry.slot));
            for index in (0..heap.len().div_ceil(ARITY)).rev() {
                sift_down(heap, index);
            }
        }
        self.overflow.retain(|&(_, seq), &mut slot| live(seq, slot));
    }
}

impl Entry {
    /// The order of entries as one number, so that comparisons compile to conditional moves:
    /// the order of a pop's comparisons is data-dependent, and mispredicted branches, not
    /// memory, were the cost of a pop.
    #[inline]
    fn key(&self) -> u128 {
        (u128::from(self.at) << 64) | u128::from(self.seq)
    }
}

fn push(heap: &mut Vec<Entry>, entry: Entry) {
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
fn pop(heap: &mut Vec<Entry>) -> Entry {
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
    use std::sync::{Arc, Mutex};
    use std::task::Wake;

    fn waker() -> Waker {
        Waker::noop().clone()
    }

    struct Recorder(u64, Arc<Mutex<Vec<u64>>>);

    impl Wake for Recorder {
        fn wake(self: Arc<Self>) {
            self.1.lock().unwrap().push(self.0);
        }
    }

    #[test]
    fn due_sleeps_pop_by_deadline_then_registration_order() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut q = SleepQueue::new(t0);
        // (label, deadline in ms): labels 2 and 4 share a deadline, registered in that order.
        for (label, at) in [
            (1, 30),
            (2, 10),
            (3, 20),
            (4, 10),
            (5, 40),
            (6, 25),
            (7, 10),
        ] {
            let waker = Waker::from(Arc::new(Recorder(label, order.clone())));
            q.register(ms(at), &waker);
        }
        while let Some(waker) = q.pop_due(ms(30)) {
            waker.wake();
        }
        assert_eq!(*order.lock().unwrap(), vec![2, 4, 7, 3, 6, 1]);
        assert_eq!(q.len(), 1);
        assert_eq!(q.next_deadline(), Some(ms(40)));
    }

    #[test]
    fn random_sleeps_pop_in_order_across_windows() {
        use std::collections::BTreeSet;
        let t0 = Instant::now();
        let mut q = SleepQueue::new(t0);
        let mut rng = fastrand::Rng::with_seed(15);
        // The model: (deadline, registration order) of every live registration.
        let mut model = BTreeSet::new();
        let mut keys = Vec::new();
        let mut now = 0u64;
        let mut seq = 0u64;
        for round in 0..40 {
            for _ in 0..200 {
                // Mostly near, some many windows away, some on the same nanosecond.
                let at = now
                    + match rng.u8(0..10) {
                        0..=5 => rng.u64(1..1_000_000),
                        6..=8 => rng.u64(1..WINDOW * 20),
                        _ => 7,
                    };
                seq += 1;
                keys.push((q.register(t0 + Duration::from_nanos(at), &waker()), at, seq));
                model.insert((at, seq));
            }
            // Cancel a few.
            for _ in 0..30 {
                let (key, at, seq) = keys.swap_remove(rng.usize(..keys.len()));
                assert_eq!(q.remove(key).is_some(), model.remove(&(at, seq)));
            }
            // Fire up to some deadline, one deadline at a time, as block_on does.
            let until = now + if round % 3 == 0 { WINDOW * 5 } else { 500_000 };
            while let Some(deadline) = q.next_deadline() {
                let at = u64::try_from((deadline - t0).as_nanos()).unwrap();
                if at > until {
                    break;
                }
                assert_eq!(Some(&at), model.first().map(|(at, _)| at));
                while q.pop_due(deadline).is_some() {
                    let (first, _) = model.pop_first().unwrap();
                    assert_eq!(first, at);
                }
                now = at;
            }
            assert_eq!(q.len(), model.len());
            keys.retain(|&(key, _, _)| q.contains(key));
        }
    }

    #[test]
    fn removed_sleeps_are_skipped_and_do_not_pile_up() {
        let t0 = Instant::now();
        let mut q = SleepQueue::new(t0);
        let keep = q.register(t0 + Duration::from_secs(5), &waker());
        for i in 0..10_000u64 {
            let key = q.register(t0 + Duration::from_millis(i % 100 + 1), &waker());
            assert!(q.remove(key).is_some());
            assert!(q.remove(key).is_none());
            assert!(!q.contains(key));
        }
        assert_eq!(q.len(), 1);
        let entries = q.near.len() + q.far.len();
        assert!(entries <= 2 + SLACK, "{entries} entries");
        assert!(q.slots.len() <= 2);
        assert!(q.pop_due(t0 + Duration::from_secs(1)).is_none());
        assert_eq!(q.next_deadline(), Some(t0 + Duration::from_secs(5)));
        assert!(q.contains(keep));
    }

    #[test]
    fn a_reused_slot_does_not_revive_a_stale_entry() {
        let t0 = Instant::now();
        let mut q = SleepQueue::new(t0);
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

    #[test]
    fn deadlines_beyond_the_nanosecond_range_keep_their_order() {
        let t0 = Instant::now();
        let year = Duration::from_secs(86_400 * 365);
        let (Some(far), Some(farther)) = (t0.checked_add(600 * year), t0.checked_add(700 * year))
        else {
            return; // this platform's Instant cannot go that far
        };
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut q = SleepQueue::new(t0);
        for (label, deadline) in [(1, farther), (2, far), (3, t0 + year)] {
            let waker = Waker::from(Arc::new(Recorder(label, order.clone())));
            q.register(deadline, &waker);
        }
        assert_eq!(q.next_deadline(), Some(t0 + year));
        q.pop_due(t0 + year).unwrap().wake();
        assert_eq!(q.next_deadline(), Some(far));
        assert!(q.pop_due(far - Duration::from_nanos(1)).is_none());
        while let Some(waker) = q.pop_due(farther) {
            waker.wake();
        }
        assert_eq!(*order.lock().unwrap(), vec![3, 2, 1]);
        assert_eq!(q.len(), 0);
    }
}
