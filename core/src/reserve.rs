//! The floor under a budget: a reserve of grants that refills at a steady rate per second.
//!
//! Both the [`RetryBudget`](crate::retry::RetryBudget) and the
//! [`HedgeBudget`](crate::hedge::HedgeBudget) earn most of their allowance from traffic (a ratio
//! of the calls made). A client with little traffic, or one that has only just started, would
//! then never be allowed a single retry or hedge; the reserve is what it gets instead, as in
//! Finagle's retry budget: `per_second` grants a second, of which at most `per_second` (one
//! second's worth) can be saved up. It starts full.
//!
//! It is a generic cell rate algorithm (a token bucket kept as one number): the "theoretical
//! arrival time" `tat` is when the bucket would be full again, in nanoseconds after the first
//! instant the reserve saw. A grant is allowed while `tat` is at most `now + (burst - 1) × step`,
//! and moves `tat` one `step` (⌈1 s / per_second⌉) on. Over any span of time `t`, it grants at
//! most `per_second × (1 s + t)`: the `burst` saved up plus one grant per `step`, which is never
//! shorter than `1 s / per_second`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::Instant;

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// A lock-free, sans-IO token bucket of `per_second` grants refilling at `per_second` a second.
pub(crate) struct Reserve {
    per_second: u32,
    /// Nanoseconds per grant: ⌈1 s / per_second⌉, rounded up so the rate is never exceeded.
    step: u64,
    /// How far `tat` may run ahead of now: (burst - 1) steps.
    tolerance: u64,
    /// The first instant seen; times are counted from it (earlier ones count as it).
    origin: OnceLock<Instant>,
    /// When the bucket would be full again, in nanoseconds after `origin`.
    tat: AtomicU64,
}

impl Reserve {
    /// A reserve of `per_second` grants a second, holding at most `per_second`; 0 grants nothing.
    pub(crate) fn new(per_second: u32) -> Self {
        let step = match per_second {
            0 => NANOS_PER_SEC,
            n => NANOS_PER_SEC.div_ceil(u64::from(n)),
        };
        Reserve {
            per_second,
            step,
            tolerance: u64::from(per_second.saturating_sub(1)) * step,
            origin: OnceLock::new(),
            tat: AtomicU64::new(0),
        }
    }

    /// The configured rate (and most that can be saved up).
    pub(crate) fn per_second(&self) -> u32 {
        self.per_second
    }

    fn nanos_at(&self, now: Instant) -> u64 {
        let origin = *self.origin.get_or_init(|| now);
        let since = now.saturating_duration_since(origin);
        u64::try_from(since.as_nanos()).unwrap_or(u64::MAX / 2)
    }

    /// Takes one grant at `now`: `false` (and nothing taken) if the reserve is empty.
    pub(crate) fn try_take_at(&self, now: Instant) -> bool {
        if self.per_second == 0 {
            return false;
        }
        let now = self.nanos_at(now);
        self.tat
            .fetch_update(Relaxed, Relaxed, |tat| {
                (tat <= now.saturating_add(self.tolerance)).then(|| tat.max(now) + self.step)
            })
            .is_ok()
    }

    /// Gives back a grant that was never used. A reserve that has refilled since stays full:
    /// the refund cannot lift it above `per_second`.
    pub(crate) fn give_back(&self) {
        if self.per_second == 0 {
            return;
        }
        let _ = self
            .tat
            .fetch_update(Relaxed, Relaxed, |tat| Some(tat.saturating_sub(self.step)));
    }

    /// How many grants could be taken at `now`, one after another.
    pub(crate) fn available_at(&self, now: Instant) -> u64 {
        if self.per_second == 0 {
            return 0;
        }
        let now = self.nanos_at(now);
        let tat = self.tat.load(Relaxed).max(now);
        let room = now.saturating_add(self.tolerance) + self.step;
        room.saturating_sub(tat) / self.step
    }
}

impl std::fmt::Debug for Reserve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reserve")
            .field("per_second", &self.per_second)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn starts_full_and_refills_at_the_rate() {
        let t0 = Instant::now();
        let reserve = Reserve::new(5);
        assert_eq!(reserve.available_at(t0), 5);
        assert_eq!((0..20).filter(|_| reserve.try_take_at(t0)).count(), 5);
        assert_eq!(reserve.available_at(t0), 0);
        // One grant per 200 ms.
        assert!(!reserve.try_take_at(t0 + Duration::from_millis(199)));
        assert!(reserve.try_take_at(t0 + Duration::from_millis(200)));
        assert!(!reserve.try_take_at(t0 + Duration::from_millis(399)));
        // A long quiet spell saves up one second's worth, no more.
        let later = t0 + Duration::from_secs(60);
        assert_eq!(reserve.available_at(later), 5);
        assert_eq!((0..20).filter(|_| reserve.try_take_at(later)).count(), 5);
    }

    #[test]
    fn zero_grants_nothing_and_refunds_cannot_overfill() {
        let t0 = Instant::now();
        let none = Reserve::new(0);
        assert!(!none.try_take_at(t0));
        none.give_back();
        assert_eq!(none.available_at(t0), 0);

        let reserve = Reserve::new(2);
        assert!(reserve.try_take_at(t0));
        reserve.give_back();
        reserve.give_back();
        assert_eq!(reserve.available_at(t0), 2);
        assert!(reserve.try_take_at(t0) && reserve.try_take_at(t0));
        assert!(!reserve.try_take_at(t0));
        reserve.give_back();
        assert!(reserve.try_take_at(t0));
    }

    proptest! {
        /// Over every span [a, b] of a history: grants ≤ per_second × (1 s + (b - a)).
        #[test]
        fn never_more_than_the_rate_plus_one_second(
            per_second in 0u32..50,
            gaps in prop::collection::vec(0u64..300, 1..300),
        ) {
            let t0 = Instant::now();
            let reserve = Reserve::new(per_second);
            let mut now_ms = 0u64;
            let mut granted: Vec<u64> = Vec::new();
            for gap in gaps {
                now_ms += gap;
                if reserve.try_take_at(t0 + Duration::from_millis(now_ms)) {
                    granted.push(now_ms);
                }
            }
            for (i, &a) in granted.iter().enumerate() {
                for (j, &b) in granted.iter().enumerate().skip(i) {
                    let count = (j - i + 1) as u64;
                    // count ≤ per_second × (1000 + (b - a)) / 1000, in integers.
                    prop_assert!(count * 1000 <= u64::from(per_second) * (1000 + b - a));
                }
            }
        }
    }
}
