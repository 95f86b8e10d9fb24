use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use super::histogram::{quantile_of_iter, saturating_nanos};
use super::LatencyHistogram;
use crate::time::process_nanos;
use crate::{validate, ConfigError};

/// The most slots a [`RollingHistogram`] may have: each costs about 30 KiB.
pub const MAX_SLOTS: usize = 64;

/// A latency histogram over a recent window of time: the last `window`, in `slots` slices.
///
/// A ring of [`LatencyHistogram`]s, one per slice of `window / slots`. A sample goes into the
/// slice of the instant it is recorded at; when time moves into a new slice, the oldest one is
/// cleared and reused. Reads cover the slices still in the window, so they answer for the last
/// `window` minus at most one slice: between `window - window / slots` and `window` of history.
///
/// It is sans-IO: methods take `now` (from a [`Timer`](crate::time::Timer), or
/// `Instant::now()`), so it runs the same on a real clock and in virtual time. A hot path that
/// would rather not build an `Instant` records at
/// [`Timer::now_coarse_nanos`](crate::time::Timer::now_coarse_nanos) with
/// [`record_nanos_at`](Self::record_nanos_at). Every sample needs its time: one recorded into
/// whatever slice was newest would leave the window with that slice. Slices are counted
/// from the first instant it is given; earlier instants count as that first one. Recording is
/// lock-free and allocation-free, like [`LatencyHistogram::record`]. A sample that races with
/// the recycling of its slice may be dropped; that is the price of never locking, and it can
/// only happen at a slice boundary.
///
/// ```
/// use std::time::{Duration, Instant};
/// use tailguard::latency::RollingHistogram;
///
/// let recent = RollingHistogram::new(Duration::from_secs(10), 5)?;
/// let start = Instant::now();
/// recent.record_at(start, Duration::from_millis(900)); // a slow spell...
/// let later = start + Duration::from_secs(3);
/// recent.record_at(later, Duration::from_millis(5));
/// assert_eq!(recent.quantile_at(later, 1.0), Some(Duration::from_millis(900)));
///
/// // ...forgotten once it leaves the window.
/// let much_later = start + Duration::from_secs(11);
/// assert_eq!(recent.quantile_at(much_later, 1.0), Some(Duration::from_millis(5)));
/// assert_eq!(recent.count_at(much_later), 1);
/// # Ok::<(), tailguard::ConfigError>(())
/// ```
pub struct RollingHistogram {
    /// The first instant seen, on the process's nanosecond scale ([`process_nanos`]; 0 until
    /// then): slice 0 starts there.
    origin: AtomicU64,
    slot_nanos: u64,
    slots: Box<[Slot]>,
    /// The newest slice any caller has moved to.
    current_tick: AtomicU64,
}

struct Slot {
    /// The slice this slot holds samples of.
    tick: AtomicU64,
    histogram: LatencyHistogram,
}

impl RollingHistogram {
    /// A window of `window` split into `slots` slices.
    ///
    /// `window` must be positive and `slots` in `1..=64` ([`MAX_SLOTS`]), with each slice at
    /// least a microsecond long. More slots make the window slide more smoothly; each costs
    /// about 30 KiB.
    pub fn new(window: Duration, slots: usize) -> Result<Self, ConfigError> {
        validate::count_in("slots", slots, 1..=MAX_SLOTS as u64, "")?;
        let slot = window / slots as u32;
        if slot < Duration::from_micros(1) || window.as_nanos() > u128::from(u64::MAX) {
            return Err(ConfigError::new(
                "window",
                format!(
                    "must give each of the {slots} slots at least 1µs and be under 584 years, \
                     got {window:?}"
                ),
            ));
        }
        Ok(RollingHistogram {
            origin: AtomicU64::new(0),
            slot_nanos: saturating_nanos(slot),
            slots: (0..slots)
                .map(|_| Slot {
                    tick: AtomicU64::new(0),
                    histogram: LatencyHistogram::new(),
                })
                .collect(),
            current_tick: AtomicU64::new(0),
        })
    }

    /// The length of the window: slot length times the number of slots.
    pub fn window(&self) -> Duration {
        Duration::from_nanos(self.slot_nanos) * self.slots.len() as u32
    }

    /// Records `latency` as observed at `now`. Lock-free; never allocates.
    ///
    /// An instant older than the newest slice seen so far counts as that newest slice.
    #[inline]
    pub fn record_at(&self, now: Instant, latency: Duration) {
        self.record_nanos_at(process_nanos(now), latency);
    }

