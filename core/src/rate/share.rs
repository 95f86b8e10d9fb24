//! The hooks through which a fleet (the `tailguard-fleet` crate) shares one rate across the
//! instances of a service: read how far the bucket has been used and how often it refused,
//! and take tokens on behalf of the rest of the fleet. Off the call path; the call path is
//! unchanged (a refusal also adds one to a counter).

use std::time::{Duration, Instant};

use super::handle::RateLimiter;
use crate::time::Timer;

impl<T: Timer> RateLimiter<T> {
    /// Takes `tokens` at `now` whatever the bucket holds: unlike
    /// [`try_acquire_n_at`](Self::try_acquire_n_at) it cannot be refused, and the bucket may
    /// run into debt (the calls after it wait, or are refused, until it is paid, at one token
    /// per [`interval`](Self::interval)).
    ///
    /// A fleet uses it to hold each instance to its share of a fleet-wide rate: with the
    /// limiter configured at the fleet's rate, it takes, every interval, the tokens the rest of
    /// the fleet was given meanwhile. Lock-free, no allocation.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tailguard::rate::RateLimiter;
    /// use tailguard::time::{ManualTimer, Timer};
    ///
    /// let timer = ManualTimer::new();
    /// let limiter = RateLimiter::builder()
    ///     .rate(10, Duration::from_secs(1))
    ///     .burst(2)
    ///     .build_with(timer.clone())?;
    /// let now = timer.now();
    /// limiter.charge_at(5, now); // 2 in the bucket, then 3 owed: 300 ms of debt
    /// assert!(limiter.try_acquire_at(now + Duration::from_millis(399)).is_err());
    /// assert!(limiter.try_acquire_at(now + Duration::from_millis(400)).is_ok());
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    pub fn charge_at(&self, tokens: u64, now: Instant) {
        let t = self.since_origin(now);
        self.shared.gcra.charge(&self.shared.params, tokens, t);
    }

    /// When the bucket is (or was) full again: the generic cell rate algorithm's theoretical
    /// arrival time. Every token taken moves it one [`interval`](Self::interval) forward from
    /// where it is, or from now if it is in the past (the tokens a full bucket could not hold
    /// are lost). So between two reads, with no other token taken, its advance divided by
    /// the interval is the tokens taken, exactly while the bucket never filled up meanwhile,
    /// and an upper estimate otherwise. A fleet reads it to measure each instance's use.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tailguard::rate::RateLimiter;
    /// use tailguard::time::{ManualTimer, Timer};
    ///
    /// let timer = ManualTimer::new();
    /// let limiter = RateLimiter::builder()
    ///     .rate(10, Duration::from_secs(1))
    ///     .burst(5)
    ///     .build_with(timer.clone())?;
    /// let now = timer.now();
    /// let before = limiter.full_at().max(now);
    /// for _ in 0..3 {
    ///     limiter.try_acquire_at(now).unwrap();
    /// }
    /// assert_eq!(limiter.full_at() - before, 3 * limiter.interval());
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    pub fn full_at(&self) -> Instant {
        self.shared
            .origin
            .checked_add(Duration::from_nanos(self.shared.gcra.tat()))
            .unwrap_or(self.shared.origin)
    }

    /// Calls refused since the limiter was built: by [`try_acquire`](Self::try_acquire) and
    /// its `_at` and `_n_at` forms, and waits refused at their deadline (a wait's attempts
    /// before it gets its token are not refusals). Counted whether or not the `metrics`
    /// feature is on, on the refusal path only. A fleet reads it to see an instance's demand
    /// beyond its share.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tailguard::rate::RateLimiter;
    /// use tailguard::time::ManualTimer;
    ///
    /// let limiter = RateLimiter::builder()
    ///     .rate(1, Duration::from_secs(1))
    ///     .build_with(ManualTimer::new())?;
    /// let admitted = (0..5).filter(|_| limiter.try_acquire().is_ok()).count();
    /// assert_eq!((admitted, limiter.refusals()), (1, 4));
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    pub fn refusals(&self) -> u64 {
        self.shared
            .refused
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::rate::RateLimiter;
    use crate::time::{ManualTimer, Timer};

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn charged_tokens_are_owed_and_paid_at_the_rate() {
        let timer = ManualTimer::new();
        let l = RateLimiter::builder()
            .rate(100, Duration::from_secs(1))
            .burst(10)
            .build_with(timer.clone())
            .unwrap();
        let t0 = timer.now();
        // A full bucket of 10, 30 taken for others: 20 owed, 200 ms.
        l.charge_at(30, t0);
        assert_eq!(l.available_at(t0 + 200 * MS), 0);
        assert!(l.try_acquire_at(t0 + 209 * MS).is_err());
        l.try_acquire_at(t0 + 210 * MS).unwrap();
        // Idle since: the debt is paid and the bucket refills, to its burst and no more.
        assert_eq!(l.available_at(t0 + Duration::from_secs(5)), 10);
        // A huge charge saturates rather than wrapping.
        l.charge_at(u64::MAX, t0 + Duration::from_secs(5));
        assert!(l.try_acquire_at(t0 + Duration::from_secs(3600)).is_err());
    }

    #[test]
    fn a_share_held_by_charging_the_rest_admits_the_share_over_time() {
        // The fleet's pattern: at the fleet's rate (1000/s), every 100 ms take the 2/3 the
        // rest of the fleet was given: a busy caller gets its third, 333/s, within a burst.
        let timer = ManualTimer::new();
        let l = RateLimiter::builder()
            .rate(1000, Duration::from_secs(1))
            .burst(5)
            .build_with(timer.clone())
            .unwrap();
        let t0 = timer.now();
        let mut admitted = 0;
        let mut carry = 0.0_f64;
        for ms in 0..10_000u32 {
            let now = t0 + ms * MS;
            if ms % 100 == 0 && ms > 0 {
                let owed = 1000.0 * 0.1 * (2.0 / 3.0) + carry;
                l.charge_at(owed as u64, now);
                carry = owed - owed.floor();
            }
            // Two attempts a millisecond: twice the fleet's rate.
            admitted += (0..2).filter(|_| l.try_acquire_at(now).is_ok()).count();
        }
        let share = 10_000 / 3;
        assert!(
            admitted.abs_diff(share) <= 100 + 5,
            "admitted {admitted}, share {share}"
        );
    }

    #[test]
    fn the_tat_measures_tokens_taken_and_refusals_are_counted() {
        let timer = ManualTimer::new();
        let l = RateLimiter::builder()
            .rate(10, Duration::from_secs(1))
            .burst(3)
            .build_with(timer.clone())
            .unwrap();
        let t0 = timer.now();
        let before = l.full_at().max(t0);
        let admitted = (0..5).filter(|_| l.try_acquire_at(t0).is_ok()).count();
        assert_eq!(admitted, 3);
        assert_eq!(l.full_at() - before, 300 * MS);
        assert_eq!(l.refusals(), 2);
        assert!(l.try_acquire_n_at(5, t0).is_err());
        assert_eq!(l.refusals(), 3);
        // A wait that gets its token is no refusal; one refused at its deadline is.
        timer.block_on(l.until_ready()).unwrap();
        assert_eq!(l.refusals(), 3);
        let deadline = timer.now();
        assert!(timer.block_on(l.acquire_until(deadline)).is_err());
        assert_eq!(l.refusals(), 4);
    }
}
