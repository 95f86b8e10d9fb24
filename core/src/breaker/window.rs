//! The sliding window of recent outcomes, striped so that threads record without contending.
//!
//! A window is split into `stripes` independent shards, each on its own cache lines. A thread
//! always records into the same stripe (picked round-robin the first time the thread records),
//! so two threads hammering one breaker write to different cache lines and never wait for each
//! other. Reading the rates sums every stripe; that happens only after a bad outcome, so the
//! common path (a fast success) touches nothing shared but the read-mostly state word.
//!
//! * **Count-based**: each stripe keeps a ring of its last `size` outcomes (as failed and slow
//!   bitsets) and, next to it, how many bits are set. A single thread therefore sees exactly
//!   the last `size` calls. Under concurrency the window is the union of each stripe's last
//!   `size` calls, which is a larger sample of recent calls. Recording a success that replaces
//!   a success is one atomic read-modify-write (claiming the ring position) and a read.
//! * **Time-based**: each stripe keeps `buckets` counters, one per slice of the window duration,
//!   tagged with the slice they count; a slice that has left the window is overwritten by the
//!   next record that falls in its slot.
//!
//! Every counter is tagged with the *epoch*, the low byte of the breaker generation in which the
//! window was last reset. A record carries the epoch of its permit; a record whose epoch no
//! longer matches (the breaker changed state after the permit was issued, even while the record
//! was in flight) is dropped instead of polluting the new window. The one gap: a count-window
//! record that stalls between claiming its ring position and setting its bit, for as long as it
//! takes the breaker to open, probe and close again, can leave one stray bit that later skews
//! the failure count by one (until the count next drains to zero). Epochs wrap after 256
//! resets, so a time-window record would have to stall for 256 state changes to be miscounted.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};

/// Keeps the value on its own pair of cache lines (adjacent-line prefetch pulls in two lines).
#[repr(align(128))]
#[derive(Debug, Default)]
pub(crate) struct CachePadded<T>(pub(crate) T);

/// Outcome bits.
const FAILED: u16 = 2;
const SLOW: u16 = 4;

/// What one call did, as the window sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) failed: bool,
    pub(crate) slow: bool,
}

impl Record {
    fn bits(self) -> u16 {
        (if self.failed { FAILED } else { 0 }) | if self.slow { SLOW } else { 0 }
    }

    fn is_bad(self) -> bool {
        self.failed || self.slow
    }
}

/// Totals over the window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) calls: u64,
    pub(crate) failures: u64,
    pub(crate) slow: u64,
}

/// The stripe this thread records into, modulo the stripe count (a power of two).
#[inline]
pub(crate) fn thread_stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    STRIPE.with(|cell| {
        let stripe = cell.get();
        if stripe != usize::MAX {
            return stripe;
        }
        let stripe = NEXT.fetch_add(1, Ordering::Relaxed) & (usize::MAX >> 1);
        cell.set(stripe);
        stripe
    })
}

/// The sliding window: count-based or time-based.
#[derive(Debug)]
pub(crate) enum Window {
    Count(CountWindow),
    Time(TimeWindow),
}

impl Window {
    pub(crate) fn count(size: u32, stripes: usize) -> Self {
        Window::Count(CountWindow::new(size, stripes))
    }

    pub(crate) fn time(bucket_nanos: u64, buckets: u32, stripes: usize) -> Self {
        Window::Time(TimeWindow::new(bucket_nanos, buckets, stripes))
    }

    /// Whether recording needs the current time.
    pub(crate) fn needs_time(&self) -> bool {
        matches!(self, Window::Time(_))
    }

    /// Records one outcome for a permit of `epoch`, at `nanos` since the breaker's origin (only
    /// read by time windows). Returns false if the window has moved on to another epoch.
    #[inline(always)]
    pub(crate) fn record(&self, epoch: u8, record: Record, nanos: u64) -> bool {
        match self {
            Window::Count(window) => window.record(thread_stripe(), epoch, record),
            Window::Time(window) => window.record(thread_stripe(), epoch, record, nanos),
        }
    }

