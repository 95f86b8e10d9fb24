//! The sleeps registered with a [`ManualTimer`](super::ManualTimer), in order of deadline and
//! then registration, over a slab that holds each sleep's waker.
//!
//! Cancelling a sleep frees its slot at once but leaves its entry behind (lazy deletion): an
//! entry whose slot no longer carries its sequence number is stale, and is skipped when it comes
//! up. When stale entries outnumber live ones they are all dropped, so sleeps that are made and
//! dropped in a loop never pile up. Registering, cancelling and firing a sleep allocate nothing
//! once the structures have grown to the number of sleeps pending at once.
//!
//! A simulation keeps thousands of sleeps pending, most of them due within milliseconds (the
//! reads in flight, their hedges' delays) and some far in the future (the arrivals of later
//! requests, long timeouts). So the queue is split in two: a calendar ([`Wheel`]) of 4,096
//! slots of 65.5 µs holds the entries due within 0.27 s of the clock's present, where
//! registering is a push into a slot and firing a pop off a slot sorted when first reached; a
//! 4-ary heap (`far`) holds the rest, which move into the calendar as the present reaches
//! them. Deadlines are kept in nanoseconds since the clock's origin; those more than 584 years
//! past it do not fit, and wait, exactly ordered, in an overflow map that is consulted only when
//! the calendar and the heap are empty.

use std::collections::BTreeMap;
use std::num::NonZeroU64;
use std::task::Waker;
use std::time::{Duration, Instant};

use super::heap::{self, Entry};
use super::wheel::{Wheel, SHIFT};

/// One registration: the slot holding its waker and its sequence number, which is unique and
/// gives its place in registration order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Key {
    slot: u32,
    seq: NonZeroU64,
}

struct Slot {
    /// The sequence number of the registration in this slot; 0 while the slot is free.
    seq: u64,
    waker: Option<Waker>,
}

/// Stale entries tolerated beyond the number of live ones before they are dropped.
const SLACK: usize = 64;

pub(super) struct SleepQueue {
    origin: Instant,
    /// Entries due within the window of the present.
    wheel: Wheel,
    /// Entries due after the wheel's window, as a heap: each is later than every entry in the
    /// wheel.
    far: Vec<Entry>,
    /// Registrations whose deadline is too far from `origin` for `Entry::at`, by (deadline,
    /// seq), with their slots; all of them are later than every other entry.
    overflow: BTreeMap<(Instant, u64), u32>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
    next_seq: u64,
}

/// `instant` in nanoseconds since `origin` (0 before it); `None` if that does not fit in a
/// `u64` (584 years on).
pub(super) fn nanos_since(origin: Instant, instant: Instant) -> Option<u64> {
    let since = instant.saturating_duration_since(origin);
    since
        .as_secs()
        .checked_mul(1_000_000_000)?
        .checked_add(u64::from(since.subsec_nanos()))
}

fn is_live(slots: &[Slot], entry: &Entry) -> bool {
    slots[entry.slot as usize].seq == entry.seq
}

