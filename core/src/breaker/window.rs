//! The sliding window of recent outcomes, striped so that threads record without contending.
//!
//! The window is split into stripes, each on its own cache lines. A thread claims a stripe of
//! its own the first time it records (live threads are numbered densely, and a thread takes
//! the first free stripe among the four its number points at; an exiting thread hands its
//! number, and its stripes, to the next new thread) and from
//! then on is that stripe's only writer: it records with plain loads and stores, no lock
//! prefix (but for one shared `fetch_add` per 512 calls in a count window), and two threads
//! never write the same cache line. A thread that finds its stripe taken by another thread
//! (more threads than stripes) records into one *shared* stripe instead, with
//! compare-and-swap. Reading the rates sums every stripe; that happens only after a bad
//! outcome, so the common path (a fast success) touches nothing shared but read-mostly words.
//!
//! * **Count-based** ([`count_window`](super::count_window)): every call gets a global
//!   position (stripes take them 512 at a time from one shared counter) and the window is the
//!   `N` calls with the highest positions, whichever stripes hold them: the last `N` calls, up
//!   to an error bound documented there. A single thread sees exactly its last `N` calls, and
//!   the outcomes of a thread that goes idle leave the window as other threads record.
//! * **Time-based** ([`time_window`](super::time_window)): each stripe keeps `buckets`
//!   counters, one per slice of the window duration, tagged with the slice they count; a slice
//!   that has left the window is overwritten by the next record that falls in its slot.
//!
//! Every counter is tagged with the *epoch*, the low byte of the breaker generation in which the
//! window was last reset. A record carries the epoch of its permit; a record whose epoch is not
//! the window's (the breaker changed state after the permit was issued, even while the record
//! was in flight) is dropped, or lands in counters tagged with its old epoch, which no one
//! reads. A reset only moves the epoch on and marks the owned stripes stale; each owner starts
//! its own stripe over on its next record, so an owned stripe never has two writers. (The one
//! gap: a record into the *shared* count stripe that stalls between claiming its place and
//! writing its outcome, for as long as the breaker takes to open, probe and close again, can
//! leave a stray outcome in the new window until the window moves past it.)

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};

