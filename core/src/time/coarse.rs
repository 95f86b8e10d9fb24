//! A coarse clock: the kernel's time at its last tick, as a std [`Instant`].
//!
//! On Linux, `CLOCK_MONOTONIC_COARSE` is read from the vDSO without touching the TSC: about
//! 14 ns on the reference VM against 46 ns for [`Instant::now`]. It counts on the same base as
//! `CLOCK_MONOTONIC` (which `Instant` reads) but only moves once per kernel tick, so it lags by
//! up to one tick ([`resolution`], from `clock_getres`; 4 ms at `HZ=250`). The instant returned
//! is never ahead of [`Instant::now`].

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rustix::time::{clock_getres, clock_gettime, ClockId, Timespec};

use super::origin::{origin, ORIGIN_NANOS};

/// Where the process origin falls on `CLOCK_MONOTONIC`, with the coarse clock's resolution.
struct Anchor {
    /// `CLOCK_MONOTONIC` at the process origin ([`origin`]), from an `Instant` and a
    /// `CLOCK_MONOTONIC` read back to back (the `Instant` first, so the estimate is not early:
    /// the coarse time is never ahead).
    monotonic: u64,
    /// What turns a `CLOCK_MONOTONIC_COARSE` reading into the process's nanosecond scale
    /// (wrapping: `ORIGIN_NANOS - monotonic`).
    to_scale: u64,
    resolution: Duration,
}

static ANCHOR: OnceLock<Anchor> = OnceLock::new();

/// A `CLOCK_MONOTONIC*` reading in nanoseconds. Wrapping arithmetic: these clocks count from
/// boot, never negative, and reach `u64::MAX` nanoseconds only after 584 years of uptime (this
/// is on the call path of every coarse read, where a saturating conversion's checks showed in
/// the profile).
#[inline(always)]
fn nanos(time: Timespec) -> u64 {
    (time.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(time.tv_nsec as u64)
}

#[inline]
fn anchor() -> &'static Anchor {
    ANCHOR.get_or_init(|| {
        let origin = origin();
        let instant = Instant::now();
        let monotonic = nanos(clock_gettime(ClockId::Monotonic));
        let since_origin = u64::try_from(instant.duration_since(origin).as_nanos()).unwrap_or(0);
        let monotonic = monotonic.saturating_sub(since_origin);
        let resolution = Duration::from_nanos(nanos(clock_getres(ClockId::MonotonicCoarse)));
        Anchor {
            monotonic,
            to_scale: ORIGIN_NANOS.wrapping_sub(monotonic),
            resolution,
        }
    })
}

/// The coarse time: at most [`resolution`] (and the anchor's few nanoseconds) behind
/// [`Instant::now`], never ahead of it.
#[inline]
pub(crate) fn now() -> Instant {
    let anchor = anchor();
    let coarse = nanos(clock_gettime(ClockId::MonotonicCoarse));
    match coarse.checked_sub(anchor.monotonic) {
        Some(after) => origin() + Duration::from_nanos(after),
        // Up to a tick before the origin, just after it was fixed.
        None => origin()
            .checked_sub(Duration::from_nanos(anchor.monotonic - coarse))
            .unwrap_or_else(origin),
    }
}

/// [`now`] on the process's nanosecond scale ([`process_nanos`](super::process_nanos)),
/// without building an `Instant`: one subtraction from the kernel's reading.
#[inline]
pub(crate) fn now_nanos() -> u64 {
    let anchor = anchor();
    // Wrapping: a reading up to a tick before the origin lands just below `ORIGIN_NANOS`.
    nanos(clock_gettime(ClockId::MonotonicCoarse)).wrapping_add(anchor.to_scale)
}

/// How far [`now`] may lag: the kernel tick.
pub(crate) fn resolution() -> Duration {
    anchor().resolution
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coarse_time_is_never_ahead_and_lags_by_at_most_a_tick() {
        let resolution = resolution();
        assert!(resolution > Duration::ZERO && resolution <= Duration::from_millis(100));
        for _ in 0..1000 {
            let before = Instant::now();
            let coarse = now();
            let after = Instant::now();
            assert!(coarse <= after, "coarse time ahead of the clock");
            // Generous: a descheduled thread may be late between the reads.
            assert!(
                before.saturating_duration_since(coarse) <= resolution + Duration::from_secs(1)
            );
        }
    }

    #[test]
    fn the_nanosecond_reading_is_the_coarse_instant_on_the_process_scale() {
        use crate::time::process_nanos;
        for _ in 0..1000 {
            let before = process_nanos(now());
            let nanos = now_nanos();
            let after = process_nanos(now());
            let exact = process_nanos(Instant::now());
            assert!(
                before <= nanos && nanos <= after,
                "{before} {nanos} {after}"
            );
            assert!(nanos <= exact, "coarse nanoseconds ahead of the clock");
        }
    }
}