impl SleepQueue {
    /// An empty queue for deadlines at or after `origin`.
    pub(super) fn new(origin: Instant) -> Self {
        SleepQueue {
            origin,
            wheel: Wheel::new(),
            far: Vec::new(),
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

    /// `instant` in nanoseconds since the origin (0 before it); `None` if that does not fit.
    pub(super) fn nanos(&self, instant: Instant) -> Option<u64> {
        nanos_since(self.origin, instant)
    }

    /// Registers a sleep due at `deadline` (whose [`nanos`](SleepQueue::nanos) are `at`), after
    /// every sleep registered before it with the same deadline.
    pub(super) fn register(&mut self, deadline: Instant, at: Option<u64>, waker: &Waker) -> Key {
        debug_assert!(at.is_none() || at == self.nanos(deadline));
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
        match at {
            Some(at) => {
                let entry = Entry {
                    at,
                    seq,
                    slot: index,
                };
                if self.wheel.covers(at) {
                    self.wheel.push(entry);
                } else {
                    heap::push(&mut self.far, entry);
                }
            }
            None => {
                self.overflow.insert((deadline, seq), index);
            }
        }
        self.live += 1;
        Key {
            slot: index,
            seq: NonZeroU64::new(seq).expect("sequence numbers start at 1"),
        }
    }

    /// Whether `key` is still registered (neither fired nor removed).
    pub(super) fn contains(&self, key: Key) -> bool {
        self.slots[key.slot as usize].seq == key.seq.get()
    }

    /// Makes a registered sleep wake `waker`. Returns the waker it replaces, if any, for the
    /// caller to drop outside its lock.
    pub(super) fn set_waker(&mut self, key: Key, waker: &Waker) -> Option<Waker> {
        debug_assert!(self.contains(key));
        let slot = &mut self.slots[key.slot as usize];
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
        if self.wheel.len() + self.far.len() + self.overflow.len() > 2 * self.live + SLACK {
            self.compact();
        }
        waker
    }

    /// The earliest deadline of a registered sleep.
    pub(super) fn next_deadline(&mut self) -> Option<Instant> {
        let slots = &self.slots;
        let top = match self.wheel.first(|entry| is_live(slots, entry)) {
            Some(top) => Some(top),
            None => self.far_top(),
        };
        match top {
            Some(top) => Some(self.origin + Duration::from_nanos(top.at)),
            None => self.overflow_top(),
        }
    }

    /// Removes the earliest registered sleep if it is due at `now` (whose
    /// [`nanos`](SleepQueue::nanos) are `now_at`, or `u64::MAX` if they do not fit), and
    /// returns its waker. Called repeatedly, yields the due sleeps by deadline, then
    /// registration order; the call that finds none due moves the wheel's window to `now`.
    pub(super) fn pop_due(&mut self, now: Instant, now_at: u64) -> Option<Waker> {
        debug_assert_eq!(now_at, self.nanos(now).unwrap_or(u64::MAX));
        loop {
            let slots = &self.slots;
            match self.wheel.first(|entry| is_live(slots, entry)) {
                Some(top) if top.at <= now_at => {
                    self.wheel.pop_first();
                    return self.release(top.slot);
                }
                Some(_) => {
                    // Every entry before the present is gone: the window may move up to it.
                    self.move_window(now_at >> SHIFT);
                    return None;
                }
                None => {
                    let Some(top) = self.far_top() else { break };
                    // The wheel is empty: start its window at the present, or earlier at the
                    // next far entry if that is due, and bring in what it covers.
                    self.move_window((now_at.min(top.at)) >> SHIFT);
                    if !self.wheel.covers(top.at) {
                        return None; // not due: beyond the window of the present
                    }
                }
            }
        }
        if self.overflow_top()? > now {
            return None;
        }
        let (_, slot) = self.overflow.pop_first()?;
        self.release(slot)
    }

    /// Moves the wheel's window on to start at absolute slot `base` (if that is later), and
    /// moves the far entries it now covers into it. No entry may be in the wheel before `base`.
    fn move_window(&mut self, base: u64) {
        if base <= self.wheel.base() {
            return;
        }
        self.wheel.rebase(base);
        // Far entries are later than every wheel entry, so they land after them.
        while let Some(top) = self.far.first() {
            if !self.wheel.covers(top.at) {
                break;
            }
            let entry = heap::pop(&mut self.far);
            if is_live(&self.slots, &entry) {
                self.wheel.push(entry);
            }
        }
    }

    /// The earliest live far entry, dropping stale ones on the way.
    fn far_top(&mut self) -> Option<Entry> {
        while let Some(top) = self.far.first() {
            if is_live(&self.slots, top) {
                return Some(*top);
            }
            heap::pop(&mut self.far);
        }
        None
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

    /// Drops every stale entry.
    fn compact(&mut self) {
        let slots = &self.slots;
        self.wheel.retain(|entry| is_live(slots, entry));
        heap::retain(&mut self.far, |entry| is_live(slots, entry));
        self.overflow
            .retain(|&(_, seq), &mut slot| slots[slot as usize].seq == seq);
    }
}

/// The span of the wheel's window, in nanoseconds.
#[cfg(test)]
const WINDOW: u64 = super::wheel::SLOTS << SHIFT;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::task::Wake;

    fn register(q: &mut SleepQueue, deadline: Instant, waker: &Waker) -> Key {
        let at = q.nanos(deadline);
        q.register(deadline, at, waker)
    }

    fn pop_due(q: &mut SleepQueue, now: Instant) -> Option<Waker> {
        let at = q.nanos(now).unwrap_or(u64::MAX);
        q.pop_due(now, at)
    }

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
            register(&mut q, ms(at), &waker);
        }
        while let Some(waker) = pop_due(&mut q, ms(30)) {
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
                keys.push((
                    register(&mut q, t0 + Duration::from_nanos(at), &waker()),
                    at,
                    seq,
                ));
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
                while pop_due(&mut q, deadline).is_some() {
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
    fn one_jump_past_many_windows_pops_everything_in_order() {
        let t0 = Instant::now();
        let mut q = SleepQueue::new(t0);
        let mut rng = fastrand::Rng::with_seed(7);
        let mut model = Vec::new();
        let mut now = 0;
        for round in 1..=6u64 {
            for _ in 0..300 {
                let at = now + rng.u64(1..WINDOW * 12);
                let key = register(&mut q, t0 + Duration::from_nanos(at), &waker());
                model.push((at, key));
            }
            // Jump over several windows at once, as `advance` does.
            now += WINDOW * 2 * round;
            let mut due: Vec<_> = model.iter().filter(|&&(at, _)| at <= now).collect();
            due.sort_by_key(|&&(at, key)| (at, key.seq));
            for &&(_, key) in &due {
                assert!(q.contains(key));
                assert!(pop_due(&mut q, t0 + Duration::from_nanos(now)).is_some());
                assert!(!q.contains(key), "popped out of order");
            }
            assert!(pop_due(&mut q, t0 + Duration::from_nanos(now)).is_none());
            model.retain(|&(at, _)| at > now);
            assert_eq!(q.len(), model.len());
        }
    }

    #[test]
    fn removed_sleeps_are_skipped_and_do_not_pile_up() {
        let t0 = Instant::now();
        let mut q = SleepQueue::new(t0);
        let keep = register(&mut q, t0 + Duration::from_secs(5), &waker());
        for i in 0..10_000u64 {
            let key = register(&mut q, t0 + Duration::from_millis(i % 100 + 1), &waker());
            assert!(q.remove(key).is_some());
            assert!(q.remove(key).is_none());
            assert!(!q.contains(key));
        }
        assert_eq!(q.len(), 1);
        let entries = q.wheel.len() + q.far.len();
        assert!(entries <= 2 + SLACK, "{entries} entries");
        assert!(q.slots.len() <= 2);
        assert!(pop_due(&mut q, t0 + Duration::from_secs(1)).is_none());
        assert_eq!(q.next_deadline(), Some(t0 + Duration::from_secs(5)));
        assert!(q.contains(keep));
    }

    #[test]
    fn a_reused_slot_does_not_revive_a_stale_entry() {
        let t0 = Instant::now();
        let mut q = SleepQueue::new(t0);
        let early = register(&mut q, t0 + Duration::from_millis(1), &waker());
        q.remove(early);
        // Takes the freed slot, with a later deadline.
        let late = register(&mut q, t0 + Duration::from_millis(9), &waker());
        assert_eq!(late.slot, early.slot);
        assert!(pop_due(&mut q, t0 + Duration::from_millis(5)).is_none());
        assert_eq!(q.len(), 1);
        assert!(pop_due(&mut q, t0 + Duration::from_millis(9)).is_some());
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
            register(&mut q, deadline, &waker);
        }
        assert_eq!(q.next_deadline(), Some(t0 + year));
        pop_due(&mut q, t0 + year).unwrap().wake();
        assert_eq!(q.next_deadline(), Some(far));
        assert!(pop_due(&mut q, far - Duration::from_nanos(1)).is_none());
        while let Some(waker) = pop_due(&mut q, farther) {
            waker.wake();
        }
        assert_eq!(*order.lock().unwrap(), vec![3, 2, 1]);
        assert_eq!(q.len(), 0);
    }
}
