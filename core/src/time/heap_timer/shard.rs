//! One shard of the [`HeapTimer`](super::HeapTimer): a min-heap of deadlines under a mutex, a
//! slot per registration (its state and waker, read without the lock), and one async-io timer
//! that wakes the shard at its earliest deadline.
//!
//! A registration takes the lock, pushes its deadline and, only if that deadline is earlier than
//! the one the async-io timer is armed at, reads the clock and moves the async-io timer. A poll
//! reads the slot's state. A cancellation (a sleep dropped before it fired) marks the slot with
//! one atomic operation and leaves its heap entry behind; the entries left behind are swept when
//! they are more than half of the heap (checked at each registration, and by a cancellation at
//! every power of two of them), or popped when they reach the top.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use futures_util::task::AtomicWaker;

/// Slot states. `Idle` slots are on the free list; `Armed` and `Cancelled` ones are in the heap;
/// `Fired` ones were taken off the heap by the shard and wait for their sleep to be dropped.
const IDLE: u8 = 0;
const ARMED: u8 = 1;
const FIRED: u8 = 2;
const CANCELLED: u8 = 3;

/// Cancelled entries tolerated in the heap before it is swept, whatever its size.
pub(super) const SWEEP_FLOOR: usize = 32;

/// What one registration shares with the shard.
#[derive(Default)]
struct Slot {
    state: AtomicU8,
    waker: AtomicWaker,
}

/// log2 of the first chunk's length; chunk `c` holds `FIRST << c` slots.
const FIRST_BITS: u32 = 5;
/// Enough chunks for every `u32` key.
const CHUNKS: usize = 28;

/// Slots in chunks that never move, so that a sleep finds its slot without the lock.
struct Slots {
    chunks: [OnceLock<Box<[Slot]>>; CHUNKS],
}

