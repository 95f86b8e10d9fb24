use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use crate::reserve::Reserve;
use crate::time::Timer;
use crate::{validate, ConfigError};

/// One hedge, in the budget's fixed-point units (billionths of a hedge).
const UNIT: u64 = 1_000_000_000;
/// The largest accepted ratio: a thousand hedges per primary is already absurd.
const MAX_RATIO: f64 = 1000.0;

/// A cap on the extra load hedging may add: hedges ≤ `ratio` × primaries, plus a small floor
/// of `min_per_second` hedges a second so that hedging works from the very first call.
///
/// Every primary call [`deposit`](HedgeBudget::deposit)s `ratio` of a hedge; every hedge
/// [`try_withdraw_at`](HedgeBudget::try_withdraw_at)s a whole one. It is taken from the
/// deposits when at least one hedge is saved up there, and otherwise from a **reserve** that
/// holds up to `min_per_second` hedges, starts full and refills at `min_per_second` a second
/// (as Finagle's retry budget does). Without the reserve a fresh budget would be empty: with
/// a 5 % ratio, the first twenty calls could never hedge, and a client with little traffic
/// hardly ever.
///
/// The balance is kept in billionths of a hedge, so decimal ratios are exact: with a ratio of
/// 0.02, the 50th primary earns the first hedge, not the 51st because 50 × 0.02 came out as
/// 0.9999999. Savings from deposits are capped at `max_burst` hedges, so a long calm spell
/// cannot bank enough to double the load in a sudden slowdown, which is exactly when extra
/// load hurts most.
///
/// # The bound
///
/// From the budget's creation until any instant, `t` after the first withdrawal:
///
/// ```text
/// hedges ≤ ratio × primaries + min_per_second × (1 s + t)
/// ```
///
/// (and over any stretch of time `t`, at most `max_burst` more, saved up before it). The ratio
/// bounds the extra load of a busy client; the floor only matters to one making fewer than
/// `min_per_second / ratio` calls a second (200 a second with the defaults).
///
/// ```
/// use std::time::{Duration, Instant};
/// use tailguard::hedge::HedgeBudget;
///
/// let start = Instant::now();
/// // 2 % extra load and a floor of 1 hedge a second.
/// let budget = HedgeBudget::builder().ratio(0.02).min_per_second(1).build()?;
/// assert!(budget.try_withdraw_at(start), "the reserve: the first call may hedge");
/// assert!(!budget.try_withdraw_at(start), "and it holds one second's worth");
/// for _ in 0..50 {
///     budget.deposit();
/// }
/// assert!(budget.try_withdraw_at(start), "50 primaries earn a whole hedge");
/// assert!(!budget.try_withdraw_at(start));
/// assert!(budget.try_withdraw_at(start + Duration::from_secs(1)), "the reserve refilled");
/// # Ok::<(), tailguard::ConfigError>(())
/// ```
///
/// It is sans-IO (time comes in as an argument, and only a withdrawal needs it) and lock-free;
/// clones share one balance, so one budget can cover every policy that calls the same backend.
#[derive(Clone)]
pub struct HedgeBudget {
    inner: Arc<Inner>,
}

struct Inner {
    per_primary: u64,
    cap: u64,
    balance: AtomicU64,
    reserve: Reserve,
}

impl HedgeBudget {
    /// The savings cap used by default: 100 hedges.
    pub const DEFAULT_MAX_BURST: u32 = 100;
    /// The floor used by default: 10 hedges a second, at most 10 saved up.
    pub const DEFAULT_MIN_PER_SECOND: u32 = 10;
    /// The ratio used by default: 5 % extra load.
    pub const DEFAULT_RATIO: f64 = 0.05;

    /// Settings for a budget, from the defaults: a ratio of
    /// [`DEFAULT_RATIO`](HedgeBudget::DEFAULT_RATIO), savings capped at
    /// [`DEFAULT_MAX_BURST`](HedgeBudget::DEFAULT_MAX_BURST), a floor of
    /// [`DEFAULT_MIN_PER_SECOND`](HedgeBudget::DEFAULT_MIN_PER_SECOND).
    pub fn builder() -> HedgeBudgetBuilder {
        HedgeBudgetBuilder {
            ratio: Self::DEFAULT_RATIO,
            max_burst: Self::DEFAULT_MAX_BURST,
            min_per_second: Self::DEFAULT_MIN_PER_SECOND,
        }
    }

