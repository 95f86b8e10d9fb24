//! The process's nanosecond scale: instants as plain `u64` nanoseconds, for clocks that hand out
//! measurements without building an [`Instant`] (see [`Timer::now_coarse_nanos`]).
//!
//! The scale starts 2^62 ns (about 146 years) before an origin the process fixes the first time
//! anything asks for it, so every instant a program can meet maps to a positive number, the map
//! keeps order, and the difference of two values is the duration between their instants.
//!
//! [`Timer::now_coarse_nanos`]: super::Timer::now_coarse_nanos

use std::sync::OnceLock;
use std::time::Instant;

/// Where the process origin sits on the scale: 2^62 ns, about 146 years.
pub(crate) const ORIGIN_NANOS: u64 = 1 << 62;

static ORIGIN: OnceLock<Instant> = OnceLock::new();

/// The instant that maps to [`ORIGIN_NANOS`], fixed on first use.
#[inline]
pub(crate) fn origin() -> Instant {
    *ORIGIN.get_or_init(Instant::now)
}

/// `instant` as nanoseconds on the process's scale: 2^62 ns (about 146 years) plus the time
/// since an origin the process fixes the first time it is asked (minus, for an earlier instant,
/// the time until it). Order is kept and differences are durations: for instants `a ≤ b`,
/// `process_nanos(b) - process_nanos(a)` is `(b - a).as_nanos()`. (Instants more than 146
/// years before the origin, or after it, saturate at 0 and `u64::MAX`.)
///
/// This is the scale of [`Timer::now_coarse_nanos`](super::Timer::now_coarse_nanos): a timer
/// that overrides that method returns its coarse time on this scale.
///
/// ```
/// use std::time::{Duration, Instant};
/// use tailguard::time::process_nanos;
///
/// let earlier = Instant::now();
/// let later = earlier + Duration::from_millis(5);
/// assert_eq!(process_nanos(later) - process_nanos(earlier), 5_000_000);
/// ```
pub fn process_nanos(instant: Instant) -> u64 {
    let origin = origin();
    match instant.checked_duration_since(origin) {
        Some(after) => ORIGIN_NANOS.saturating_add(saturating_nanos(after.as_nanos())),
        None => ORIGIN_NANOS.saturating_sub(saturating_nanos((origin - instant).as_nanos())),
    }
}

fn saturating_nanos(nanos: u128) -> u64 {
    u64::try_from(nanos).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_scale_keeps_order_and_durations_on_both_sides_of_the_origin() {
        let origin = origin();
        assert_eq!(process_nanos(origin), ORIGIN_NANOS);
        let hour = Duration::from_secs(3600);
        let after = origin + hour;
        assert_eq!(
            process_nanos(after) - process_nanos(origin),
            3_600_000_000_000
        );
        if let Some(before) = origin.checked_sub(hour) {
            // An instant before the origin (a virtual clock started earlier) is still exact.
            assert_eq!(
                process_nanos(origin) - process_nanos(before),
                3_600_000_000_000
            );
            assert_eq!(
                process_nanos(after) - process_nanos(before),
                2 * 3_600_000_000_000
            );
        }
    }
}
