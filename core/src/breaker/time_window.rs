//! The time window: the calls of the last `buckets` slices of time.
//!
//! Each stripe (see [`window`](super::window)) keeps `buckets` counters of calls, failures and
//! slow calls, one set per slice of the window duration, tagged with the slice they count; a
//! slice that has left the window is overwritten by the next record that falls in its slot.
//! Reading sums the slices still in the window over every stripe, so the window is exact
//! whichever threads recorded.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use super::window::{Counts, Record, Stripe};

/// A bucket word: tag (epoch 8 bits | bucket index 32 bits) in the high 40 bits, count in the
/// low 24 bits. A count saturates at 2^24 - 1 per stripe and bucket; past that the bucket is a
/// sample of its slice (all three counters stop together, so the rates stay right).
const COUNT_BITS: u32 = 24;
const COUNT_MAX: u64 = (1 << COUNT_BITS) - 1;

/// Division by a divisor fixed when the window is built, by a multiplication: exact for every
/// `u64`, and several times cheaper than a `div` instruction on the record path.
#[derive(Clone, Copy, Debug)]
struct Divisor {
    divisor: u64,
    /// `u64::MAX / divisor`: `n * inverse / 2^64` is the quotient or one less (the error of the
    /// real-valued estimate is `n * (2^64 - divisor * inverse) / (divisor * 2^64) < 1`).
    inverse: u64,
}

impl Divisor {
    fn new(divisor: u64) -> Self {
        let divisor = divisor.max(1);
        Divisor {
            divisor,
            inverse: u64::MAX / divisor,
        }
    }

    /// `(n / divisor, n % divisor)`.
    #[inline(always)]
    fn div_rem(&self, n: u64) -> (u64, u64) {
        let mut quotient = ((u128::from(n) * u128::from(self.inverse)) >> 64) as u64;
        let mut remainder = n - quotient * self.divisor;
        if remainder >= self.divisor {
            quotient += 1;
            remainder -= self.divisor;
        }
        (quotient, remainder)
    }
}

/// The shape of a time window.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TimeLayout {
    bucket_nanos: u64,
    buckets: u64,
    by_bucket_nanos: Divisor,
    by_buckets: Divisor,
}

impl TimeLayout {
    pub(crate) fn new(bucket_nanos: u64, buckets: u32) -> Self {
        TimeLayout {
            bucket_nanos,
            buckets: u64::from(buckets),
            by_bucket_nanos: Divisor::new(bucket_nanos),
            by_buckets: Divisor::new(u64::from(buckets)),
        }
    }

    /// The width of a bucket in nanoseconds.
    pub(crate) fn bucket_nanos(&self) -> u64 {
        self.bucket_nanos
    }

    /// The words a stripe needs: `calls, failures, slow` for each bucket.
    pub(crate) fn words(&self) -> usize {
        3 * self.buckets as usize
    }

    /// The slice `nanos` falls in, and the first of its three words.
    #[inline(always)]
    fn slice(&self, nanos: u64) -> (u64, usize) {
        let index = self.index(nanos);
        (index, self.base(index))
    }

    /// The slice `nanos` falls in.
    #[inline(always)]
    fn index(&self, nanos: u64) -> u64 {
        self.by_bucket_nanos.div_rem(nanos).0
    }

    #[inline(always)]
    fn base(&self, index: u64) -> usize {
        3 * self.by_buckets.div_rem(index).1 as usize
    }

    /// [`slice`](Self::slice) for the owner of `stripe`, through the stripe's memo of the
    /// slice it last recorded into: most records fall in the same slice as the one before, and
    /// then the index and word come from two loads and a comparison instead of a chain of
    /// multiplications on the time just read. Only the low 32 bits of the index (all a tag
    /// keeps) are returned.
    #[inline(always)]
    fn owned_slice(&self, stripe: &Stripe, nanos: u64) -> (u64, usize) {
        let start = stripe.slice_start.load(Ordering::Relaxed);
        let slice = stripe.slice.load(Ordering::Relaxed);
        // A time before the memo's start wraps to a large difference: a miss.
        if nanos.wrapping_sub(start) < self.bucket_nanos {
            return (slice & 0xFFFF_FFFF, (slice >> 32) as usize);
        }
        self.remember_slice(stripe, nanos)
    }

    #[cold]
    #[inline(never)]
    fn remember_slice(&self, stripe: &Stripe, nanos: u64) -> (u64, usize) {
        let (index, base) = self.slice(nanos);
        // At most 1000 buckets: `base` < 3000 fits the high half.
        stripe
            .slice_start
            .store(index * self.bucket_nanos, Ordering::Relaxed);
        let index = index & 0xFFFF_FFFF;
        stripe
            .slice
            .store(index | (base as u64) << 32, Ordering::Relaxed);
        (index, base)
    }
}

#[inline(always)]
fn bucket_tag(epoch: u8, index: u64) -> u64 {
    (u64::from(epoch) << 32 | (index & 0xFFFF_FFFF)) << COUNT_BITS
}

/// What adding one to `current` for the slice `tag` (of the current epoch) gives: the next
/// value, or `None` if the word already holds a later slice of the same epoch (this record is
/// late) or is saturated.
#[inline(always)]
fn bumped(current: u64, tag: u64) -> Option<u64> {
    let current_tag = current & !COUNT_MAX;
    if current_tag == tag {
        return (current & COUNT_MAX != COUNT_MAX).then_some(current + 1);
    }
    let same_epoch = (current_tag ^ tag) >> (COUNT_BITS + 32) == 0;
    let current_index = (current_tag >> COUNT_BITS) as u32;
    let index = (tag >> COUNT_BITS) as u32;
    if same_epoch && current_index.wrapping_sub(index) < (1 << 31) {
        return None;
    }
    Some(tag | 1)
}