    /// A budget of `ratio` hedges per primary (0.05 allows 5 % extra load), with the default
    /// savings cap and floor; see [`builder`](HedgeBudget::builder).
    ///
    /// `ratio` must be finite and in `[0, 1000]`; 0 leaves only the floor. It is kept to nine
    /// decimal places, and a positive ratio below one billionth is refused.
    pub fn new(ratio: f64) -> Result<Self, ConfigError> {
        HedgeBudget::builder().ratio(ratio).build()
    }

    /// Like [`new`](HedgeBudget::new), saving up at most `max_burst` hedges (at least 1).
    pub fn with_max_burst(ratio: f64, max_burst: u32) -> Result<Self, ConfigError> {
        HedgeBudget::builder()
            .ratio(ratio)
            .max_burst(max_burst)
            .build()
    }

    /// Credits one primary call: earns `ratio` of a hedge, up to the savings cap. Reads no clock.
    #[inline]
    pub fn deposit(&self) {
        let inner = &*self.inner;
        if inner.per_primary == 0 {
            return;
        }
        let _ = inner.balance.fetch_update(Relaxed, Relaxed, |balance| {
            (balance < inner.cap).then(|| (balance + inner.per_primary).min(inner.cap))
        });
    }

    /// Takes one hedge at `now`, from the deposits if a whole one is saved there, else from the
    /// reserve; `false` (and nothing taken) if neither has one.
    #[inline]
    pub fn try_withdraw_at(&self, now: Instant) -> bool {
        let inner = &*self.inner;
        inner
            .balance
            .fetch_update(Relaxed, Relaxed, |balance| balance.checked_sub(UNIT))
            .is_ok()
            || inner.reserve.try_take_at(now)
    }

    /// Takes one hedge at `now` for a call that can still wait: from the deposits only if at
    /// least `keep` whole hedges stay saved after it, else from the reserve; `false` (and
    /// nothing taken) otherwise.
    ///
    /// [`HedgeState`](super::HedgeState) draws a hedge at its first chance this way, keeping
    /// half of [`max_burst`](HedgeBudget::max_burst) for the calls still stuck at their later
    /// chances, which [`try_withdraw_at`](HedgeBudget::try_withdraw_at).
    ///
    /// ```
    /// use std::time::Instant;
    /// use tailguard::hedge::HedgeBudget;
    ///
    /// let now = Instant::now();
    /// let budget = HedgeBudget::builder().ratio(1.0).min_per_second(0).build()?;
    /// for _ in 0..3 {
    ///     budget.deposit();
    /// }
    /// assert!(budget.try_withdraw_keeping_at(now, 2), "3 saved: one may go, 2 stay");
    /// assert!(!budget.try_withdraw_keeping_at(now, 2), "2 saved are kept");
    /// assert!(budget.try_withdraw_at(now), "but a call that cannot wait takes one");
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    #[inline]
    pub fn try_withdraw_keeping_at(&self, now: Instant, keep: u64) -> bool {
        let inner = &*self.inner;
        let need = keep.saturating_add(1).saturating_mul(UNIT);
        inner
            .balance
            .fetch_update(Relaxed, Relaxed, |balance| {
                (balance >= need).then(|| balance - UNIT)
            })
            .is_ok()
            || inner.reserve.try_take_at(now)
    }

    /// [`try_withdraw_at`](HedgeBudget::try_withdraw_at) the system clock's now.
    pub fn try_withdraw(&self) -> bool {
        self.try_withdraw_at(Instant::now())
    }

    /// [`try_withdraw_at`](HedgeBudget::try_withdraw_at) `timer`'s now.
    pub fn try_withdraw_with<T: Timer>(&self, timer: T) -> bool {
        self.try_withdraw_at(timer.now())
    }

    /// How many whole hedges could be sent at `now`, one after another: the deposits' and the
    /// reserve's.
    pub fn available_at(&self, now: Instant) -> u64 {
        self.inner.balance.load(Relaxed) / UNIT + self.inner.reserve.available_at(now)
    }

    /// [`available_at`](HedgeBudget::available_at) the system clock's now.
    pub fn available(&self) -> u64 {
        self.available_at(Instant::now())
    }

    /// The configured ratio of hedges to primaries.
    pub fn ratio(&self) -> f64 {
        self.inner.per_primary as f64 / UNIT as f64
    }

