//! Sharing a rate limiter: each instance's limiter is configured at the fleet's rate and held
//! to its share of it by taking, every interval, the tokens the rest of the fleet was given
//! (`RateLimiter::charge_at`). Shares are proportional to the instances' recent demand
//! (tokens taken plus calls refused, per second), published as `1:at_ms:demand_mtps` (see
//! SCHEMA.md). Sans IO except for the limiter's clock read through [`SharedRate`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tailguard::rate::RateLimiter;
use tailguard::time::Timer;

use crate::value::{self, VERSION};

/// What a shared rate limiter does while Redis is unreachable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum RateFallback {
    /// Keep the last share (the default): the fleet keeps to its rate as long as its instances
    /// do not change, and under-uses it if some left. Fails closed: a rate limit usually
    /// protects a dependency, and letting every instance take the whole fleet's rate when
    /// Redis goes down would multiply the load by the fleet's size exactly when nobody can
    /// tell. An instance that has never reached Redis has no share yet: it runs at the full
    /// rate until it does.
    #[default]
    LastShare,
    /// Once no sync has reached Redis for `stale_after`, take the full rate: each instance
    /// alone, as without a fleet; the fleet may then admit up to `n` times its rate. Fails
    /// open: for limits that protect this instance rather than a shared dependency.
    FullRate,
}

/// A rate limiter as the thread sees it (any timer).
pub(crate) trait SharedRate: Send + 'static {
    fn now(&self) -> Instant;
    fn charge_at(&self, tokens: u64, now: Instant);
    fn full_at(&self) -> Instant;
    fn refusals(&self) -> u64;
    fn interval(&self) -> Duration;
}

impl<T: Timer> SharedRate for RateLimiter<T> {
    fn now(&self) -> Instant {
        self.timer().now()
    }
    fn charge_at(&self, tokens: u64, now: Instant) {
        RateLimiter::charge_at(self, tokens, now);
    }
    fn full_at(&self) -> Instant {
        RateLimiter::full_at(self)
    }
    fn refusals(&self) -> u64 {
        RateLimiter::refusals(self)
    }
    fn interval(&self) -> Duration {
        RateLimiter::interval(self)
    }
}

/// One instance's published demand for one rate limiter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RateEntry {
    /// When it was published, in milliseconds since the Unix epoch on the publisher's clock.
    pub(crate) at_ms: u64,
    /// Tokens taken plus calls refused over the publisher's last interval, in thousandths of
    /// a token per second.
    pub(crate) demand_mtps: u64,
}

impl RateEntry {
    /// `1:at_ms:demand_mtps`.
    pub(crate) fn encode(&self) -> String {
        format!("{VERSION}:{}:{}", self.at_ms, self.demand_mtps)
    }

    /// The entry, or `None` for a value of another version or shape.
    pub(crate) fn decode(value: &str) -> Option<RateEntry> {
        let [at_ms, demand_mtps] = value::fields(value)?;
        Some(RateEntry {
            at_ms: value::unsigned(at_ms)?,
            demand_mtps: value::unsigned(demand_mtps)?,
        })
    }
}

/// What a read of a rate limiter's hash decided.
#[derive(Debug, PartialEq)]
pub(crate) struct Division {
    /// This instance's share of the fleet's rate, in (0, 1].
    pub(crate) share: f64,
    /// Fields too old (or unreadable) to count: remove them.
    pub(crate) stale: Vec<String>,
    /// Other instances with fresh values.
    pub(crate) peers: usize,
}

/// The division rule (SCHEMA.md, "Rate limiters"): each fresh instance weighs its demand, but
/// at least 5% of an equal share of the fleet's rate (`rate_mtps / (20 n)`), so an idle
/// instance can start; this instance's share is its weight over the sum.
pub(crate) fn divide(
    own_mtps: u64,
    rate_mtps: u64,
    hash: &HashMap<String, String>,
    me: &str,
    now_ms: u64,
    stale_after_ms: u64,
) -> Division {
    let mut stale = Vec::new();
    let mut demands = vec![own_mtps];
    for (id, value) in hash {
        if id == me {
            continue;
        }
        match RateEntry::decode(value) {
            Some(entry) if value::is_fresh(entry.at_ms, now_ms, stale_after_ms) => {
                demands.push(entry.demand_mtps);
            }
            _ => stale.push(id.clone()),
        }
    }
    let n = demands.len() as f64;
    let floor = rate_mtps as f64 / (20.0 * n);
    let weight = |d: u64| (d as f64).max(floor).max(1.0);
    let total: f64 = demands.iter().map(|&d| weight(d)).sum();
    Division {
        share: weight(own_mtps) / total,
        stale,
        peers: demands.len() - 1,
    }
}

/// One shared rate limiter in the thread: its handle and what the last sync left.
pub(crate) struct RateSlot {
    pub(crate) limiter: Box<dyn SharedRate>,
    pub(crate) key: String,
    pub(crate) fallback: RateFallback,
    /// The share in force, as `f64` bits, also read by `Fleet::rate_share`.
    pub(crate) share: Arc<AtomicU64>,
    /// The last measurement: the limiter's time, its `full_at` after the charge then, and its
    /// refusals then.
    last: Option<(Instant, Instant, u64)>,
    /// This interval's measurement: the limiter's time and the demand published.
    pending: Option<(Instant, u64)>,
    /// Fractions of a token owed but not yet charged.
    carry: f64,
}