impl Slots {
    fn new() -> Self {
        Slots {
            chunks: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// The chunk and offset of `key`.
    #[inline]
    fn locate(key: u32) -> (usize, usize) {
        let i = u64::from(key) + (1 << FIRST_BITS);
        let chunk = 63 - i.leading_zeros() - FIRST_BITS;
        (chunk as usize, (i - ((1 << FIRST_BITS) << chunk)) as usize)
    }

    /// The slot of a key the shard handed out (its chunk exists).
    #[inline]
    fn get(&self, key: u32) -> &Slot {
        let (chunk, offset) = Self::locate(key);
        let chunk = self.chunks[chunk]
            .get()
            .expect("a key's chunk is made before it is handed out");
        &chunk[offset]
    }

    /// Makes the chunk of `key` if it is the first key of a new chunk. With the shard's lock.
    fn grow_to(&self, key: u32) {
        let (chunk, _) = Self::locate(key);
        self.chunks[chunk].get_or_init(|| {
            (0..(1usize << FIRST_BITS) << chunk)
                .map(|_| Slot::default())
                .collect()
        });
    }
}

/// A deadline in the heap: ordered by deadline, then key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    deadline: Instant,
    key: u32,
}

/// The shard's state behind its lock.
struct Inner {
    heap: BinaryHeap<Reverse<Entry>>,
    free: Vec<u32>,
    /// Keys handed out so far (and slots made).
    made: u32,
    /// The deadline the async-io timer is armed at, if any.
    armed: Option<Instant>,
    /// Made at the first arming.
    driver: Option<async_io::Timer>,
    /// Wakes this shard (runs [`Shard::fire`]); made at the first arming.
    waker: Option<Waker>,
}

/// What [`Shard::register`] did.
pub(super) enum Registered {
    /// In the heap under this key (and possibly fired already: poll it).
    Key(u32),
    /// The deadline had passed: nothing was registered.
    Due,
}

/// One shard: see the module docs.
pub(super) struct Shard {
    inner: Mutex<Inner>,
    /// Cancelled entries still in the heap. Updated without the lock, so it may briefly wrap
    /// below zero; read as signed.
    cancelled: AtomicUsize,
    slots: Slots,
}

impl Shard {
    pub(super) fn new() -> Self {
        Shard {
            inner: Mutex::new(Inner {
                heap: BinaryHeap::new(),
                free: Vec::new(),
                made: 0,
                armed: None,
                driver: None,
                waker: None,
            }),
            cancelled: AtomicUsize::new(0),
            slots: Slots::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn cancelled(&self) -> usize {
        usize::try_from(self.cancelled.load(Ordering::Relaxed) as isize).unwrap_or(0)
    }

    /// Registers `deadline`, to wake `waker` once it has passed.
    pub(super) fn register(&'static self, deadline: Instant, waker: &Waker) -> Registered {
        let mut inner = self.lock();
        let earliest = inner.armed.is_none_or(|armed| deadline < armed);
        // Only a deadline that would move the async-io timer reads the clock.
        if earliest && deadline <= Instant::now() {
            return Registered::Due;
        }
        let cancelled = self.cancelled();
        if cancelled > SWEEP_FLOOR && cancelled * 2 > inner.heap.len() {
            self.sweep(&mut inner);
        }
        let key = match inner.free.pop() {
            Some(key) => key,
            None => {
                let key = inner.made;
                self.slots.grow_to(key);
                inner.made = key.checked_add(1).expect("fewer than 2^32 sleeps at once");
                key
            }
        };
        let slot = self.slots.get(key);
        slot.waker.register(waker);
        slot.state.store(ARMED, Ordering::Release);
        inner.heap.push(Reverse(Entry { deadline, key }));
        if earliest && !self.arm(&mut inner, deadline) {
            // Due between the check above and the arming: fire it (and anything else due).
            let mut woken = Vec::new();
            self.fire_locked(&mut inner, &mut woken);
            drop(inner);
            woken.into_iter().for_each(Waker::wake);
        }
        Registered::Key(key)
    }

    /// Whether `key` has fired, registering `waker` to be woken when it does if not.
    #[inline]
    pub(super) fn poll(&self, key: u32, waker: &Waker) -> Poll<()> {
        let slot = self.slots.get(key);
        if slot.state.load(Ordering::Acquire) == FIRED {
            return Poll::Ready(());
        }
        slot.waker.register(waker);
        if slot.state.load(Ordering::Acquire) == FIRED {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Whether `key` has fired.
    #[inline]
    pub(super) fn fired(&self, key: u32) -> bool {
        self.slots.get(key).state.load(Ordering::Acquire) == FIRED
    }

    /// Gives `key` back: its sleep is dropped (or done). Takes the lock only if it fired.
    pub(super) fn cancel(&self, key: u32) {
        let slot = self.slots.get(key);
        drop(slot.waker.take());
        match slot
            .state
            .compare_exchange(ARMED, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                let cancelled = self
                    .cancelled
                    .fetch_add(1, Ordering::Relaxed)
                    .wrapping_add(1);
                // Sleeps dropped in a shard where nothing registers any more are swept here:
                // tried at 64, 128, 256 ... cancelled entries, swept once they are half the heap.
                if cancelled > SWEEP_FLOOR && cancelled.is_power_of_two() {
                    if let Ok(mut inner) = self.inner.try_lock() {
                        if self.cancelled() * 2 > inner.heap.len() {
                            self.sweep(&mut inner);
                        }
                    }
                }
            }
            Err(_) => {
                // Fired: the heap no longer holds it, so it can be reused at once.
                let mut inner = self.lock();
                slot.state.store(IDLE, Ordering::Release);
                inner.free.push(key);
            }
        }
    }

    /// Arms the async-io timer at `at`; false if `at` had already passed (nothing is armed).
    fn arm(&'static self, inner: &mut Inner, at: Instant) -> bool {
        let Inner { driver, waker, .. } = inner;
        let waker = waker.get_or_insert_with(|| Waker::from(Arc::new(Driver(self))));
        let driver = driver.get_or_insert_with(async_io::Timer::never);
        driver.set_at(at);
        let pending = Pin::new(driver)
            .poll(&mut Context::from_waker(waker))
            .is_pending();
        inner.armed = pending.then_some(at);
        pending
    }

    /// Fires every due sleep and re-arms at the earliest remaining one; the shard's waker runs it.
    fn fire(&'static self) {
        let mut woken = Vec::new();
        let mut inner = self.lock();
        self.fire_locked(&mut inner, &mut woken);
        drop(inner);
        woken.into_iter().for_each(Waker::wake);
    }

    fn fire_locked(&'static self, inner: &mut Inner, woken: &mut Vec<Waker>) {
        loop {
            let now = Instant::now();
            while let Some(&Reverse(top)) = inner.heap.peek() {
                let slot = self.slots.get(top.key);
                let due = top.deadline <= now;
                if !due && slot.state.load(Ordering::Acquire) != CANCELLED {
                    break;
                }
                inner.heap.pop();
                if due
                    && slot
                        .state
                        .compare_exchange(ARMED, FIRED, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                {
                    woken.extend(slot.waker.take());
                } else {
                    // Cancelled: the heap held the last reference to the key.
                    slot.state.store(IDLE, Ordering::Release);
                    inner.free.push(top.key);
                    self.cancelled.fetch_sub(1, Ordering::Relaxed);
                }
            }
            match inner.heap.peek() {
                Some(&Reverse(top)) => {
                    if self.arm(inner, top.deadline) {
                        return;
                    }
                }
                None => {
                    inner.armed = None;
                    return;
                }
            }
        }
    }

    /// Drops every cancelled entry from the heap and frees its key.
    fn sweep(&self, inner: &mut Inner) {
        let Inner { heap, free, .. } = inner;
        let mut swept = 0usize;
        heap.retain(|Reverse(entry)| {
            let slot = self.slots.get(entry.key);
            if slot.state.load(Ordering::Acquire) == CANCELLED {
                slot.state.store(IDLE, Ordering::Release);
                free.push(entry.key);
                swept += 1;
                false
            } else {
                true
            }
        });
        self.cancelled.fetch_sub(swept, Ordering::Relaxed);
    }

    /// Entries in the heap, slots made, and the deadline armed (for tests).
    #[cfg(test)]
    pub(super) fn census(&self) -> (usize, u32, Option<Instant>) {
        let inner = self.lock();
        (inner.heap.len(), inner.made, inner.armed)
    }

    /// Whether every key made is back on the free list, idle, with no waker (for tests).
    #[cfg(test)]
    pub(super) fn all_keys_free(&self) -> bool {
        let inner = self.lock();
        let mut free = inner.free.clone();
        free.sort_unstable();
        free.dedup();
        free.len() == inner.made as usize
            && inner.free.len() == free.len()
            && (0..inner.made).all(|key| {
                let slot = self.slots.get(key);
                slot.state.load(Ordering::Acquire) == IDLE && slot.waker.take().is_none()
            })
    }
}

/// The waker the async-io timer holds: firing the shard is waking it.
struct Driver(&'static Shard);

impl Wake for Driver {
    fn wake(self: Arc<Self>) {
        self.0.fire();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fire();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_onto_chunks_without_gaps_or_overlap() {
        assert_eq!(Slots::locate(0), (0, 0));
        assert_eq!(Slots::locate(31), (0, 31));
        assert_eq!(Slots::locate(32), (1, 0));
        assert_eq!(Slots::locate(95), (1, 63));
        assert_eq!(Slots::locate(96), (2, 0));
        let (chunk, offset) = Slots::locate(u32::MAX);
        assert!(chunk < CHUNKS);
        assert!(offset < (1 << FIRST_BITS) << chunk);
        let mut expected = (0, 0);
        for key in 0..10_000u32 {
            assert_eq!(Slots::locate(key), expected, "{key}");
            expected.1 += 1;
            if expected.1 == (1 << FIRST_BITS) << expected.0 {
                expected = (expected.0 + 1, 0);
            }
        }
    }
}
