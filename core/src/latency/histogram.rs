use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use super::buckets::{self, BUCKETS};

/// A concurrent latency histogram with bounded relative error.
///
/// [`record`](LatencyHistogram::record) is lock-free and allocation-free: one relaxed atomic
/// increment of the sample's bucket, plus two plain loads (an atomic update of the minimum or
/// maximum only when a sample is a new extreme). Threads recording different latencies mostly
/// touch different counters, so it scales where a histogram behind a `Mutex` serialises.
/// Reading ([`quantile`](LatencyHistogram::quantile) and friends) scans the buckets (a few
/// microseconds) and never blocks writers.
///
/// [`min`](LatencyHistogram::min), [`max`](LatencyHistogram::max) and
/// [`count`](LatencyHistogram::count) are exact; [`quantile`](LatencyHistogram::quantile) and
/// [`mean`](LatencyHistogram::mean) are within [`MAX_RELATIVE_ERROR`](super::MAX_RELATIVE_ERROR)
/// (under 0.8 %) of the exact values.
///
/// All memory (about 30 KiB of counters) is allocated by [`new`](LatencyHistogram::new); nothing
/// allocates afterwards. Share it by reference or in an `Arc`. Reads taken while other threads
/// record see each counter exactly, but a sample recorded during a read may be seen by one
/// statistic and not yet by another.
///
/// ```
/// use std::time::Duration;
/// use tailguard::latency::LatencyHistogram;
///
/// let a = LatencyHistogram::new();
/// let b = LatencyHistogram::new();
/// std::thread::scope(|s| {
///     s.spawn(|| (0..1000).for_each(|_| a.record(Duration::from_millis(2))));
///     s.spawn(|| (0..10).for_each(|_| b.record(Duration::from_millis(900))));
/// });
/// a.merge(&b);
/// assert_eq!(a.count(), 1010);
/// let median = a.quantile(0.5).unwrap(); // within 1/128 of the exact 2 ms
/// let exact = Duration::from_millis(2);
/// assert!(median.max(exact) - median.min(exact) <= exact / 128);
/// assert_eq!(a.quantile(1.0), Some(Duration::from_millis(900))); // the max is exact
/// ```
pub struct LatencyHistogram {
    counts: Box<[AtomicU64]>,
    extremes: Extremes,
}

/// Read-mostly: written only by a new minimum or maximum. Kept on its own cache line, away from
/// the bucket counters that every record writes.
#[repr(align(64))]
struct Extremes {
    min_nanos: AtomicU64,
    max_nanos: AtomicU64,
}

impl LatencyHistogram {
    /// An empty histogram covering every [`Duration`] up to about 584 years (`u64` nanoseconds;
    /// longer durations are recorded as `u64::MAX` nanoseconds).
    pub fn new() -> Self {
        LatencyHistogram {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            extremes: Extremes {
                min_nanos: AtomicU64::new(u64::MAX),
                max_nanos: AtomicU64::new(0),
            },
        }
    }

    /// Records one latency. Lock-free; never allocates.
    #[inline]
    pub fn record(&self, latency: Duration) {
        self.record_nanos(saturating_nanos(latency));
    }

    /// Records one latency given in nanoseconds.
    #[inline]
    pub fn record_nanos(&self, nanos: u64) {
        self.counts[buckets::index_of(nanos)].fetch_add(1, Relaxed);
        let extremes = &self.extremes;
        // The minimum only falls and the maximum only rises, so a sample that is not a new
        // extreme by a plain load never will be: skip the read-modify-write.
        if nanos < extremes.min_nanos.load(Relaxed) {
            extremes.min_nanos.fetch_min(nanos, Relaxed);
        }
        if nanos > extremes.max_nanos.load(Relaxed) {
            extremes.max_nanos.fetch_max(nanos, Relaxed);
        }
    }

    /// How many latencies have been recorded since creation or the last reset. Sums the
    /// buckets: a read, not a counter, so recording stays one increment.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// Counts samples until `limit` is reached: `min(count, limit)` or a little more, without
    /// scanning every bucket of a busy histogram.
    pub(crate) fn count_up_to(&self, limit: u64) -> u64 {
        let mut seen = 0u64;
        for counter in self.counts.iter() {
            seen += counter.load(Relaxed);
            if seen >= limit {
                break;
            }
        }
        seen
    }