/// The owner's record: plain loads and stores.
#[inline(always)]
pub(crate) fn owned_record(
    stripe: &Stripe,
    layout: &TimeLayout,
    epoch: u8,
    record: Record,
    nanos: u64,
) -> bool {
    let (index, base) = layout.owned_slice(stripe, nanos);
    let tag = bucket_tag(epoch, index);
    let bump = |word: &AtomicU64| match bumped(word.load(Ordering::Relaxed), tag) {
        Some(next) => {
            word.store(next, Ordering::Release);
            true
        }
        None => false,
    };
    if !bump(stripe.words.get(base)) {
        return false;
    }
    if record.failed {
        bump(stripe.words.get(base + 1));
    }
    if record.slow {
        bump(stripe.words.get(base + 2));
    }
    true
}

/// A record into the shared stripe, with compare-and-swap. `current` is the window's epoch.
pub(crate) fn shared_record(
    stripe: &Stripe,
    layout: &TimeLayout,
    current: &AtomicU8,
    epoch: u8,
    record: Record,
    nanos: u64,
) -> bool {
    let (index, base) = layout.slice(nanos);
    let tag = bucket_tag(epoch, index);
    // `calls` decides: if it refuses (stale epoch or slice, saturated), so do the others.
    if !shared_bump(stripe.words.get(base), tag, current, epoch) {
        return false;
    }
    if record.failed {
        shared_bump(stripe.words.get(base + 1), tag, current, epoch);
    }
    if record.slow {
        shared_bump(stripe.words.get(base + 2), tag, current, epoch);
    }
    true
}

/// Adds one to a shared-stripe bucket word for the slice `tag`.
fn shared_bump(word: &AtomicU64, tag: u64, current: &AtomicU8, epoch: u8) -> bool {
    let mut value = word.load(Ordering::Acquire);
    loop {
        // A reset stores the new epoch before clearing the words, so having read a cleared
        // word we see the new epoch.
        if value & !COUNT_MAX != tag && current.load(Ordering::Acquire) != epoch {
            return false;
        }
        let Some(next) = bumped(value, tag) else {
            return false;
        };
        match word.compare_exchange_weak(value, next, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return true,
            Err(actual) => value = actual,
        }
    }
}

/// Sums the slices in the window at `nanos` over `stripes`.
pub(crate) fn counts<'a>(
    stripes: impl Iterator<Item = &'a Stripe>,
    layout: &TimeLayout,
    epoch: u8,
    nanos: u64,
) -> Counts {
    let mut counts = Counts::default();
    let now_index = layout.index(nanos);
    for stripe in stripes {
        for index in now_index.saturating_sub(layout.buckets - 1)..=now_index {
            let base = layout.base(index);
            let tag = bucket_tag(epoch, index);
            let read = |word: &AtomicU64| {
                let value = word.load(Ordering::Acquire);
                if value & !COUNT_MAX == tag {
                    value & COUNT_MAX
                } else {
                    0
                }
            };
            counts.calls += read(stripe.words.get(base));
            counts.failures += read(stripe.words.get(base + 1));
            counts.slow += read(stripe.words.get(base + 2));
        }
    }
    counts
}

/// Empties the shared stripe for `epoch` (owned stripes start over on their own).
pub(crate) fn reset_shared(stripe: &Stripe, layout: &TimeLayout, epoch: u8) {
    // Index 0 of the new epoch with a zero count: an empty bucket for every purpose.
    let empty = bucket_tag(epoch, 0);
    for word in 0..layout.words() {
        stripe.words.get(word).store(empty, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owners_slice_memo_agrees_with_the_division() {
        let mut rng = fastrand::Rng::with_seed(16);
        for (bucket_nanos, buckets) in [(1, 1), (7, 3), (1_000_000_000, 10), (333, 1000)] {
            let layout = TimeLayout::new(bucket_nanos, buckets);
            let window = super::super::window::Window::time(bucket_nanos, buckets, 1);
            let stripe = window.first_owned_stripe();
            let mut nanos: u64 = rng.u64(..1 << 40);
            for _ in 0..2000 {
                // Mostly forward in small steps, sometimes back, sometimes a leap.
                nanos = match rng.u8(..10) {
                    0 => nanos.saturating_sub(rng.u64(..4 * bucket_nanos)),
                    1 => rng.u64(..1 << 50),
                    _ => nanos + rng.u64(..bucket_nanos.max(2)),
                };
                let (index, base) = layout.slice(nanos);
                assert_eq!(
                    layout.owned_slice(stripe, nanos),
                    (index & 0xFFFF_FFFF, base),
                    "{nanos} in buckets of {bucket_nanos}"
                );
            }
        }
    }

    #[test]
    fn division_by_multiplication_is_exact() {
        let mut rng = fastrand::Rng::with_seed(15);
        let mut divisors = vec![1, 2, 3, 7, 10, 1000, 1_000_000_007, u64::MAX - 1, u64::MAX];
        divisors.extend((0..200).map(|_| rng.u64(1..)));
        divisors.extend((0..200).map(|_| rng.u64(1..100_000_000_000)));
        for divisor in divisors {
            let by = Divisor::new(divisor);
            let mut numbers = vec![0, 1, divisor - 1, divisor, u64::MAX, u64::MAX - 1];
            numbers.extend(
                divisor
                    .checked_mul(3)
                    .map(|n| [n - 1, n, n.saturating_add(1)])
                    .into_iter()
                    .flatten(),
            );
            numbers.extend((0..500).map(|_| rng.u64(..)));
            for n in numbers {
                assert_eq!(by.div_rem(n), (n / divisor, n % divisor), "{n} / {divisor}");
            }
        }
    }
}