    /// The most hedges that can be saved up from deposits.
    pub fn max_burst(&self) -> u64 {
        self.inner.cap / UNIT
    }

    /// The floor: hedges a second allowed whatever the traffic (and the most the reserve holds).
    pub fn min_per_second(&self) -> u32 {
        self.inner.reserve.per_second()
    }
}

/// Settings for a [`HedgeBudget`], checked by [`build`](HedgeBudgetBuilder::build).
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct HedgeBudgetBuilder {
    ratio: f64,
    max_burst: u32,
    min_per_second: u32,
}

impl HedgeBudgetBuilder {
    /// Hedges per primary call (default 0.05: 5 % extra load); finite, in `[0, 1000]`, and 0 or
    /// at least one billionth.
    pub fn ratio(mut self, ratio: f64) -> Self {
        self.ratio = ratio;
        self
    }

    /// The most hedges saved up from deposits (default 100, at least 1).
    pub fn max_burst(mut self, max_burst: u32) -> Self {
        self.max_burst = max_burst;
        self
    }

    /// The floor (default 10): a reserve of this many hedges, full at the start and refilling
    /// at this many a second, drawn on when the deposits hold no whole hedge. Zero leaves only
    /// the ratio (and a fresh budget then refuses its first hedges).
    pub fn min_per_second(mut self, hedges: u32) -> Self {
        self.min_per_second = hedges;
        self
    }

    /// Checks every value and makes the budget.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming `budget_ratio` or `max_burst`.
    pub fn build(self) -> Result<HedgeBudget, ConfigError> {
        let ratio = self.ratio;
        if !(0.0..=MAX_RATIO).contains(&ratio) {
            return Err(ConfigError::new(
                "budget_ratio",
                format!(
                    "must be a finite number in [0, {MAX_RATIO}] (0.05 = 5 % extra load), got {}",
                    crate::validate::Float(ratio)
                ),
            ));
        }
        let per_primary = (ratio * UNIT as f64).round() as u64;
        if ratio > 0.0 && per_primary == 0 {
            return Err(ConfigError::new(
                "budget_ratio",
                format!(
                    "must be 0 or at least 1e-9, got {}",
                    crate::validate::Float(ratio)
                ),
            ));
        }
        validate::at_least_one(
            "max_burst",
            self.max_burst,
            "a budget that can never hold a whole hedge refuses them all",
        )?;
        Ok(HedgeBudget {
            inner: Arc::new(Inner {
                per_primary,
                cap: u64::from(self.max_burst) * UNIT,
                balance: AtomicU64::new(0),
                reserve: Reserve::new(self.min_per_second),
            }),
        })
    }
}