impl RateSlot {
    pub(crate) fn new(
        limiter: Box<dyn SharedRate>,
        key: String,
        fallback: RateFallback,
        share: Arc<AtomicU64>,
    ) -> Self {
        share.store(1.0_f64.to_bits(), Ordering::Relaxed);
        RateSlot {
            limiter,
            key,
            fallback,
            share,
            last: None,
            pending: None,
            carry: 0.0,
        }
    }

    /// The fleet's rate, in tokens per second.
    fn rate(&self) -> f64 {
        1.0 / self.limiter.interval().as_secs_f64()
    }

    /// The fleet's rate in thousandths of a token per second.
    pub(crate) fn rate_mtps(&self) -> u64 {
        (self.rate() * 1000.0) as u64
    }

    /// The share in force.
    pub(crate) fn share(&self) -> f64 {
        f64::from_bits(self.share.load(Ordering::Relaxed))
    }

    /// Measures this instance's demand since the last sync (tokens taken, from `full_at`'s
    /// advance, plus calls refused, per second) and returns the value to publish.
    pub(crate) fn measure(&mut self, now_ms: u64) -> RateEntry {
        let now = self.limiter.now();
        let demand_mtps = match self.last {
            Some((at, full, refused)) if now > at => {
                let interval = self.limiter.interval().as_secs_f64();
                let taken = self
                    .limiter
                    .full_at()
                    .saturating_duration_since(full)
                    .as_secs_f64()
                    / interval;
                let refused = self.limiter.refusals().saturating_sub(refused) as f64;
                let per_second = (taken + refused) / (now - at).as_secs_f64();
                (per_second * 1000.0) as u64
            }
            // Nothing measured yet: ask for an equal share's floor (see `divide`).
            _ => 0,
        };
        self.pending = Some((now, demand_mtps));
        RateEntry {
            at_ms: now_ms,
            demand_mtps,
        }
    }

    /// Applies `share` (or, if `None`, keeps the one in force) for the time since the last
    /// sync: takes the tokens the rest of the fleet was given meanwhile. Call after
    /// [`measure`](Self::measure).
    pub(crate) fn apply(&mut self, share: Option<f64>) {
        let Some((now, _)) = self.pending.take() else {
            return;
        };
        if let Some(share) = share {
            self.share.store(share.to_bits(), Ordering::Relaxed);
        }
        let share = self.share();
        if let Some((at, _, _)) = self.last {
            let elapsed = now.saturating_duration_since(at).as_secs_f64();
            let owed = (1.0 - share) * self.rate() * elapsed + self.carry;
            let whole = owed.floor().max(0.0);
            self.carry = owed - whole;
            if whole >= 1.0 {
                self.limiter.charge_at(whole as u64, now);
            }
        }
        let full = self.limiter.full_at().max(now);
        self.last = Some((now, full, self.limiter.refusals()));
    }

    /// A sync that did not reach Redis: `alone` once none has for `stale_after`. The fallback
    /// decides the share: the last one, or (alone, [`RateFallback::FullRate`]) all of it.
    pub(crate) fn apply_without_redis(&mut self, alone: bool) {
        self.measure(0);
        let share = (alone && self.fallback == RateFallback::FullRate).then_some(1.0);
        self.apply(share);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STALE: u64 = 3_000;

    fn hash(entries: &[(&str, &str)]) -> HashMap<String, String> {
        entries
            .iter()
            .map(|(id, v)| ((*id).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn entries_round_trip_and_foreign_values_are_refused() {
        let entry = RateEntry {
            at_ms: 1_764_000_000_123,
            demand_mtps: 250_000,
        };
        assert_eq!(entry.encode(), "1:1764000000123:250000");
        assert_eq!(RateEntry::decode(&entry.encode()), Some(entry));
        for value in ["", "2:1:2", "1:1", "1:1:2:3", "1:1:-2", "1:1:+2", "1:1:1.5"] {
            assert_eq!(RateEntry::decode(value), None, "{value:?}");
        }
    }

    #[test]
    fn shares_follow_demand_and_add_up_to_one() {
        let rate = 300_000; // 300 tokens a second
        let h = hash(&[
            ("a", "1:1000:200000"),
            ("b", "1:1000:100000"),
            ("c", "1:1000:100000"),
        ]);
        let shares: Vec<f64> = [("a", 200_000), ("b", 100_000), ("c", 100_000)]
            .iter()
            .map(|(id, own)| divide(*own, rate, &h, id, 1_000, STALE).share)
            .collect();
        assert!((shares[0] - 0.5).abs() < 1e-9 && (shares[1] - 0.25).abs() < 1e-9);
        assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        // An idle instance keeps a floor of 5% of an equal share; the rest goes by demand.
        let h = hash(&[("a", "1:1000:0"), ("b", "1:1000:300000")]);
        let idle = divide(0, rate, &h, "a", 1_000, STALE);
        assert!(
            (idle.share - 7_500.0 / 307_500.0).abs() < 1e-9,
            "{}",
            idle.share
        );
        assert_eq!(idle.peers, 1);
        // Alone: everything.
        assert_eq!(
            divide(5, rate, &HashMap::new(), "a", 1_000, STALE).share,
            1.0
        );
    }

    #[test]
    fn stale_and_unreadable_values_do_not_count() {
        let mut h = hash(&[("old", "1:1000:300000")]);
        h.insert("junk".to_owned(), "x".to_owned());
        let d = divide(100_000, 300_000, &h, "me", 1_000 + STALE + 1, STALE);
        assert_eq!((d.share, d.peers), (1.0, 0));
        let mut stale = d.stale;
        stale.sort();
        assert_eq!(stale, ["junk", "old"]);
    }
}