    /// Records `latency` as observed at `now_nanos`, an instant on the process's nanosecond
    /// scale ([`process_nanos`]): what [`Timer::now_coarse_nanos`] returns, so that a hot path
    /// records at a cheap coarse time (the kernel's coarse clock on `AsyncIoTimer`, exact in
    /// virtual time) without building an `Instant`. Otherwise the same as
    /// [`record_at`](Self::record_at): lock-free, never allocates, and an instant older than
    /// the newest slice seen counts as that newest slice (so a coarse clock's lag only ever
    /// files a sample into the slice the window is in).
    ///
    /// [`Timer::now_coarse_nanos`]: crate::time::Timer::now_coarse_nanos
    ///
    /// ```
    /// use std::time::Duration;
    /// use tailguard::latency::RollingHistogram;
    /// use tailguard::time::{ManualTimer, Timer};
    ///
    /// let timer = ManualTimer::new();
    /// let recent = RollingHistogram::new(Duration::from_secs(1), 10)?;
    /// for _ in 0..30 {
    ///     // A call that was ready at once: zero latency, at the coarse time.
    ///     recent.record_nanos_at(timer.now_coarse_nanos(), Duration::ZERO);
    ///     timer.advance(Duration::from_millis(100));
    /// }
    /// // The window holds the last second's samples (less at most one slice), not three seconds'.
    /// let held = recent.count_at(timer.now());
    /// assert!((9..=10).contains(&held), "{held}");
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    #[inline]
    pub fn record_nanos_at(&self, now_nanos: u64, latency: Duration) {
        let tick = self.advance_to(now_nanos);
        self.slots[self.slot_of(tick)]
            .histogram
            .record_nanos(saturating_nanos(latency));
    }

    /// The `p`-quantile of the samples in the window ending at `now`, within
    /// [`MAX_RELATIVE_ERROR`](super::MAX_RELATIVE_ERROR). `None` when the window is empty or `p`
    /// is outside `[0, 1]`.
    pub fn quantile_at(&self, now: Instant, p: f64) -> Option<Duration> {
        let tick = self.tick_of(now).max(self.current_tick.load(Relaxed));
        quantile_of_iter(p, self.live(tick))
    }

    /// The index of the slice `now` falls in (never behind the newest slice seen), counted from
    /// the first instant this histogram was given.
    pub(crate) fn slice_at(&self, now: Instant) -> u64 {
        self.tick_of(now).max(self.current_tick.load(Relaxed))
    }

    /// How many samples the window ending at `now` holds (a scan of the live slices' buckets).
    pub fn count_at(&self, now: Instant) -> u64 {
        let tick = self.tick_of(now).max(self.current_tick.load(Relaxed));
        self.live(tick)
            .filter(|h| !h.is_empty())
            .map(LatencyHistogram::count)
            .sum()
    }

    /// Whether the window ending at `now` holds at least `n` samples; stops counting once it
    /// knows, so a busy window answers after a few buckets.
    pub(crate) fn has_at_least(&self, now: Instant, n: u64) -> bool {
        let tick = self.tick_of(now).max(self.current_tick.load(Relaxed));
        let mut seen = 0u64;
        for histogram in self.live(tick).filter(|h| !h.is_empty()) {
            seen += histogram.count_up_to(n - seen.min(n));
            if seen >= n {
                return true;
            }
        }
        seen >= n
    }

    /// Forgets every sample.
    pub fn reset(&self) {
        for slot in self.slots.iter() {
            slot.histogram.reset();
        }
    }

    /// The histograms of the slices inside the window that ends in slice `tick`.
    fn live(&self, tick: u64) -> impl Iterator<Item = &LatencyHistogram> + Clone {
        let len = self.slots.len() as u64;
        self.slots.iter().filter_map(move |slot| {
            let t = slot.tick.load(Relaxed);
            (t <= tick && t + len > tick).then_some(&slot.histogram)
        })
    }

    fn tick_of(&self, now: Instant) -> u64 {
        self.nanos_since_origin(process_nanos(now)) / self.slot_nanos
    }

    /// `at` (on the process's scale) less the origin, which the first instant seen sets.
    #[inline]
    fn nanos_since_origin(&self, at: u64) -> u64 {
        let origin = match self.origin.load(Relaxed) {
            0 => self.set_origin(at),
            origin => origin,
        };
        at.saturating_sub(origin)
    }

    #[cold]
    fn set_origin(&self, at: u64) -> u64 {
        // 0 means "unset"; the scale puts every instant a program meets far above it.
        let at = at.max(1);
        match self.origin.compare_exchange(0, at, Relaxed, Relaxed) {
            Ok(_) => at,
            Err(origin) => origin,
        }
    }

    fn slot_of(&self, tick: u64) -> usize {
        (tick % self.slots.len() as u64) as usize
    }

    /// Moves the window to the slice of `now_nanos` (never backwards), recycling the slot it
    /// lands in if that slot still holds an older slice. Returns the slice to record into.
    #[inline]
    fn advance_to(&self, now_nanos: u64) -> u64 {
        let current = self.current_tick.load(Relaxed);
        let nanos = self.nanos_since_origin(now_nanos);
        // The common case: still in (or before) the newest slice, which is set up already.
        // A multiplication, not the division `tick_of` needs.
        if nanos < current.saturating_add(1).saturating_mul(self.slot_nanos) {
            return current;
        }
        let tick = (nanos / self.slot_nanos).max(current);
        self.rotate_to(tick);
        tick
    }

    #[cold]
    fn rotate_to(&self, tick: u64) {
        let slot = &self.slots[self.slot_of(tick)];
        let held = slot.tick.load(Relaxed);
        if held < tick
            && slot
                .tick
                .compare_exchange(held, tick, Relaxed, Relaxed)
                .is_ok()
        {
            // We won the right to recycle this slot.
            slot.histogram.reset();
        }
        self.current_tick.fetch_max(tick, Relaxed);
    }
}