    /// Whether nothing has been recorded.
    pub fn is_empty(&self) -> bool {
        self.max_nanos() < self.min_nanos()
    }

    fn min_nanos(&self) -> u64 {
        self.extremes.min_nanos.load(Relaxed)
    }

    fn max_nanos(&self) -> u64 {
        self.extremes.max_nanos.load(Relaxed)
    }

    /// The smallest recorded latency, exactly; `None` when empty.
    pub fn min(&self) -> Option<Duration> {
        let min = self.min_nanos();
        (self.max_nanos() >= min).then(|| Duration::from_nanos(min))
    }

    /// The largest recorded latency, exactly; `None` when empty.
    pub fn max(&self) -> Option<Duration> {
        let max = self.max_nanos();
        (max >= self.min_nanos()).then(|| Duration::from_nanos(max))
    }

    /// The mean of recorded latencies, within
    /// [`MAX_RELATIVE_ERROR`](super::MAX_RELATIVE_ERROR); `None` when empty.
    pub fn mean(&self) -> Option<Duration> {
        let (min, max) = (self.min_nanos(), self.max_nanos());
        let mut count = 0u128;
        let mut sum = 0u128;
        for (index, counter) in self.counts.iter().enumerate() {
            let n = counter.load(Relaxed);
            if n > 0 {
                count += u128::from(n);
                let value = buckets::representative(index).clamp(min, max.max(min));
                sum += u128::from(n) * u128::from(value);
            }
        }
        (count > 0).then(|| Duration::from_nanos(u64::try_from(sum / count).unwrap_or(u64::MAX)))
    }

    /// The `p`-quantile (`p` in `[0, 1]`: 0.5 is the median, 0.999 the 99.9th percentile).
    ///
    /// It estimates the recorded sample of rank `ceil(p * count)` (at least 1) in sorted order,
    /// within [`MAX_RELATIVE_ERROR`](super::MAX_RELATIVE_ERROR). `quantile(0.0)` is the minimum
    /// and `quantile(1.0)` the maximum, both exact. Returns `None` when the histogram is empty or
    /// `p` is outside `[0, 1]` (NaN included).
    pub fn quantile(&self, p: f64) -> Option<Duration> {
        quantile_of_iter(p, std::slice::from_ref(self).iter())
    }

    /// Adds every sample of `other` to `self`. `other` is left unchanged.
    pub fn merge(&self, other: &LatencyHistogram) {
        for (mine, theirs) in self.counts.iter().zip(other.counts.iter()) {
            let n = theirs.load(Relaxed);
            if n > 0 {
                mine.fetch_add(n, Relaxed);
            }
        }
        self.extremes
            .min_nanos
            .fetch_min(other.min_nanos(), Relaxed);
        self.extremes
            .max_nanos
            .fetch_max(other.max_nanos(), Relaxed);
    }

    /// Forgets every sample. Samples recorded while the reset runs may survive it, in part.
    pub fn reset(&self) {
        self.extremes.min_nanos.store(u64::MAX, Relaxed);
        self.extremes.max_nanos.store(0, Relaxed);
        for counter in self.counts.iter() {
            counter.store(0, Relaxed);
        }
    }
}

/// The `p`-quantile of the union of `histograms` (the rolling window's live slots, say),
/// without merging them into a new one.
pub(crate) fn quantile_of_iter<'a, I>(p: f64, histograms: I) -> Option<Duration>
where
    I: Iterator<Item = &'a LatencyHistogram> + Clone,
{
    let mut min = u64::MAX;
    let mut max = 0u64;
    for h in histograms.clone() {
        min = min.min(h.min_nanos());
        max = max.max(h.max_nanos());
    }
    if min > max || !(0.0..=1.0).contains(&p) {
        return None;
    }
    // The extremes are tracked exactly; answer them exactly, without a scan.
    if p == 0.0 {
        return Some(Duration::from_nanos(min));
    }
    if p == 1.0 {
        return Some(Duration::from_nanos(max));
    }
    let bucket_count = |index: usize| -> u64 {
        histograms
            .clone()
            .map(|h| h.counts[index].load(Relaxed))
            .sum()
    };
    let total: u64 = (0..BUCKETS).map(bucket_count).sum();
    let rank = buckets::rank_of(p, total)?;
    let mut seen = 0u64;
    let mut last_nonempty = None;
    for index in 0..BUCKETS {
        let n = bucket_count(index);
        if n == 0 {
            continue;
        }
        last_nonempty = Some(index);
        seen += n;
        if seen >= rank {
            let value = buckets::representative(index).clamp(min, max);
            return Some(Duration::from_nanos(value));
        }
    }
    // Counters grew between the two scans (concurrent recording): the highest bucket seen is
    // the best answer.
    last_nonempty.map(|i| Duration::from_nanos(buckets::representative(i).clamp(min, max)))
}