use super::count_window::{self, CountLayout};
use super::time_window::{self, TimeLayout};

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
    pub(crate) fn bits(self) -> u16 {
        (if self.failed { FAILED } else { 0 }) | if self.slow { SLOW } else { 0 }
    }

    pub(crate) fn is_bad(self) -> bool {
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

/// A number unique among live threads (never 0), the lowest free one: the thread's stripe is
/// this modulo the stripe count, so live threads spread over the stripes. When a thread exits
/// its token goes back to the pool and the next new thread inherits it, with the stripes it
/// owns (the hand-over is a release/acquire pair, so the new owner sees everything the old one
/// wrote): short-lived threads do not use up the stripes.
#[inline(always)]
pub(crate) fn thread_token() -> usize {
    TOKEN
        .try_with(|guard| {
            let token = guard.0.get();
            if token != 0 {
                return token;
            }
            let token = tokens::take();
            guard.0.set(token);
            token
        })
        .unwrap_or(EXITING)
}

/// The token of a thread whose token has already gone back to the pool (it is running thread
/// destructors): it owns nothing and claims nothing.
const EXITING: usize = usize::MAX - 1;

struct TokenGuard(Cell<usize>);

impl Drop for TokenGuard {
    fn drop(&mut self) {
        tokens::give_back(self.0.get());
    }
}

thread_local! {
    static TOKEN: TokenGuard = const { TokenGuard(Cell::new(0)) };
}

mod tokens {
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

    /// Tokens 1 ..= 256, recycled: a set bit is a token in use.
    static IN_USE: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
    /// Beyond 256 live threads, tokens are not recycled.
    static NEXT: AtomicUsize = AtomicUsize::new(257);

    pub(super) fn take() -> usize {
        for (index, word) in IN_USE.iter().enumerate() {
            let mut used = word.load(Ordering::Relaxed);
            while used != u64::MAX {
                let bit = (!used).trailing_zeros();
                match word.compare_exchange_weak(
                    used,
                    used | 1 << bit,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return 1 + 64 * index + bit as usize,
                    Err(actual) => used = actual,
                }
            }
        }
        NEXT.fetch_add(1, Ordering::Relaxed).min(super::EXITING - 1)
    }

    pub(super) fn give_back(token: usize) {
        if (1..=256).contains(&token) {
            let index = token - 1;
            IN_USE[index / 64].fetch_and(!(1 << (index % 64)), Ordering::AcqRel);
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Layout {
    Count(CountLayout),
    Time(TimeLayout),
}

/// The sliding window.
#[derive(Debug)]
pub(crate) struct Window {
    layout: Layout,
    /// The current epoch. Owned stripes check it before writing; the shared stripe's words
    /// carry it and are cleared on reset.
    epoch: AtomicU8,
    mask: usize,
    owned: Box<[CachePadded<Stripe>]>,
    shared: CachePadded<Stripe>,
    /// Count layout: the next global call position (see [`count_window`]).
    sequence: CachePadded<AtomicU64>,
}

/// One stripe. Count layout: `head` is epoch (8 bits) | calls recorded in the epoch (56 bits),
/// `bad` the running totals, `words` the chunks (see [`count_window`]). Time layout: `words`
/// holds `calls, failures, slow` for each bucket; `head` and `bad` are unused.
#[derive(Debug)]
pub(crate) struct Stripe {
    /// The owning thread's token, 0 while unclaimed (`NO_OWNER` for stripes no thread may
    /// claim).
    owner: AtomicUsize,
    pub(crate) head: AtomicU64,
    pub(crate) bad: AtomicU64,
    /// Time layout, owned stripes: the owner's memo of the slice it last recorded into, its
    /// start in nanoseconds and its index and first word (see [`time_window`]).
    pub(crate) slice_start: AtomicU64,
    pub(crate) slice: AtomicU64,
    pub(crate) words: Words,
}

/// A stripe's words, in chunks of whole cache-line pairs, so that no two stripes' words ever
/// share a cache line (small separate allocations would sit side by side).
#[derive(Debug)]
pub(crate) struct Words(Box<[CachePadded<[AtomicU64; 16]>]>);

impl Words {
    fn new(len: usize) -> Self {
        Words(
            (0..len.div_ceil(16))
                .map(|_| CachePadded(Default::default()))
                .collect(),
        )
    }

    #[inline(always)]
    pub(crate) fn get(&self, index: usize) -> &AtomicU64 {
        &self.0[index / 16].0[index % 16]
    }
}

/// The owner of a stripe no thread may claim: thread tokens never reach it.
const NO_OWNER: usize = usize::MAX;

impl Stripe {
    fn new(words: usize, owner: usize) -> CachePadded<Stripe> {
        CachePadded(Stripe {
            owner: AtomicUsize::new(owner),
            head: AtomicU64::new(0),
            bad: AtomicU64::new(0),
            // Slice 0, starting at 0, at word 0: true for any layout.
            slice_start: AtomicU64::new(0),
            slice: AtomicU64::new(0),
            words: Words::new(words),
        })
    }
}

impl Window {
    /// A window of the last `size` calls, with `stripes` owned stripes (a power of two, or 0
    /// for only the shared one).
    pub(crate) fn count(size: u32, stripes: usize) -> Self {
        let layout = CountLayout::new(size);
        Self::new(Layout::Count(layout), layout.words(), stripes)
    }

    /// A window of `buckets` slices of `bucket_nanos` each.
    pub(crate) fn time(bucket_nanos: u64, buckets: u32, stripes: usize) -> Self {
        let layout = TimeLayout::new(bucket_nanos, buckets);
        Self::new(Layout::Time(layout), layout.words(), stripes)
    }

    fn new(layout: Layout, words: usize, stripes: usize) -> Self {
        debug_assert!(stripes == 0 || stripes.is_power_of_two());
        // With no owned stripes, one that no thread can claim keeps the fast path branch-free.
        let owned = if stripes == 0 {
            vec![Stripe::new(0, NO_OWNER)].into_boxed_slice()
        } else {
            (0..stripes).map(|_| Stripe::new(words, 0)).collect()
        };
        Window {
            layout,
            epoch: AtomicU8::new(0),
            mask: owned.len() - 1,
            owned,
            shared: Stripe::new(words, NO_OWNER),
            sequence: CachePadded(AtomicU64::new(0)),
        }
    }

    /// The first owned stripe, for tests of a layout's owner path.
    #[cfg(test)]
    pub(crate) fn first_owned_stripe(&self) -> &Stripe {
        &self.owned[0].0
    }

    /// Whether recording needs the current time.
    pub(crate) fn needs_time(&self) -> bool {
        matches!(self.layout, Layout::Time(_))
    }

    /// The calls a count window holds; `None` for a time window.
    pub(crate) fn count_size(&self) -> Option<u64> {
        match self.layout {
            Layout::Count(layout) => Some(layout.size()),
            Layout::Time(_) => None,
        }
    }

    /// The width of a time bucket in nanoseconds; `None` for a count window.
    pub(crate) fn bucket_nanos(&self) -> Option<u64> {
        match &self.layout {
            Layout::Time(layout) => Some(layout.bucket_nanos()),
            _ => None,
        }
    }

    /// Records one outcome for a permit of `epoch`, at `nanos` since the breaker's origin (only
    /// read by time windows). Returns false if the record was dropped (a stale epoch on the
    /// shared stripe, a slice that already left the window, a saturated bucket); a stale record
    /// on an owned stripe lands under its old epoch, unread, and returns true.
    #[inline(always)]
    pub(crate) fn record(&self, epoch: u8, record: Record, nanos: u64) -> bool {
        // An owned stripe needs no epoch check here: its counters carry the epoch they were
        // written in, a reset marks them stale, and only the owner (this thread) writes them,
        // so a late record lands under its own old epoch, which no one reads.
        match self.owned_stripe() {
            Some(stripe) => match self.layout {
                Layout::Count(layout) => {
                    count_window::owned_record(stripe, &layout, &self.sequence.0, epoch, record);
                    true
                }
                Layout::Time(layout) => {
                    time_window::owned_record(stripe, &layout, epoch, record, nanos)
                }
            },
            None => self.shared_record(epoch, record, nanos),
        }
    }

    /// The stripe this thread owns, claiming it if it is free. A thread looks at up to
    /// `PROBES` stripes from the one its token points at, so a few threads that land on the
    /// same stripe still find stripes of their own.
    #[inline(always)]
    fn owned_stripe(&self) -> Option<&Stripe> {
        let token = thread_token();
        let stripe = &self.owned[token & self.mask].0;
        if stripe.owner.load(Ordering::Relaxed) == token {
            return Some(stripe);
        }
        self.claim_stripe(token)
    }

    #[cold]
    #[inline(never)]
    fn claim_stripe(&self, token: usize) -> Option<&Stripe> {
        const PROBES: usize = 4;
        if token == EXITING {
            return None;
        }
        for probe in 0..PROBES.min(self.owned.len()) {
            let stripe = &self.owned[token.wrapping_add(probe) & self.mask].0;
            let owner = stripe.owner.load(Ordering::Relaxed);
            if owner == token
                || (owner == 0
                    && stripe
                        .owner
                        .compare_exchange(0, token, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok())
            {
                return Some(stripe);
            }
        }
        None
    }

    #[cold]
    #[inline(never)]
    fn shared_record(&self, epoch: u8, record: Record, nanos: u64) -> bool {
        let stripe = &self.shared.0;
        match self.layout {
            Layout::Count(layout) => {
                count_window::shared_record(stripe, &layout, &self.sequence.0, epoch, record)
            }
            Layout::Time(layout) => {
                time_window::shared_record(stripe, &layout, &self.epoch, epoch, record, nanos)
            }
        }
    }

    /// Sums the window for `epoch` as of `nanos` since the origin.
    pub(crate) fn counts(&self, epoch: u8, nanos: u64) -> Counts {
        self.newest_counts(epoch, nanos, u64::MAX)
    }

    /// Like [`counts`](Self::counts), over the newest `limit` calls of a count window (a time
    /// window ignores `limit`).
    pub(crate) fn newest_counts(&self, epoch: u8, nanos: u64, limit: u64) -> Counts {
        let claimable = self
            .owned
            .iter()
            .filter(|s| s.0.owner.load(Ordering::Relaxed) != NO_OWNER);
        let stripes = claimable.chain(Some(&self.shared)).map(|stripe| &stripe.0);
        let mut counts = match self.layout {
            Layout::Count(layout) => count_window::counts(stripes, &layout, epoch, limit),
            Layout::Time(layout) => time_window::counts(stripes, &layout, epoch, nanos),
        };
        // Under concurrency a bad outcome may be counted an instant before its call is.
        counts.failures = counts.failures.min(counts.calls);
        counts.slow = counts.slow.min(counts.calls);
        counts
    }

    /// Empties the window and starts `epoch`. Callers serialize resets (the breaker holds its
    /// transition lock); records may race with a reset and are then dropped.
    pub(crate) fn reset(&self, epoch: u8) {
        self.epoch.store(epoch, Ordering::Release);
        // Owned stripes: tag them with an epoch that is not current, so their owner starts
        // them over on its next record (and no one reads them before). A late write by the
        // owner can only tag them with its own, older, epoch.
        let stale = with_epoch(epoch.wrapping_sub(1));
        for stripe in self.owned.iter() {
            stripe.0.head.store(stale, Ordering::Release);
        }
        let shared = &self.shared.0;
        match self.layout {
            Layout::Count(layout) => count_window::reset_shared(shared, &layout, epoch),
            Layout::Time(layout) => time_window::reset_shared(shared, &layout, epoch),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Epoch tags

#[inline(always)]
pub(crate) fn epoch_of(word: u64) -> u8 {
    (word >> 56) as u8
}

#[inline(always)]
pub(crate) fn with_epoch(epoch: u8) -> u64 {
    u64::from(epoch) << 56
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

    /// Both kinds of stripe: owned (the test thread claims one) and shared (no owned stripes).
    fn count_windows(size: u32) -> [Window; 2] {
        [Window::count(size, 1), Window::count(size, 0)]
    }

    #[test]
    fn count_window_keeps_the_last_n_outcomes() {
        for window in count_windows(3) {
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
    }

    #[test]
    fn count_window_spans_several_bit_words() {
        for window in count_windows(130) {
            window.reset(0);
            for i in 0..130 {
                assert!(window.record(0, if i % 2 == 0 { SLOW_FAIL } else { OK }, 0));
            }
            assert_eq!(window.counts(0, 0), counts(130, 65, 65));
            for evicted in 1..=130u64 {
                assert!(window.record(0, OK, 0));
                let bad = 65 - evicted.div_ceil(2);
                assert_eq!(
                    window.counts(0, 0),
                    counts(130, bad, bad),
                    "after {evicted}"
                );
            }
        }
    }

    #[test]
    fn windows_drop_records_of_another_epoch() {
        let time_windows = [Window::time(10, 2, 1), Window::time(10, 2, 0)];
        for window in count_windows(4).into_iter().chain(time_windows) {
            window.reset(1);
            assert!(window.record(1, FAIL, 0));
            window.reset(2);
            // Dropped, or (owned stripe) written under epoch 1, which no one reads.
            let _ = window.record(1, FAIL, 0);
            assert_eq!(window.counts(2, 0), counts(0, 0, 0));
            assert!(window.record(2, FAIL, 0));
            assert_eq!(window.counts(2, 0), counts(1, 1, 0));
        }
    }

    #[test]
    fn count_window_takes_the_newest_calls_across_stripes() {
        let window = Window::count(4, 1);
        window.reset(0);
        assert!(window.record(0, FAIL, 0)); // this thread owns the only stripe
        assert!(window.record(0, FAIL, 0));
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for _ in 0..3 {
                    assert!(window.record(0, OK, 0)); // the shared stripe
                }
            });
        });
        // The three successes and the newer failure.
        assert_eq!(window.counts(0, 0), counts(4, 1, 0));
    }

    /// The scenario: a thread records ten successes and goes idle; another then
    /// records failures, which push the idle thread's successes out one by one.
    #[test]
    fn an_idle_stripes_outcomes_leave_the_window() {
        for stripes in [0, 2, 8] {
            let window = Window::count(10, stripes);
            window.reset(0);
            let idle = std::sync::Barrier::new(2);
            let done = std::sync::Barrier::new(2);
            std::thread::scope(|scope| {
                scope.spawn(|| {
                    for _ in 0..10 {
                        assert!(window.record(0, OK, 0));
                    }
                    idle.wait();
                    done.wait(); // stays alive, and idle, while the other thread records
                });
                idle.wait();
                for failures in 1..=30 {
                    assert!(window.record(0, FAIL, 0));
                    let expected = counts(10, failures.min(10), 0);
                    assert_eq!(window.counts(0, 0), expected, "stripes {stripes}");
                }
                done.wait();
            });
        }
    }

    /// Chunks of several bit words (a large window), a cut through the middle of one, and a
    /// ring that wraps many times.
    #[test]
    fn a_large_count_window_counts_across_multi_word_chunks() {
        let size = 5_000;
        assert!(CountLayout::new(size).chunk() > 32);
        for window in count_windows(size) {
            window.reset(1);
            let outcome = |i: u64| match i % 7 {
                0 => SLOW_FAIL,
                3 => FAIL,
                _ => OK,
            };
            let total = 23_456u64;
            for i in 0..total {
                assert!(window.record(1, outcome(i), 0));
                if i % 997 == 0 || i == total - 1 {
                    let last = (i + 1).saturating_sub(u64::from(size))..=i;
                    let expected = Counts {
                        calls: last.clone().count() as u64,
                        failures: last.clone().filter(|&j| outcome(j).failed).count() as u64,
                        slow: last.filter(|&j| outcome(j).slow).count() as u64,
                    };
                    assert_eq!(window.counts(1, 0), expected, "after {i}");
                }
            }
        }
    }

    #[test]
    fn time_window_forgets_slices_that_left() {
        // 4 buckets of 10 ns: a 40 ns window.
        for window in [Window::time(10, 4, 1), Window::time(10, 4, 0)] {
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
    }

    #[test]
    fn live_threads_get_distinct_tokens_and_exiting_ones_give_them_back() {
        let here = thread_token();
        assert_eq!(thread_token(), here);
        let barrier = std::sync::Barrier::new(2);
        let (a, b) = std::thread::scope(|scope| {
            let a = scope.spawn(|| {
                let token = thread_token();
                barrier.wait();
                token
            });
            let b = scope.spawn(|| {
                let token = thread_token();
                barrier.wait();
                token
            });
            (a.join().unwrap(), b.join().unwrap())
        });
        assert!(here != a && here != b && a != b);
        assert!([here, a, b].iter().all(|&t| t != 0 && t != EXITING));
        // A hundred short-lived threads, one after the other, reuse a few tokens (without
        // recycling they would need a hundred; the slack is for other tests' threads).
        let largest = (0..100)
            .map(|_| std::thread::spawn(thread_token).join().unwrap())
            .max()
            .unwrap();
        assert!(largest <= 32, "tokens are not recycled: got {largest}");
    }
}