impl fmt::Debug for HedgeBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeBudget")
            .field("ratio", &self.ratio())
            .field("max_burst", &self.max_burst())
            .field("min_per_second", &self.min_per_second())
            .field(
                "balance",
                &(self.inner.balance.load(Relaxed) as f64 / UNIT as f64),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;

    /// A budget with no floor: only the ratio.
    fn ratio_only(ratio: f64, max_burst: u32) -> HedgeBudget {
        HedgeBudget::builder()
            .ratio(ratio)
            .max_burst(max_burst)
            .min_per_second(0)
            .build()
            .unwrap()
    }

    #[test]
    fn rejects_bad_ratios_naming_the_field() {
        for bad in [f64::NAN, -0.1, f64::INFINITY, 1000.5, 1e-12] {
            let err = HedgeBudget::new(bad).unwrap_err();
            assert_eq!(err.field(), "budget_ratio", "{bad}");
        }
        let err = HedgeBudget::with_max_burst(0.1, 0).unwrap_err();
        assert_eq!(err.field(), "max_burst");
        assert!(err.to_string().contains("at least 1"));
    }

    #[test]
    fn zero_ratio_refuses_everything() {
        let budget = ratio_only(0.0, 1);
        for _ in 0..1000 {
            budget.deposit();
        }
        assert!(!budget.try_withdraw());
    }

    #[test]
    fn fractional_ratios_are_exact() {
        // (ratio, as a fraction num/den): the oracle is integer arithmetic.
        for (ratio, num, den) in [
            (0.02, 1u64, 50u64),
            (0.1, 1, 10),
            (0.3, 3, 10),
            (0.125, 1, 8),
        ] {
            let budget = ratio_only(ratio, 1000);
            let mut hedges = 0u64;
            for primary in 1..=10_000u64 {
                budget.deposit();
                while budget.try_withdraw() {
                    hedges += 1;
                }
                // Never more than ratio × primaries, and never lagging by a whole hedge.
                assert_eq!(
                    hedges,
                    primary * num / den,
                    "ratio {ratio} after {primary} primaries"
                );
            }
        }
    }

    #[test]
    fn savings_are_capped() {
        let budget = ratio_only(0.5, 3);
        for _ in 0..100 {
            budget.deposit();
        }
        assert_eq!(budget.available(), 3);
        assert!(budget.try_withdraw() && budget.try_withdraw() && budget.try_withdraw());
        assert!(!budget.try_withdraw());
    }

    #[test]
    fn clones_share_one_balance_across_threads() {
        let budget = ratio_only(0.25, 10_000);
        std::thread::scope(|s| {
            for _ in 0..4 {
                let b = budget.clone();
                s.spawn(move || (0..1000).for_each(|_| b.deposit()));
            }
        });
        assert_eq!(budget.available(), 1000);
        let taken: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let b = budget.clone();
                    s.spawn(move || (0..500).filter(|_| b.try_withdraw()).count())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(taken, 1000);
    }

    #[test]
    fn a_fresh_budget_allows_hedging_from_the_first_call() {
        let t0 = Instant::now();
        let budget = HedgeBudget::new(0.05).unwrap();
        assert_eq!(budget.min_per_second(), HedgeBudget::DEFAULT_MIN_PER_SECOND);
        assert_eq!(budget.available_at(t0), 10);
        let granted = (0..100).filter(|_| budget.try_withdraw_at(t0)).count();
        assert_eq!(granted, 10, "the reserve holds one second's worth");
        // Refills at 10 a second: one per 100 ms.
        assert!(!budget.try_withdraw_at(t0 + Duration::from_millis(99)));
        assert!(budget.try_withdraw_at(t0 + Duration::from_millis(100)));
        // Deposits are drawn on first, so the reserve is kept for quiet times.
        let later = t0 + Duration::from_secs(5);
        for _ in 0..20 {
            budget.deposit();
        }
        assert!(budget.try_withdraw_at(later));
        assert_eq!(budget.available_at(later), 10);
    }

    /// One step of a generated history.
    #[derive(Debug, Clone)]
    enum Op {
        Advance(u64),
        Primary,
        Hedge,
    }

    proptest! {
        /// At every instant: hedges ≤ ratio × primaries + min_per_second × (1 s + elapsed),
        /// checked in integers; and with no floor, exactly ⌊ratio × primaries⌋ can be taken
        /// when nothing is capped.
        #[test]
        fn hedges_never_exceed_ratio_times_primaries_plus_the_floor(
            thousandths in 0u64..2_000,
            floor in 0u32..30,
            history in prop::collection::vec(prop_oneof![
                1 => (0u64..2_000).prop_map(Op::Advance),
                4 => Just(Op::Primary),
                4 => Just(Op::Hedge),
            ], 0..500),
        ) {
            let t0 = Instant::now();
            let budget = HedgeBudget::builder()
                .ratio(thousandths as f64 / 1000.0)
                .max_burst(u32::MAX)
                .min_per_second(floor)
                .build()
                .unwrap();
            let (mut now_ms, mut primaries, mut hedges) = (0u64, 0u64, 0u64);
            for op in history {
                match op {
                    Op::Advance(ms) => now_ms += ms,
                    Op::Primary => {
                        budget.deposit();
                        primaries += 1;
                    }
                    Op::Hedge => {
                        if budget.try_withdraw_at(t0 + Duration::from_millis(now_ms)) {
                            hedges += 1;
                        } else {
                            // Refused: the deposits do not hold a whole hedge.
                            prop_assert!((hedges + 1) * 1000 > thousandths * primaries
                                || floor > 0);
                        }
                        // hedges ≤ ratio × primaries + floor × (1 + elapsed s), × 1000.
                        prop_assert!(
                            hedges * 1000
                                <= thousandths * primaries + u64::from(floor) * (1000 + now_ms),
                            "{hedges} hedges, {primaries} primaries, {now_ms} ms"
                        );
                    }
                }
            }
        }
    }
}
