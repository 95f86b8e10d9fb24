//! The four jitter modes and their formulas.

use std::fmt;

/// How a [`Backoff`](super::Backoff) randomizes its delays.
///
/// Without jitter, clients that failed together retry together, and fail together again: the
/// thundering herd. The modes below are the ones compared in the AWS Architecture Blog post
/// "Exponential Backoff and Jitter" (Marc Brooker, 2015), with its formulas. Write `t` for the
/// un-jittered delay of the current retry, `min(cap, base·factorⁿ)` for exponential backoff:
///
/// | mode | delay | what it is good at |
/// |---|---|---|
/// | [`None`](Jitter::None) | `t` | exact, predictable delays (tests, pacing) |
/// | [`Full`](Jitter::Full) | `rand(0, t)` | fewest calls under contention; the usual choice |
/// | [`Equal`](Jitter::Equal) | `t/2 + rand(0, t/2)` | never retries almost at once |
/// | [`Decorrelated`](Jitter::Decorrelated) | `min(cap, rand(base, 3·prev))` | grows from the last delay instead of the retry count |
///
/// Random numbers are inclusive of both ends and drawn in whole nanoseconds.
/// [`Decorrelated`](Jitter::Decorrelated) ignores the growth shape (constant, linear or
/// exponential): it only uses the base delay, the cap and the previous delay, as in the study.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Jitter {
    /// No randomness: every delay is exactly the computed one.
    None,
    /// Full jitter: `rand(0, t)`. The default, and the best performer in the study.
    #[default]
    Full,
    /// Equal jitter: `t/2 + rand(0, t/2)`, keeping at least half of each delay.
    Equal,
    /// Decorrelated jitter: `min(cap, rand(base, 3·prev))`, starting from `prev = base`.
    Decorrelated,
}

impl Jitter {
    /// The lower-case name used in tables, JSON and the Python binding: `"none"`, `"full"`,
    /// `"equal"` or `"decorrelated"`.
    pub fn name(self) -> &'static str {
        match self {
            Jitter::None => "none",
            Jitter::Full => "full",
            Jitter::Equal => "equal",
            Jitter::Decorrelated => "decorrelated",
        }
    }

    /// Parses a name as printed by [`Jitter::name`].
    pub fn from_name(name: &str) -> Option<Jitter> {
        match name {
            "none" => Some(Jitter::None),
            "full" => Some(Jitter::Full),
            "equal" => Some(Jitter::Equal),
            "decorrelated" => Some(Jitter::Decorrelated),
            _ => None,
        }
    }
}

impl fmt::Display for Jitter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Applies `jitter` to the un-jittered delay `t` (nanoseconds). `prev`, `base` and `cap` are only
/// used by decorrelated jitter. Never returns more than `max(t, cap)` for the other modes, and
/// never more than `cap` for decorrelated jitter.
pub(super) fn apply(
    jitter: Jitter,
    rng: &mut fastrand::Rng,
    t: u64,
    prev: u64,
    base: u64,
    cap: u64,
) -> u64 {
    match jitter {
        Jitter::None => t,
        Jitter::Full => rng.u64(0..=t),
        Jitter::Equal => {
            let half = t / 2;
            half + rng.u64(0..=t - half)
        }
        Jitter::Decorrelated => {
            let upper = prev.saturating_mul(3).max(base);
            rng.u64(base..=upper).min(cap)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for jitter in [
            Jitter::None,
            Jitter::Full,
            Jitter::Equal,
            Jitter::Decorrelated,
        ] {
            assert_eq!(Jitter::from_name(jitter.name()), Some(jitter));
            assert_eq!(jitter.to_string(), jitter.name());
        }
        assert_eq!(Jitter::from_name("Full"), None);
    }

    #[test]
    fn equal_jitter_keeps_half_and_stays_within_t() {
        let mut rng = fastrand::Rng::with_seed(7);
        for t in [0u64, 1, 2, 3, 1_000, u64::MAX] {
            for _ in 0..200 {
                let d = apply(Jitter::Equal, &mut rng, t, 0, 0, u64::MAX);
                assert!(d >= t / 2 && d <= t, "t={t} d={d}");
            }
        }
    }

    #[test]
    fn decorrelated_stays_between_base_and_cap() {
        let mut rng = fastrand::Rng::with_seed(3);
        let (base, cap) = (10, 1_000);
        let mut prev = base;
        for _ in 0..1_000 {
            let d = apply(Jitter::Decorrelated, &mut rng, 0, prev, base, cap);
            assert!((base..=cap).contains(&d));
            prev = d;
        }
        // Saturates instead of overflowing.
        let d = apply(Jitter::Decorrelated, &mut rng, 0, u64::MAX, 1, u64::MAX);
        assert!(d >= 1);
    }
}