/// `duration` in nanoseconds, saturating at `u64::MAX` (about 584 years).
#[inline]
pub(crate) fn saturating_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram::new()
    }
}

impl fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("count", &self.count())
            .field("min", &self.min())
            .field("p50", &self.quantile(0.5))
            .field("p99", &self.quantile(0.99))
            .field("max", &self.max())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn empty_histogram_answers_none() {
        let h = LatencyHistogram::new();
        assert!(h.is_empty());
        assert_eq!(h.quantile(0.5), None);
        assert_eq!(h.min(), None);
        assert_eq!(h.max(), None);
        assert_eq!(h.mean(), None);
    }

    #[test]
    fn invalid_quantiles_answer_none() {
        let h = LatencyHistogram::new();
        h.record(ms(1));
        assert_eq!(h.quantile(f64::NAN), None);
        assert_eq!(h.quantile(-0.01), None);
        assert_eq!(h.quantile(1.01), None);
        assert_eq!(h.quantile(f64::INFINITY), None);
    }

    #[test]
    fn statistics_of_a_known_sample() {
        let h = LatencyHistogram::new();
        for n in 1..=1000 {
            h.record(Duration::from_micros(n));
        }
        assert_eq!(h.count(), 1000);
        assert_eq!(h.min(), Some(Duration::from_micros(1)));
        assert_eq!(h.max(), Some(Duration::from_micros(1000)));
        let mean = h.mean().unwrap().as_nanos() as f64;
        assert!((mean - 500_500.0).abs() <= 500_500.0 / 128.0, "{mean}");
        for (p, exact) in [(0.5, 500u64), (0.9, 900), (0.99, 990), (0.999, 999)] {
            let got = h.quantile(p).unwrap().as_nanos() as f64;
            let want = (exact * 1000) as f64;
            assert!((got - want).abs() <= want / 128.0, "p{p}: {got} vs {want}");
        }
        assert_eq!(h.quantile(0.0), h.min());
        assert_eq!(h.quantile(1.0), h.max());
    }

    #[test]
    fn merge_adds_samples_and_keeps_extremes() {
        let a = LatencyHistogram::new();
        let b = LatencyHistogram::new();
        a.record(ms(10));
        b.record(ms(1));
        b.record(ms(100));
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.min(), Some(ms(1)));
        assert_eq!(a.max(), Some(ms(100)));
        let median = a.quantile(0.5).unwrap();
        assert!(
            (median.max(ms(10)) - median.min(ms(10))) <= ms(10) / 128,
            "{median:?}"
        );
        assert_eq!(b.count(), 2, "the merged-from histogram is unchanged");
    }

    #[test]
    fn reset_forgets_everything() {
        let h = LatencyHistogram::new();
        h.record(ms(5));
        h.reset();
        assert!(h.is_empty());
        assert_eq!(h.max(), None);
        assert_eq!(h.quantile(0.5), None);
        h.record(ms(7));
        assert_eq!(h.min(), Some(ms(7)));
        assert_eq!(h.max(), Some(ms(7)));
    }

    #[test]
    fn huge_durations_saturate() {
        let h = LatencyHistogram::new();
        h.record(Duration::MAX);
        assert_eq!(h.max(), Some(Duration::from_nanos(u64::MAX)));
        assert_eq!(h.quantile(0.5), Some(Duration::from_nanos(u64::MAX)));
    }

    #[test]
    fn concurrent_records_are_all_counted() {
        let h = LatencyHistogram::new();
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let h = &h;
                s.spawn(move || {
                    for i in 0..1000u64 {
                        h.record(Duration::from_nanos(t * 1000 + i));
                    }
                });
            }
        });
        assert_eq!(h.count(), 4000);
        assert_eq!(h.min(), Some(Duration::ZERO));
        assert_eq!(h.max(), Some(Duration::from_nanos(3999)));
    }
}
