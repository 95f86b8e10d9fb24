//! The count window: the last `N` calls, whichever threads made them.
//!
//! Each stripe (see [`window`](super::window)) keeps its own calls, in *chunks* of `P`
//! consecutive calls. The first call of a chunk takes `P` positions from one sequence shared by
//! all stripes (a single `fetch_add`), so every call has a global position: its chunk's start
//! plus its place in the chunk. The window is the `N` calls with the highest positions. A thread
//! therefore touches the shared sequence once every `P` calls, and otherwise only its own
//! stripe.
//!
//! **Error bound.** Positions follow the order in which chunks were *started*, not quite the
//! order of the calls: a call made late into a chunk that started early is placed before the
//! calls of chunks other stripes started in between. Each of the other stripes has at most one
//! chunk open at a time, so at most `(T - 1) * (P - 1)` calls made after a call can be placed
//! before it, where `T` is the number of stripes recording (at most the number of threads
//! recording, and at most the stripe count plus one). Hence every call in the window is among
//! the last `N + (T - 1) * (P - 1)` calls, and the window holds `N` calls once `N` have been
//! made (so it misses at most `(T - 1) * (P - 1)` of the last `N`). A single thread sees
//! exactly its last `N` calls, and the calls of a thread that has gone idle leave the window
//! as the other threads' calls come in. `P` is 512 for windows of up to 32,768 calls, and
//! between `N / 64` and `N / 32` above that (so at most 66 chunks cover a window).
//!
//! With chunks larger than the window, as with the default window of 100, the bound is loose
//! on paper and the window in practice holds the newest calls of the stripe that started a
//! chunk last, topped up from the one before: recent calls, but not all threads' in every
//! moment. Smaller chunks would tighten the bound at the price of contention on the shared
//! counter (see [`MIN_CHUNK`]).
//!
//! Outcomes are bits (failed, slow: two per call). A stripe also keeps running totals of its
//! failed and slow calls, and each chunk records the totals as of its start, so the counts of
//! whole chunks come from two subtractions; only the one chunk the window cuts through is
//! counted bit by bit.

use std::sync::atomic::{fence, AtomicU64, Ordering};

use super::window::{epoch_of, with_epoch, Counts, Record, Stripe};

/// Calls per bit word (two bits per call).
const PER_WORD: u64 = 32;
/// Chunk slot metadata: start position, totals at start, tag (chunk index + 1, 0 while written).
const META: usize = 3;
/// The call count in a stripe's `head` (below the epoch byte).
const COUNT: u64 = (1 << 56) - 1;
/// Alternating bits: the failed bit of each call in a word.
const FAILED_BITS: u64 = 0x5555_5555_5555_5555;
/// `bad` totals: failures in the high half, slow calls in the low half (wrapping).
const FAILURE_UNIT: u64 = 1 << 32;
/// The smallest chunk. The shared `fetch_add` that starts a chunk costs about 100 ns when
/// another core wrote the counter last (two threads on this project's 2-vCPU benchmark VM),
/// so it must be rare: per pair of calls on two threads, chunks of 32 cost 60% (1.24x the
/// throughput of one thread), of 256 8% (1.84x), of 512 5% (1.91x), of 1024 2% (1.96x).
const MIN_CHUNK: u64 = 512;
/// Most stripes a window has: 64 owned and the shared one.
const MAX_STRIPES: usize = 65;

/// The shape of a count window.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CountLayout {
    /// `N`, the calls the window holds.
    size: u64,
    /// `P = 1 << chunk_shift`, the calls per chunk (a multiple of 32).
    chunk_shift: u32,
    /// `K - 1`, where `K` (a power of two) is the number of chunk slots in a stripe's ring.
    slot_mask: u64,
}

impl CountLayout {
    /// `N`, the calls the window holds.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    pub(crate) fn new(size: u32) -> Self {
        let size = u64::from(size.max(1));
        let words_per_chunk = size
            .div_ceil(64 * PER_WORD)
            .next_power_of_two()
            .max(MIN_CHUNK / PER_WORD);
        let chunk = PER_WORD * words_per_chunk;
        // The window spans at most ceil(N / P) + 1 of a stripe's chunks; one more slot lets a
        // reader finish while the owner starts a new chunk.
        let slots = (size.div_ceil(chunk) + 2).next_power_of_two();
        CountLayout {
            size,
            chunk_shift: chunk.trailing_zeros(),
            slot_mask: slots - 1,
        }
    }

    /// `P`, the calls per chunk.
    pub(crate) fn chunk(&self) -> u64 {
        1 << self.chunk_shift
    }

    fn words_per_chunk(&self) -> usize {
        (self.chunk() / PER_WORD) as usize
    }

    fn slots(&self) -> usize {
        self.slot_mask as usize + 1
    }

    /// The words a stripe needs: each slot's metadata, then each slot's bits.
    pub(crate) fn words(&self) -> usize {
        self.slots() * (META + self.words_per_chunk())
    }

    fn meta(&self, chunk: u64) -> usize {
        META * (chunk & self.slot_mask) as usize
    }

    /// The bit word of the call `index` of the stripe, and the shift of its failed bit.
    fn bit(&self, index: u64) -> (usize, u32) {
        let ring = index & ((self.slot_mask + 1) * self.chunk() - 1);
        let word = META * self.slots() + (ring / PER_WORD) as usize;
        (word, 2 * (index % PER_WORD) as u32)
    }
}

