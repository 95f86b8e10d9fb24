//! How long the breaker stays open: a [`Backoff`] that grows with each failed probe round and
//! starts over when the breaker closes.

use std::time::Duration;

use crate::backoff::{Backoff, Jitter};
use crate::{validate, ConfigError};

/// The default open duration: 10 s doubling to 5 min, equal jitter (each opening lasts between
/// half and all of that, so a fleet that opened together probes at different times).
pub(crate) fn default_backoff() -> Backoff {
    Backoff::exponential(Duration::from_secs(10))
        .max_delay(Duration::from_secs(300))
        .jitter(Jitter::Equal)
        .build()
        .expect("the default open duration is valid")
}

/// A fixed open duration: the same `duration` every time, no jitter.
pub(crate) fn fixed(duration: Duration) -> Result<Backoff, ConfigError> {
    validate::positive_duration(
        "open_duration",
        duration,
        "a zero open duration probes at once",
    )?;
    validate::nanos("open_duration", duration)?;
    Backoff::constant(duration)
        .jitter(Jitter::None)
        .build()
        .map_err(|e| ConfigError::new("open_duration", e.message().to_owned()))
}

/// Refuses a backoff that could hold the breaker open for no time at all, or yields nothing.
pub(crate) fn check(field: &'static str, backoff: &Backoff) -> Result<(), ConfigError> {
    if backoff.base().is_zero() {
        return Err(ConfigError::new(
            field,
            "must start above zero (a zero open duration probes at once), got a base of 0ns",
        ));
    }
    if backoff.jitter() == Jitter::Full {
        return Err(ConfigError::new(
            field,
            "must not use full jitter, which can draw an open duration of zero; \
             use Jitter::Equal (t/2 + rand(0, t/2)), Jitter::Decorrelated or Jitter::None, got full",
        ));
    }
    if backoff.max_retries() == Some(0) {
        return Err(ConfigError::new(
            field,
            "must yield at least one duration; drop `max_retries` or set it to at least 1, got 0",
        ));
    }
    Ok(())
}

/// The breaker's open durations: the next one, and start over.
#[derive(Debug)]
pub(crate) struct OpenDurations {
    backoff: Backoff,
}

impl OpenDurations {
    /// Starts `backoff` from its first delay. An unseeded backoff gets a random stream of its
    /// own, so breakers built from clones of one backoff do not jitter in step; a seeded one
    /// keeps its seed, for reproducible runs.
    pub(crate) fn new(backoff: Backoff) -> Self {
        let backoff = match backoff.seed() {
            Some(_) => {
                let mut backoff = backoff;
                backoff.reset();
                backoff
            }
            None => backoff.fork(0),
        };
        OpenDurations { backoff }
    }

    /// The duration of the next opening. A backoff limited by `max_retries` keeps its last
    /// retry's delay (jittered afresh) once it runs out.
    pub(crate) fn next_duration(&mut self) -> Duration {
        // `check` refused `max_retries(0)`, the only way to get `None`.
        self.backoff.next_or_last().unwrap_or(Duration::ZERO)
    }

    /// Starts over from the first duration; the random state carries on.
    pub(crate) fn restart(&mut self) {
        self.backoff.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn the_default_grows_with_equal_jitter_to_five_minutes() {
        let mut open = OpenDurations::new(default_backoff());
        for n in 0..12 {
            let full = (secs(10) * 2u32.pow(n)).min(secs(300));
            let d = open.next_duration();
            assert!(
                d >= full / 2 && d <= full,
                "opening {n}: {d:?} not in [{full:?}/2, {full:?}]"
            );
        }
        open.restart();
        let d = open.next_duration();
        assert!(d >= secs(5) && d <= secs(10));
    }

    #[test]
    fn a_limited_backoff_keeps_its_last_duration_and_restarts() {
        let backoff = Backoff::exponential(secs(1))
            .max_retries(3)
            .jitter(Jitter::None)
            .build()
            .unwrap();
        let mut open = OpenDurations::new(backoff);
        let seq: Vec<_> = (0..5).map(|_| open.next_duration()).collect();
        assert_eq!(seq, [1, 2, 4, 4, 4].map(secs));
        open.restart();
        assert_eq!(open.next_duration(), secs(1));
    }

    #[test]
    fn unseeded_clones_jitter_differently_and_seeded_ones_reproduce() {
        let unseeded = default_backoff();
        let mut a = OpenDurations::new(unseeded.clone());
        let mut b = OpenDurations::new(unseeded);
        let a: Vec<_> = (0..8).map(|_| a.next_duration()).collect();
        let b: Vec<_> = (0..8).map(|_| b.next_duration()).collect();
        assert_ne!(a, b, "two breakers must not probe in lockstep");

        let seeded = Backoff::exponential(secs(1))
            .jitter(Jitter::Equal)
            .seed(7)
            .build()
            .unwrap();
        let mut a = OpenDurations::new(seeded.clone());
        let mut b = OpenDurations::new(seeded);
        for _ in 0..8 {
            assert_eq!(a.next_duration(), b.next_duration());
        }
    }

    #[test]
    fn restarting_does_not_replay_the_same_jitter() {
        let mut open = OpenDurations::new(default_backoff());
        let first: Vec<_> = (0..4).map(|_| open.next_duration()).collect();
        open.restart();
        let second: Vec<_> = (0..4).map(|_| open.next_duration()).collect();
        assert_ne!(first, second);
    }

    #[test]
    fn check_refuses_zero_full_jitter_and_empty_sequences() {
        let zero = Backoff::constant(Duration::ZERO).build().unwrap();
        let full = Backoff::exponential(secs(1))
            .jitter(Jitter::Full)
            .build()
            .unwrap();
        let empty = Backoff::exponential(secs(1))
            .jitter(Jitter::Equal)
            .max_retries(0)
            .build()
            .unwrap();
        for backoff in [zero, full, empty] {
            assert_eq!(
                check("open_backoff", &backoff).unwrap_err().field(),
                "open_backoff"
            );
        }
        assert!(check("open_backoff", &default_backoff()).is_ok());
        assert_eq!(fixed(Duration::ZERO).unwrap_err().field(), "open_duration");
        assert_eq!(fixed(Duration::MAX).unwrap_err().field(), "open_duration");
    }
}
