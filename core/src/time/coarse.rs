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

/// `Instant` and `CLOCK_MONOTONIC` read back to back (the `Instant` first, so it is not the
/// later of the two), with the coarse clock's resolution.
struct Anchor {
    instant: Instant,
    monotonic: u64,
    resolution: Duration,
}

static ANCHOR: OnceLock<Anchor> = OnceLock::new();

fn nanos(time: Timespec) -> u64 {
    let secs = u64::try_from(time.tv_sec).unwrap_or(0);
    let subsec = u64::try_from(time.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(subsec)
}

#[inline]
fn anchor() -> &'static Anchor {
    ANCHOR.get_or_init(|| {
        let instant = Instant::now();
        let monotonic = nanos(clock_gettime(ClockId::Monotonic));
        let resolution = Duration::from_nanos(nanos(clock_getres(ClockId::MonotonicCoarse)));
        Anchor {
            instant,
            monotonic,
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
    anchor.instant + Duration::from_nanos(coarse.saturating_sub(anchor.monotonic))
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
}