/// The owner's record: plain loads and stores, except one `fetch_add` on the shared sequence
/// when a chunk starts.
#[inline(always)]
pub(crate) fn owned_record(
    stripe: &Stripe,
    layout: &CountLayout,
    sequence: &AtomicU64,
    epoch: u8,
    record: Record,
) {
    let mut head = stripe.head.load(Ordering::Relaxed);
    if epoch_of(head) != epoch || head & (layout.chunk() - 1) == 0 {
        head = owned_chunk_start(stripe, layout, sequence, epoch, head);
    }
    if record.is_bad() {
        let (word, shift) = layout.bit(head & COUNT);
        let word = stripe.words.get(word);
        let bits = u64::from(record.bits() >> 1) << shift; // FAILED -> 1, SLOW -> 2
        word.store(word.load(Ordering::Relaxed) | bits, Ordering::Relaxed);
        let bad = stripe.bad.load(Ordering::Relaxed);
        stripe
            .bad
            .store(bad.wrapping_add(bad_units(record)), Ordering::Relaxed);
    }
    stripe.head.store(head + 1, Ordering::Release);
}

fn bad_units(record: Record) -> u64 {
    (if record.failed { FAILURE_UNIT } else { 0 }) + u64::from(record.slow)
}

/// Starts the next chunk (the first after a reset starts the stripe over): takes its
/// positions, clears its bits, stamps its slot. Returns the head to record at.
#[cold]
#[inline(never)]
fn owned_chunk_start(
    stripe: &Stripe,
    layout: &CountLayout,
    sequence: &AtomicU64,
    epoch: u8,
    head: u64,
) -> u64 {
    let head = if epoch_of(head) == epoch {
        head
    } else {
        with_epoch(epoch)
    };
    let index = head & COUNT;
    let (first, _) = layout.bit(index);
    for word in first..first + layout.words_per_chunk() {
        stripe.words.get(word).store(0, Ordering::Relaxed);
    }
    stamp(stripe, layout, sequence, index >> layout.chunk_shift);
    head
}

/// Takes `P` positions for `chunk` and writes its slot, seqlock style: a reader that sees the
/// same tag before and after reading the slot has read it whole.
fn stamp(stripe: &Stripe, layout: &CountLayout, sequence: &AtomicU64, chunk: u64) {
    let start = sequence.fetch_add(layout.chunk(), Ordering::Relaxed);
    let meta = layout.meta(chunk);
    let tag = stripe.words.get(meta + 2);
    tag.store(0, Ordering::Relaxed);
    fence(Ordering::Release);
    stripe.words.get(meta).store(start, Ordering::Relaxed);
    stripe
        .words
        .get(meta + 1)
        .store(stripe.bad.load(Ordering::Acquire), Ordering::Relaxed);
    tag.store(chunk + 1, Ordering::Release);
}

/// A record into the shared stripe, which any number of threads write: the call's index is
/// claimed with compare-and-swap, its bits set or cleared one by one, its totals added.
pub(crate) fn shared_record(
    stripe: &Stripe,
    layout: &CountLayout,
    sequence: &AtomicU64,
    epoch: u8,
    record: Record,
) -> bool {
    let mut head = stripe.head.load(Ordering::Relaxed);
    loop {
        if epoch_of(head) != epoch {
            return false;
        }
        match stripe
            .head
            .compare_exchange_weak(head, head + 1, Ordering::AcqRel, Ordering::Relaxed)
        {
            Ok(_) => break,
            Err(actual) => head = actual,
        }
    }
    let index = head & COUNT;
    if index & (layout.chunk() - 1) == 0 {
        stamp(stripe, layout, sequence, index >> layout.chunk_shift);
    }
    if record.is_bad() {
        stripe.bad.fetch_add(bad_units(record), Ordering::AcqRel);
    }
    let (word, shift) = layout.bit(index);
    let word = stripe.words.get(word);
    put_bit(word, 1 << shift, record.failed);
    put_bit(word, 2 << shift, record.slow);
    true
}

/// Sets `bit` in `word` to `on`. A clear bit that stays clear is only read.
fn put_bit(word: &AtomicU64, bit: u64, on: bool) {
    if on {
        word.fetch_or(bit, Ordering::AcqRel);
    } else if word.load(Ordering::Acquire) & bit != 0 {
        word.fetch_and(!bit, Ordering::AcqRel);
    }
}