    /// Sums the window as of `nanos` since the origin.
    pub(crate) fn counts(&self, epoch: u8, nanos: u64) -> Counts {
        match self {
            Window::Count(window) => window.counts(epoch),
            Window::Time(window) => window.counts(epoch, nanos),
        }
    }

    /// Empties the window and starts `epoch`. Callers serialize resets (the breaker holds its
    /// transition lock); records may race with a reset and are then dropped.
    pub(crate) fn reset(&self, epoch: u8) {
        match self {
            Window::Count(window) => window.reset(epoch),
            Window::Time(window) => window.reset(epoch),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Count-based

/// `head`: epoch (8 bits) | wrapped (1 bit) | next position (55 bits).
const HEAD_WRAPPED: u64 = 1 << 55;
const HEAD_POS: u64 = HEAD_WRAPPED - 1;
/// `bad`: epoch (8 bits) | failures (28 bits) | slow calls (28 bits).
const BAD_FIELD: u64 = (1 << 28) - 1;

#[inline]
fn epoch_of(word: u64) -> u8 {
    (word >> 56) as u8
}

#[inline]
fn with_epoch(epoch: u8) -> u64 {
    u64::from(epoch) << 56
}

#[derive(Debug)]
pub(crate) struct CountWindow {
    size: u64,
    mask: usize,
    stripes: Box<[CachePadded<CountStripe>]>,
}

/// One stripe's ring of the last `size` outcomes, as two bitsets (failed, slow) indexed by ring
/// position, plus the number of bits set in each. A success that replaces a success only reads
/// the bitsets, so recording it costs a single atomic read-modify-write (claiming the position).
#[derive(Debug)]
struct CountStripe {
    head: AtomicU64,
    bad: AtomicU64,
    /// For ring word `i` (positions `64 i .. 64 i + 63`): failed bits at `2 i`, slow bits at
    /// `2 i + 1`, so both live on the same cache line.
    bits: Box<[AtomicU64]>,
}

impl CountWindow {
    fn new(size: u32, stripes: usize) -> Self {
        debug_assert!(size > 0 && stripes.is_power_of_two());
        let words = (size as usize).div_ceil(64);
        let stripes: Box<[_]> = (0..stripes)
            .map(|_| {
                CachePadded(CountStripe {
                    head: AtomicU64::new(0),
                    bad: AtomicU64::new(0),
                    bits: (0..2 * words).map(|_| AtomicU64::new(0)).collect(),
                })
            })
            .collect();
        CountWindow {
            size: u64::from(size),
            mask: stripes_mask(&stripes),
            stripes,
        }
    }

    #[inline(always)]
    fn record(&self, stripe: usize, epoch: u8, record: Record) -> bool {
        let stripe = &self.stripes[stripe & self.mask].0;
        // A bad outcome is counted before its bit is set, and uncounted only after its bit has
        // been cleared (by whoever reuses the position), so the counts never fall below the
        // bits; every set or clear is a read-modify-write that reports the old bit, so they
        // never drift either.
        if record.is_bad() && !stripe.adjust_bad(epoch, record.bits(), true) {
            return false;
        }
        let Some(position) = stripe.claim(epoch, self.size) else {
            if record.is_bad() {
                stripe.adjust_bad(epoch, record.bits(), false);
            }
            return false;
        };
        let bit = 1u64 << (position % 64);
        let word = 2 * (position / 64);
        let evicted_failure = put_bit(&stripe.bits[word], bit, record.failed);
        let evicted_slow = put_bit(&stripe.bits[word + 1], bit, record.slow);
        if evicted_failure || evicted_slow {
            let evicted = if evicted_failure { FAILED } else { 0 } | if evicted_slow { SLOW } else { 0 };
            stripe.adjust_bad(epoch, evicted, false);
        }
        true
    }

    fn counts(&self, epoch: u8) -> Counts {
        let mut counts = Counts::default();
        for CachePadded(stripe) in self.stripes.iter() {
            let head = stripe.head.load(Ordering::Acquire);
            if epoch_of(head) != epoch {
                continue;
            }
            counts.calls += if head & HEAD_WRAPPED != 0 {
                self.size
            } else {
                head & HEAD_POS
            };
            let bad = stripe.bad.load(Ordering::Acquire);
            if epoch_of(bad) == epoch {
                counts.failures += (bad >> 28) & BAD_FIELD;
                counts.slow += bad & BAD_FIELD;
            }
        }
        // A bad outcome is counted an instant before its position is claimed.
        counts.failures = counts.failures.min(counts.calls);
        counts.slow = counts.slow.min(counts.calls);
        counts
    }

    fn reset(&self, epoch: u8) {
        for CachePadded(stripe) in self.stripes.iter() {
            stripe.head.store(with_epoch(epoch), Ordering::Release);
            stripe.bad.store(with_epoch(epoch), Ordering::Release);
            for word in stripe.bits.iter() {
                word.store(0, Ordering::Release);
            }
        }
    }
}

/// Sets `bit` in `word` to `on`; returns whether it was set before. Leaves a clear bit that
/// stays clear untouched (a plain load), which is the common case of a success replacing a
/// success.
#[inline(always)]
fn put_bit(word: &AtomicU64, bit: u64, on: bool) -> bool {
    if on {
        word.fetch_or(bit, Ordering::AcqRel) & bit != 0
    } else if word.load(Ordering::Acquire) & bit != 0 {
        word.fetch_and(!bit, Ordering::AcqRel) & bit != 0
    } else {
        false
    }
}

impl CountStripe {
    /// Takes the next ring position, if the stripe is still in `epoch`.
    #[inline(always)]
    fn claim(&self, epoch: u8, size: u64) -> Option<usize> {
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            if epoch_of(head) != epoch {
                return None;
            }
            let position = head & HEAD_POS;
            let next = if position + 1 == size {
                with_epoch(epoch) | HEAD_WRAPPED
            } else {
                head + 1
            };
            match self
                .head
                .compare_exchange_weak(head, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return Some(position as usize),
                Err(actual) => head = actual,
            }
        }
    }

    /// Adds (or removes) the failure and slow bits of `bits`, if the stripe is still in `epoch`.
    fn adjust_bad(&self, epoch: u8, bits: u16, add: bool) -> bool {
        let mut bad = self.bad.load(Ordering::Relaxed);
        loop {
            if epoch_of(bad) != epoch {
                return false;
            }
            let mut failures = (bad >> 28) & BAD_FIELD;
            let mut slow = bad & BAD_FIELD;
            let step = |count: u64, on: bool| match (on, add) {
                (false, _) => count,
                (true, true) => (count + 1).min(BAD_FIELD),
                (true, false) => count.saturating_sub(1),
            };
            failures = step(failures, bits & FAILED != 0);
            slow = step(slow, bits & SLOW != 0);
            let next = with_epoch(epoch) | failures << 28 | slow;
            match self
                .bad
                .compare_exchange_weak(bad, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(actual) => bad = actual,
            }
        }
    }
}

fn stripes_mask<T>(stripes: &[T]) -> usize {
    stripes.len() - 1
}

// ---------------------------------------------------------------------------------------------
// Time-based

/// A bucket word: tag (epoch 8 bits | bucket index 32 bits) in the high 40 bits, count in the
/// low 24 bits. A count saturates at 2^24 - 1 per stripe and bucket; past that the bucket is a
/// sample of its slice (all three counters stop together, so the rates stay right).
const COUNT_BITS: u32 = 24;
const COUNT_MAX: u64 = (1 << COUNT_BITS) - 1;

#[inline]
fn bucket_tag(epoch: u8, index: u64) -> u64 {
    (u64::from(epoch) << 32 | (index & 0xFFFF_FFFF)) << COUNT_BITS
}

#[derive(Debug)]
pub(crate) struct TimeWindow {
    bucket_nanos: u64,
    buckets: u64,
    mask: usize,
    epoch: AtomicU8,
    stripes: Box<[CachePadded<Box<[TimeBucket]>>]>,
}

#[derive(Debug, Default)]
struct TimeBucket {
    calls: AtomicU64,
    failures: AtomicU64,
    slow: AtomicU64,
}

impl TimeWindow {
    fn new(bucket_nanos: u64, buckets: u32, stripes: usize) -> Self {
        debug_assert!(bucket_nanos > 0 && buckets > 0 && stripes.is_power_of_two());
        let stripes: Box<[_]> = (0..stripes)
            .map(|_| CachePadded((0..buckets).map(|_| TimeBucket::default()).collect()))
            .collect();
        TimeWindow {
            bucket_nanos,
            buckets: u64::from(buckets),
            mask: stripes_mask(&stripes),
            epoch: AtomicU8::new(0),
            stripes,
        }
    }

    #[inline]
    fn record(&self, stripe: usize, epoch: u8, record: Record, nanos: u64) -> bool {
        let index = nanos / self.bucket_nanos;
        let bucket = &self.stripes[stripe & self.mask].0[(index % self.buckets) as usize];
        let tag = bucket_tag(epoch, index);
        // `calls` decides: if it refuses (stale epoch, stale slice, saturated) so do the others.
        if !self.bump(&bucket.calls, tag, epoch) {
            return false;
        }
        if record.failed {
            self.bump(&bucket.failures, tag, epoch);
        }
        if record.slow {
            self.bump(&bucket.slow, tag, epoch);
        }
        true
    }

    /// Adds one to `word` for the slice `tag`, starting the slice over if the word still holds
    /// an older one. Refuses if the window is in another epoch, the word already holds a newer
    /// slice, or the count is saturated.
    fn bump(&self, word: &AtomicU64, tag: u64, epoch: u8) -> bool {
        let mut current = word.load(Ordering::Acquire);
        loop {
            let current_tag = current & !COUNT_MAX;
            let next = if current_tag == tag {
                if current & COUNT_MAX == COUNT_MAX {
                    return false;
                }
                current + 1
            } else {
                // A reset stores the new epoch before clearing the words, so having read the word
                // we see the epoch at least as new as the reset that wrote it.
                if self.epoch.load(Ordering::Acquire) != epoch {
                    return false;
                }
                let current_epoch = (current_tag >> (COUNT_BITS + 32)) as u8;
                let current_index = (current_tag >> COUNT_BITS) & 0xFFFF_FFFF;
                let index = (tag >> COUNT_BITS) & 0xFFFF_FFFF;
                // Same epoch and a later slice (modulo 2^32): this record is late; drop it.
                if current_epoch == epoch && (current_index.wrapping_sub(index) as u32) < (1 << 31)
                {
                    return false;
                }
                tag | 1
            };
            match word.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }

    fn counts(&self, epoch: u8, nanos: u64) -> Counts {
        let now_index = nanos / self.bucket_nanos;
        let oldest = now_index.saturating_sub(self.buckets - 1);
        let mut counts = Counts::default();
        for CachePadded(buckets) in self.stripes.iter() {
            for index in oldest..=now_index {
                let bucket = &buckets[(index % self.buckets) as usize];
                let tag = bucket_tag(epoch, index);
                let read = |word: &AtomicU64| {
                    let value = word.load(Ordering::Acquire);
                    if value & !COUNT_MAX == tag {
                        value & COUNT_MAX
                    } else {
                        0
                    }
                };
                counts.calls += read(&bucket.calls);
                counts.failures += read(&bucket.failures);
                counts.slow += read(&bucket.slow);
            }
        }
        counts.failures = counts.failures.min(counts.calls);
        counts.slow = counts.slow.min(counts.calls);
        counts
    }

    fn reset(&self, epoch: u8) {
        self.epoch.store(epoch, Ordering::Release);
        // Index 0 of the new epoch with a zero count: an empty bucket for every purpose.
        let empty = bucket_tag(epoch, 0);
        for CachePadded(buckets) in self.stripes.iter() {
            for bucket in buckets.iter() {
                bucket.calls.store(empty, Ordering::Release);
                bucket.failures.store(empty, Ordering::Release);
                bucket.slow.store(empty, Ordering::Release);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: Record = Record {
        failed: false,
        slow: false,
    };
    const FAIL: Record = Record {
        failed: true,
        slow: false,
    };
    const SLOW_FAIL: Record = Record {
        failed: true,
        slow: true,
    };

    fn counts(calls: u64, failures: u64, slow: u64) -> Counts {
        Counts {
            calls,
            failures,
            slow,
        }
    }

    #[test]
    fn count_window_keeps_the_last_n_outcomes() {
        let window = Window::count(3, 1);
        window.reset(7);
        assert!(window.record(7, FAIL, 0));
        assert!(window.record(7, SLOW_FAIL, 0));
        assert_eq!(window.counts(7, 0), counts(2, 2, 1));
        assert!(window.record(7, OK, 0));
        assert!(window.record(7, OK, 0)); // evicts the first failure
        assert_eq!(window.counts(7, 0), counts(3, 1, 1));
        assert!(window.record(7, OK, 0)); // evicts the slow failure
        assert_eq!(window.counts(7, 0), counts(3, 0, 0));
    }

    #[test]
    fn count_window_spans_several_bit_words() {
        let window = Window::count(130, 1);
        window.reset(0);
        for i in 0..130 {
            assert!(window.record(0, if i % 2 == 0 { SLOW_FAIL } else { OK }, 0));
        }
        assert_eq!(window.counts(0, 0), counts(130, 65, 65));
        for evicted in 1..=130 {
            assert!(window.record(0, OK, 0));
            let bad = 65 - (evicted + 1) / 2;
            assert_eq!(window.counts(0, 0), counts(130, bad, bad), "after {evicted}");
        }
    }

    #[test]
    fn count_window_drops_records_of_another_epoch() {
        let window = Window::count(4, 2);
        window.reset(1);
        assert!(window.record(1, FAIL, 0));
        window.reset(2);
        assert!(!window.record(1, FAIL, 0));
        assert_eq!(window.counts(2, 0), counts(0, 0, 0));
        assert_eq!(window.counts(1, 0), counts(0, 0, 0));
    }

    #[test]
    fn count_window_sums_stripes() {
        let window = CountWindow::new(2, 4);
        window.reset(0);
        assert!(window.record(0, 0, FAIL));
        assert!(window.record(1, 0, OK));
        assert!(window.record(1, 0, OK));
        assert!(window.record(1, 0, OK));
        assert_eq!(window.counts(0), counts(3, 1, 0));
    }

    #[test]
    fn time_window_forgets_slices_that_left() {
        // 4 buckets of 10 ns: a 40 ns window.
        let window = Window::time(10, 4, 1);
        window.reset(3);
        assert!(window.record(3, FAIL, 5));
        assert!(window.record(3, OK, 15));
        assert_eq!(window.counts(3, 39), counts(2, 1, 0));
        // At 40 ns the slice [0, 10) has left the window.
        assert_eq!(window.counts(3, 40), counts(1, 0, 0));
        // A record in the same slot, four slices later, starts the slot over.
        assert!(window.record(3, SLOW_FAIL, 45));
        assert_eq!(window.counts(3, 45), counts(2, 1, 1));
        // A late record for the slice the slot no longer holds is dropped.
        assert!(!window.record(3, FAIL, 6));
        assert_eq!(window.counts(3, 45), counts(2, 1, 1));
    }

    #[test]
    fn time_window_drops_records_of_another_epoch() {
        let window = Window::time(10, 2, 1);
        window.reset(1);
        assert!(window.record(1, FAIL, 0));
        window.reset(2);
        assert!(!window.record(1, FAIL, 0));
        assert_eq!(window.counts(2, 0), counts(0, 0, 0));
    }

    #[test]
    fn every_thread_gets_a_stable_stripe() {
        let here = thread_stripe();
        assert_eq!(thread_stripe(), here);
        let there = std::thread::spawn(thread_stripe).join().unwrap();
        assert_ne!(here, there);
    }
}
