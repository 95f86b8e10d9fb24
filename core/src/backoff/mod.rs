//! Delays between retries: constant, linear or exponential, capped, randomized.
//!
//! A [`Backoff`] is a plain [`Iterator`] of [`Duration`]s: the delay before the first retry, then
//! before the second, and so on, ending after [`max_retries`](BackoffBuilder::max_retries) if set.
//! It does no I/O and reads no clock, so it can drive anything: the async
//! [`Retry`](crate::retry::Retry), a synchronous loop, a simulation, or the Python binding.
//!
//! Why randomize? When many clients fail at the same moment (a server restarts, a lock is
//! contended), clients with identical backoff retry at identical moments and collide again, round
//! after round. Jitter spreads them out. The AWS study "Exponential Backoff and Jitter" (Brooker,
//! 2015) measured it; `tailguard-demo herd` reproduces it. [`Jitter`] lists the formulas.
//!
//! ```
//! use std::time::Duration;
//! use tailguard::backoff::{Backoff, Jitter};
//!
//! // 100 ms, 200 ms, 400 ms, ... capped at 1 s, five retries at most, no randomness.
//! let delays: Vec<Duration> = Backoff::exponential(Duration::from_millis(100))
//!     .max_delay(Duration::from_secs(1))
//!     .max_retries(5)
//!     .jitter(Jitter::None)
//!     .build()?
//!     .collect();
//! let ms: Vec<u128> = delays.iter().map(Duration::as_millis).collect();
//! assert_eq!(ms, [100, 200, 400, 800, 1000]);
//!
//! // Full jitter draws each delay from [0, t]; a seed makes the run reproducible.
//! let jittered = Backoff::exponential(Duration::from_millis(100))
//!     .max_delay(Duration::from_secs(1))
//!     .seed(42)
//!     .build()?;
//! let again = jittered.clone(); // clones the random state too
//! assert!(jittered.take(10).eq(again.take(10)));
//! # Ok::<(), tailguard::ConfigError>(())
//! ```
//!
//! Builders refuse what makes no sense, naming the field: a factor below 1 or NaN, a zero base
//! for exponential growth, a cap below the base, a duration too large to count in nanoseconds.
//!
//! ```
//! use std::time::Duration;
//! use tailguard::backoff::Backoff;
//!
//! let err = Backoff::exponential(Duration::from_millis(100)).factor(f64::NAN).build().unwrap_err();
//! assert_eq!(err.field(), "factor");
//! let err = Backoff::exponential(Duration::from_secs(2))
//!     .max_delay(Duration::from_secs(1))
//!     .build()
//!     .unwrap_err();
//! assert_eq!(err.field(), "max_delay");
//! ```

mod builder;
mod jitter;

use std::time::Duration;

pub use self::builder::BackoffBuilder;
pub use self::jitter::Jitter;

/// The largest delay a [`Backoff`] can express: `u64::MAX` nanoseconds, about 584 years. An
/// uncapped exponential backoff saturates here instead of overflowing.
pub const MAX_DELAY: Duration = Duration::from_nanos(u64::MAX);

/// How the un-jittered delay grows with the retry number `n` (0 for the first retry).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Growth {
    /// `base`.
    Constant,
    /// `base + n·step`.
    Linear { step: u64 },
    /// `base·factorⁿ`.
    Exponential { factor: f64 },
}

/// A sequence of retry delays; see the [module documentation](self).
///
/// Build one with [`Backoff::constant`], [`Backoff::linear`] or [`Backoff::exponential`]. It
/// yields one delay per retry and ends after [`max_retries`](BackoffBuilder::max_retries) delays
/// (never, if unset). Every delay is at most the cap ([`max_delay`](BackoffBuilder::max_delay)),
/// and nothing overflows however many retries you ask for.
///
/// `Clone` copies the position in the sequence and the random state: a clone yields the same
/// delays as the original from that point. Use [`reseed`](Backoff::reseed) to make clones differ,
/// and [`reset`](Backoff::reset) to start the sequence over.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: u64,
    growth: Growth,
    cap: u64,
    max_retries: Option<u32>,
    jitter: Jitter,
    seed: Option<u64>,
    /// Delays yielded so far.
    retries: u32,
    cursor: Cursor,
}

/// The random part of a backoff's position: its random state and previous delay. A retry loop
/// keeps only this (and counts retries itself) and reads the rest from its policy's
/// [`Backoff`], so its future stays small.
#[derive(Debug, Clone)]
pub(crate) struct Cursor {
    rng: fastrand::Rng,
    /// The previous delay, for decorrelated jitter.
    prev: u64,
}

impl Cursor {
    /// A cursor to overwrite before use (see [`Backoff::fork_cursor`]).
    pub(crate) const PLACEHOLDER: Cursor = Cursor {
        rng: fastrand::Rng::with_seed(0),
        prev: 0,
    };
}

impl Backoff {
    /// The same `delay` before every retry (then jittered; pass [`Jitter::None`] for exact
    /// delays). A zero delay is allowed: retry at once.
    pub fn constant(delay: Duration) -> BackoffBuilder {
        BackoffBuilder::new(delay, Growth::Constant)
    }

    /// `base`, `base + step`, `base + 2·step`, ... (then jittered).
    pub fn linear(base: Duration, step: Duration) -> BackoffBuilder {
        BackoffBuilder::new(base, Growth::Linear { step: 0 }).step(step)
    }