impl fmt::Debug for RollingHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RollingHistogram")
            .field("window", &self.window())
            .field("slots", &self.slots.len())
            .field("current_tick", &self.current_tick.load(Relaxed))
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
    fn validates_its_configuration() {
        assert_eq!(
            RollingHistogram::new(ms(1000), 0).unwrap_err().field(),
            "slots"
        );
        assert_eq!(
            RollingHistogram::new(ms(1000), 65).unwrap_err().field(),
            "slots"
        );
        let err = RollingHistogram::new(Duration::ZERO, 4).unwrap_err();
        assert_eq!(err.field(), "window");
        assert!(err.to_string().contains("at least 1µs"), "{err}");
        assert!(RollingHistogram::new(Duration::MAX, 4).is_err());
        assert!(RollingHistogram::new(ms(1000), 64).is_ok());
    }

    #[test]
    fn old_slices_leave_the_window() {
        let t0 = Instant::now();
        let h = RollingHistogram::new(ms(400), 4).unwrap(); // 100 ms slices
        for (at, latency) in [(0, 10), (100, 20), (200, 30), (300, 40)] {
            h.record_at(t0 + ms(at), ms(latency));
        }
        assert_eq!(h.count_at(t0 + ms(399)), 4);
        assert_eq!(h.quantile_at(t0 + ms(399), 0.0), Some(ms(10)));
        // At 400 ms the first slice (0..100) is out; nothing was recycled yet, reads filter.
        assert_eq!(h.count_at(t0 + ms(400)), 3);
        assert_eq!(h.quantile_at(t0 + ms(400), 0.0), Some(ms(20)));
        // Recording at 450 ms recycles slot 0 for the new slice.
        h.record_at(t0 + ms(450), ms(50));
        assert_eq!(h.count_at(t0 + ms(450)), 4);
        assert_eq!(h.quantile_at(t0 + ms(450), 1.0), Some(ms(50)));
        // Long silence: everything ages out.
        assert_eq!(h.count_at(t0 + ms(10_000)), 0);
        assert_eq!(h.quantile_at(t0 + ms(10_000), 0.5), None);
    }

    #[test]
    fn record_nanos_at_is_record_at_on_the_process_scale() {
        let t0 = Instant::now();
        let h = RollingHistogram::new(ms(400), 4).unwrap();
        // The first instant seen sets the origin either way.
        h.record_nanos_at(process_nanos(t0 + ms(50)), ms(1));
        h.record_at(t0 + ms(250), ms(2));
        h.record_nanos_at(process_nanos(t0 + ms(340)), ms(3));
        assert_eq!(h.count_at(t0 + ms(340)), 3);
        // Slices count from t0 + 50 ms: the first sample leaves at 450, the next two at 650
        // (the slice from 250 to 350 ms holds both).
        assert_eq!(h.count_at(t0 + ms(449)), 3);
        assert_eq!(h.count_at(t0 + ms(450)), 2);
        assert_eq!(h.quantile_at(t0 + ms(450), 0.0), Some(ms(2)));
        assert_eq!(h.count_at(t0 + ms(650)), 0);
        // A time before the newest slice (a coarse clock's lag) counts in the newest slice.
        h.record_at(t0 + ms(700), ms(4));
        h.record_nanos_at(process_nanos(t0 + ms(640)), ms(5));
        assert_eq!(h.count_at(t0 + ms(1049)), 2);
        assert_eq!(h.count_at(t0 + ms(1050)), 0);
    }

    #[test]
    fn late_instants_count_in_the_newest_slice() {
        let t0 = Instant::now();
        let h = RollingHistogram::new(ms(400), 4).unwrap();
        assert_eq!(h.count_at(t0), 0); // slices count from t0
        h.record_at(t0 + ms(350), ms(1));
        h.record_at(t0 + ms(50), ms(2)); // an instant from before the newest slice
        assert_eq!(h.count_at(t0 + ms(350)), 2);
        assert_eq!(h.count_at(t0 + ms(700)), 0);
    }

    #[test]
    fn has_at_least_agrees_with_count_at() {
        let t0 = Instant::now();
        let h = RollingHistogram::new(ms(400), 4).unwrap();
        for i in 0..40u64 {
            h.record_at(t0 + ms(i * 10), Duration::from_micros(i * 37));
        }
        let now = t0 + ms(450);
        let count = h.count_at(now);
        assert!(count > 0 && count < 40, "{count}");
        for n in [0, 1, count - 1, count, count + 1, 1000] {
            assert_eq!(h.has_at_least(now, n), count >= n, "n = {n}");
        }
    }

    #[test]
    fn reset_forgets_everything() {
        let t0 = Instant::now();
        let h = RollingHistogram::new(ms(400), 4).unwrap();
        h.record_at(t0, ms(3));
        h.reset();
        assert_eq!(h.count_at(t0), 0);
        assert_eq!(h.window(), ms(400));
    }
}