/// Empties the shared stripe and starts `epoch` (owned stripes start over on their own).
pub(crate) fn reset_shared(stripe: &Stripe, layout: &CountLayout, epoch: u8) {
    stripe.head.store(with_epoch(epoch), Ordering::Release);
    // Tags too: a chunk claimed but not yet stamped must not pass for one of the old epoch.
    for word in 0..layout.words() {
        stripe.words.get(word).store(0, Ordering::Release);
    }
}

/// A reader's place in one stripe: the chunk it looks at next, going back in time.
#[derive(Clone, Copy)]
struct Cursor<'a> {
    stripe: &'a Stripe,
    chunk: u64,
    /// Calls recorded in `chunk`.
    calls: u64,
    /// The chunk's first position.
    start: u64,
    /// The stripe's totals when `chunk` started, and after its last call.
    before: u64,
    after: u64,
    /// The oldest chunk still in the ring.
    oldest: u64,
}

impl<'a> Cursor<'a> {
    fn new(stripe: &'a Stripe, layout: &CountLayout, epoch: u8) -> Option<Self> {
        let head = stripe.head.load(Ordering::Acquire);
        let calls = head & COUNT;
        if epoch_of(head) != epoch || calls == 0 {
            return None;
        }
        let chunk = (calls - 1) >> layout.chunk_shift;
        let mut cursor = Cursor {
            stripe,
            chunk,
            calls: calls - (chunk << layout.chunk_shift),
            start: 0,
            before: 0,
            after: stripe.bad.load(Ordering::Acquire),
            oldest: chunk.saturating_sub(layout.slot_mask),
        };
        cursor.read_slot(layout).then_some(cursor)
    }

    /// Reads the slot of `self.chunk`; false if it does not hold that chunk (yet, or any more).
    fn read_slot(&mut self, layout: &CountLayout) -> bool {
        let meta = layout.meta(self.chunk);
        let tag = self.stripe.words.get(meta + 2);
        let expected = self.chunk + 1;
        if tag.load(Ordering::Acquire) != expected {
            return false;
        }
        self.start = self.stripe.words.get(meta).load(Ordering::Relaxed);
        self.before = self.stripe.words.get(meta + 1).load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        tag.load(Ordering::Relaxed) == expected
    }

    /// Moves to the chunk before; false if there is none.
    fn step_back(&mut self, layout: &CountLayout) -> bool {
        if self.chunk == self.oldest {
            return false;
        }
        self.chunk -= 1;
        self.calls = layout.chunk();
        self.after = self.before;
        self.read_slot(layout)
    }

    /// Failed and slow calls among the newest `take` calls of the chunk.
    fn count_newest(&self, layout: &CountLayout, take: u64) -> (u64, u64) {
        if take == self.calls {
            let bad = self.after.wrapping_sub(self.before);
            return (bad >> 32, bad & 0xFFFF_FFFF);
        }
        let first = self.chunk << layout.chunk_shift;
        let (mut failed, mut slow) = (0, 0);
        let mut index = first + self.calls - take;
        let end = first + self.calls;
        while index < end {
            let (word, shift) = layout.bit(index);
            let in_word = (PER_WORD - index % PER_WORD).min(end - index);
            let mask = if in_word == PER_WORD {
                u64::MAX
            } else {
                ((1u64 << (2 * in_word)) - 1) << shift
            };
            let bits = self.stripe.words.get(word).load(Ordering::Acquire) & mask;
            failed += u64::from((bits & FAILED_BITS).count_ones());
            slow += u64::from((bits & !FAILED_BITS).count_ones());
            index += in_word;
        }
        (failed, slow)
    }
}

/// Counts the `min(N, limit)` calls with the highest positions over `stripes`, merging their
/// chunks from the newest back.
pub(crate) fn counts<'a>(
    stripes: impl Iterator<Item = &'a Stripe>,
    layout: &CountLayout,
    epoch: u8,
    limit: u64,
) -> Counts {
    let size = layout.size.min(limit);
    let mut cursors: [Option<Cursor<'a>>; MAX_STRIPES] = [None; MAX_STRIPES];
    let mut live = 0;
    for stripe in stripes.take(MAX_STRIPES) {
        if let Some(cursor) = Cursor::new(stripe, layout, epoch) {
            cursors[live] = Some(cursor);
            live += 1;
        }
    }
    let cursors = &mut cursors[..live];
    let mut counts = Counts::default();
    while counts.calls < size {
        let mut newest: Option<(usize, u64)> = None;
        for (i, cursor) in cursors.iter().enumerate() {
            if let Some(cursor) = cursor {
                if newest.is_none_or(|(_, start)| cursor.start > start) {
                    newest = Some((i, cursor.start));
                }
            }
        }
        let Some((i, _)) = newest else { break };
        let Some(cursor) = &mut cursors[i] else { break };
        let take = cursor.calls.min(size - counts.calls);
        let (failed, slow) = cursor.count_newest(layout, take);
        counts.calls += take;
        counts.failures += failed;
        counts.slow += slow;
        if !cursor.step_back(layout) {
            cursors[i] = None;
        }
    }
    counts
}
