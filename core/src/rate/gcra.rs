//! The generic cell rate algorithm: a token bucket kept as one number, the theoretical arrival
//! time (TAT) of the next call, in nanoseconds since the limiter's origin.
//!
//! With an emission interval `T` (the period divided by the rate) and a burst `b`, a call at time
//! `t` asking for `n` tokens is admitted when `max(TAT, t) + n·T ≤ t + b·T`, and then moves the TAT
//! there. A bucket whose TAT is at or before `t` is full: it is exactly the bucket of a key never
//! seen, which is what lets the keyed limiter forget idle keys without changing any decision.

use std::sync::atomic::{AtomicU64, Ordering};

use super::rejected::{Reason, Rejected};

/// The rate, in the algorithm's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Params {
    /// Nanoseconds between tokens (at least 1).
    pub(super) interval: u64,
    /// `burst × interval`: how far ahead of now the TAT may run.
    pub(super) limit: u64,
    pub(super) burst: u32,
}

impl Params {
    /// The TAT after admitting `n` tokens at `t` on a bucket at `tat`, or the refusal.
    #[inline(always)]
    pub(super) fn admit(&self, tat: u64, n: u32, t: u64) -> Result<u64, Rejected> {
        let cost = if n == 1 {
            self.interval
        } else {
            if n > self.burst {
                return Err(Rejected::new(Reason::TooMany, u64::MAX, n, self.burst));
            }
            self.interval * u64::from(n)
        };
        let next = tat.max(t).saturating_add(cost);
        let ahead = next - t;
        if ahead <= self.limit {
            Ok(next)
        } else {
            Err(Rejected::new(
                Reason::Empty,
                ahead - self.limit,
                n,
                self.burst,
            ))
        }
    }
}

/// One bucket shared by every caller: a compare-and-swap on the TAT.
#[derive(Debug)]
pub(super) struct Gcra {
    tat: AtomicU64,
}

impl Gcra {
    pub(super) fn new() -> Self {
        Gcra {
            tat: AtomicU64::new(0),
        }
    }

    #[inline]
    pub(super) fn try_acquire(&self, params: &Params, n: u32, t: u64) -> Result<(), Rejected> {
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let next = params.admit(tat, n, t)?;
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(now) => tat = now,
            }
        }
    }

    /// Takes `n` tokens at `t` whatever the bucket holds (it may run into debt: the TAT may
    /// go past `t + limit`, and calls wait until it is paid). Saturating.
    pub(super) fn charge(&self, params: &Params, n: u64, t: u64) {
        let cost = params.interval.saturating_mul(n);
        let _ = self
            .tat
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |tat| {
                Some(tat.max(t).saturating_add(cost))
            });
    }

    /// The TAT: nanoseconds after the origin at which the bucket is (or was) full again.
    pub(super) fn tat(&self) -> u64 {
        self.tat.load(Ordering::Relaxed)
    }

    /// Tokens in the bucket at `t` (whole ones).
    pub(super) fn available(&self, params: &Params, t: u64) -> u32 {
        available(params, self.tat.load(Ordering::Relaxed), t)
    }
}

/// Whole tokens a bucket at `tat` holds at `t`.
pub(super) fn available(params: &Params, tat: u64, t: u64) -> u32 {
    let used = tat.saturating_sub(t);
    ((params.limit - used.min(params.limit)) / params.interval) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_token_per_interval() {
        let p = Params {
            interval: 10,
            limit: 30,
            burst: 3,
        };
        let g = Gcra::new();
        for _ in 0..3 {
            g.try_acquire(&p, 1, 0).unwrap();
        }
        let e = g.try_acquire(&p, 1, 0).unwrap_err();
        assert_eq!((e.reason, e.wait_nanos), (Reason::Empty, 10));
        assert!(g.try_acquire(&p, 1, 9).is_err());
        g.try_acquire(&p, 1, 10).unwrap();
        assert_eq!(g.available(&p, 10), 0);
        assert_eq!(g.available(&p, 40), 3);
        assert_eq!(
            g.try_acquire(&p, 4, 40).unwrap_err().reason,
            Reason::TooMany
        );
        g.try_acquire(&p, 3, 40).unwrap();
    }
}