    /// `base`, `base·2`, `base·4`, ... (then jittered); change the factor with
    /// [`factor`](BackoffBuilder::factor). `base` must be greater than zero.
    pub fn exponential(base: Duration) -> BackoffBuilder {
        BackoffBuilder::new(base, Growth::Exponential { factor: 2.0 })
    }

    /// The delay before the first retry, before jitter.
    pub fn base(&self) -> Duration {
        Duration::from_nanos(self.base)
    }

    /// The cap: no delay is ever longer. [`MAX_DELAY`] when no cap was set.
    pub fn max_delay(&self) -> Duration {
        Duration::from_nanos(self.cap)
    }

    /// How many delays the sequence yields in all, if limited.
    pub fn max_retries(&self) -> Option<u32> {
        self.max_retries
    }

    /// The jitter mode.
    pub fn jitter(&self) -> Jitter {
        self.jitter
    }

    /// The seed given to the builder or to [`reseed`](Backoff::reseed), if any.
    pub fn seed(&self) -> Option<u64> {
        self.seed
    }

    /// How many delays have been yielded since the start or the last [`reset`](Backoff::reset).
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// Starts the sequence over: the next delay is the first retry's again. The random state
    /// carries on, so jittered delays differ from the first run's.
    pub fn reset(&mut self) {
        self.retries = 0;
        self.cursor.prev = self.base;
    }

    /// Replaces the random state with one seeded by `seed`, for reproducible runs. Two backoffs
    /// with the same configuration, position and seed yield the same delays.
    pub fn reseed(&mut self, seed: u64) {
        self.seed = Some(seed);
        self.cursor.rng = fastrand::Rng::with_seed(seed);
    }

    /// A fresh copy at the start of the sequence with its own random stream, for one run of a
    /// retry loop. A seeded backoff derives the copy's seed from its own seed and `stream`, so
    /// run `k` of a seeded policy is reproducible; an unseeded one draws a random seed.
    pub fn fork(&self, stream: u64) -> Backoff {
        let mut copy = self.clone();
        copy.retries = 0;
        copy.cursor = self.fork_cursor(stream);
        if let Some(seed) = self.seed {
            copy.seed = Some(mix(seed, stream));
        }
        copy
    }

    /// The cursor of [`fork`](Backoff::fork)`(stream)`.
    pub(crate) fn fork_cursor(&self, stream: u64) -> Cursor {
        let seed = match self.seed {
            Some(seed) => mix(seed, stream),
            None => fastrand::u64(..),
        };
        Cursor {
            rng: fastrand::Rng::with_seed(seed),
            prev: self.base,
        }
    }

    /// The delay of retry `n` (from 0) with random state `cursor`, which moves on; `None` past
    /// `max_retries`.
    pub(crate) fn next_at(&self, n: u32, cursor: &mut Cursor) -> Option<Duration> {
        if self.max_retries.is_some_and(|max| n >= max) {
            return None;
        }
        Some(self.delay_at(n, cursor))
    }

    /// The delay of retry `n` (from 0) with random state `cursor`, which moves on, whatever
    /// `max_retries` says.
    fn delay_at(&self, n: u32, cursor: &mut Cursor) -> Duration {
        let t = self.raw(n);
        let delay = jitter::apply(
            self.jitter,
            &mut cursor.rng,
            t,
            cursor.prev,
            self.base,
            self.cap,
        );
        cursor.prev = delay;
        Duration::from_nanos(delay)
    }

    /// Like [`next`](Iterator::next), except that a sequence limited by `max_retries` does not
    /// end: past its last retry it keeps yielding that retry's delay, jittered afresh each time.
    /// `None` only when `max_retries` is 0. The circuit breaker draws its open durations this
    /// way, so a backoff with a retry limit means "stop growing after this many openings".
    pub(crate) fn next_or_last(&mut self) -> Option<Duration> {
        if let Some(delay) = self.next() {
            return Some(delay);
        }
        let last = self.max_retries?.checked_sub(1)?;
        let mut cursor = self.cursor.clone();
        let delay = self.delay_at(last, &mut cursor);
        self.cursor = cursor;
        Some(delay)
    }

    /// The un-jittered delay of retry `n` (0-based), in nanoseconds, capped.
    fn raw(&self, n: u32) -> u64 {
        let t = match self.growth {
            Growth::Constant => self.base,
            Growth::Linear { step } => self.base.saturating_add(step.saturating_mul(u64::from(n))),
            Growth::Exponential { factor } => {
                let exponent = i32::try_from(n).unwrap_or(i32::MAX);
                let t = self.base as f64 * factor.powi(exponent);
                // `t` is ≥ base > 0 and may be infinite; anything not below the cap is the cap.
                if t < self.cap as f64 {
                    t as u64
                } else {
                    self.cap
                }
            }
        };
        t.min(self.cap)
    }
}

impl Default for Backoff {
    /// Exponential from 100 ms, factor 2, capped at 10 s, full jitter, unlimited retries.
    fn default() -> Self {
        Backoff::exponential(Duration::from_millis(100))
            .max_delay(Duration::from_secs(10))
            .build()
            .expect("the default backoff is valid")
    }
}

impl Iterator for Backoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let mut cursor = self.cursor.clone();
        let delay = self.next_at(self.retries, &mut cursor)?;
        self.cursor = cursor;
        self.retries = self.retries.saturating_add(1);
        Some(delay)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self.max_retries {
            Some(max) => {
                let left = max.saturating_sub(self.retries) as usize;
                (left, Some(left))
            }
            None => (usize::MAX, None),
        }
    }
}

/// SplitMix64 of `seed` and `stream`: well-spread seeds for forked streams.
fn mix(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests;
