use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::{validate, ConfigError};

/// One hedge, in the budget's fixed-point units (billionths of a hedge).
const UNIT: u64 = 1_000_000_000;
/// The largest accepted ratio: a thousand hedges per primary is already absurd.
const MAX_RATIO: f64 = 1000.0;

/// A cap on the extra load hedging may add: hedges ≤ `ratio` × primaries.
///
/// Every primary call [`deposit`](HedgeBudget::deposit)s `ratio` of a hedge; every hedge
/// [`try_withdraw`](HedgeBudget::try_withdraw)s a whole one, and is refused when less than one
/// is saved up. So over any stretch of time, hedges sent never exceed `ratio` times the
/// primaries sent (plus what was saved before). The balance is kept in billionths of a hedge,
/// so decimal ratios are exact: with a ratio of 0.02, the 50th primary earns the first hedge,
/// not the 51st because 50 × 0.02 came out as 0.9999999.
///
/// Savings are capped at `max_burst` hedges, so a long calm spell cannot bank enough to double
/// the load in a sudden slowdown, which is exactly when extra load hurts most.
///
/// It is sans-IO (no clock) and lock-free; clones share one balance, so one budget can cover
/// every policy that calls the same backend.
///
/// ```
/// use tailguard::hedge::HedgeBudget;
///
/// let budget = HedgeBudget::new(0.02)?; // 2 % extra load
/// for _ in 0..49 {
///     budget.deposit();
/// }
/// assert!(!budget.try_withdraw(), "49 primaries earn 0.98 of a hedge");
/// budget.deposit();
/// assert!(budget.try_withdraw(), "the 50th earns a whole one");
/// assert!(!budget.try_withdraw());
/// # Ok::<(), tailguard::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct HedgeBudget {
    inner: Arc<Inner>,
}

struct Inner {
    per_primary: u64,
    cap: u64,
    balance: AtomicU64,
}

impl HedgeBudget {
    /// The savings cap used by [`HedgeBudget::new`]: 100 hedges.
    pub const DEFAULT_MAX_BURST: u32 = 100;

    /// A budget of `ratio` hedges per primary (0.05 allows 5 % extra load), saving up at most
    /// [`DEFAULT_MAX_BURST`](HedgeBudget::DEFAULT_MAX_BURST) hedges.
    ///
    /// `ratio` must be finite and in `[0, 1000]`; 0 refuses every hedge. It is kept to nine
    /// decimal places, and a positive ratio below one billionth is refused.
    pub fn new(ratio: f64) -> Result<Self, ConfigError> {
        HedgeBudget::with_max_burst(ratio, Self::DEFAULT_MAX_BURST)
    }

    /// Like [`new`](HedgeBudget::new), saving up at most `max_burst` hedges (at least 1).
    pub fn with_max_burst(ratio: f64, max_burst: u32) -> Result<Self, ConfigError> {
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
            max_burst,
            "a budget that can never hold a whole hedge refuses them all",
        )?;
        Ok(HedgeBudget {
            inner: Arc::new(Inner {
                per_primary,
                cap: u64::from(max_burst) * UNIT,
                balance: AtomicU64::new(0),
            }),
        })
    }

    /// Credits one primary call: earns `ratio` of a hedge, up to the savings cap.
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

    /// Takes one hedge from the budget; `false` (and nothing taken) if less than one is saved.
    #[inline]
    pub fn try_withdraw(&self) -> bool {
        self.inner
            .balance
            .fetch_update(Relaxed, Relaxed, |balance| balance.checked_sub(UNIT))
            .is_ok()
    }

    /// How many whole hedges could be sent right now.
    pub fn available(&self) -> u64 {
        self.inner.balance.load(Relaxed) / UNIT
    }

    /// The configured ratio of hedges to primaries.
    pub fn ratio(&self) -> f64 {
        self.inner.per_primary as f64 / UNIT as f64
    }

    /// The most hedges that can be saved up.
    pub fn max_burst(&self) -> u64 {
        self.inner.cap / UNIT
    }
}

impl fmt::Debug for HedgeBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeBudget")
            .field("ratio", &self.ratio())
            .field("max_burst", &self.max_burst())
            .field(
                "balance",
                &(self.inner.balance.load(Relaxed) as f64 / UNIT as f64),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let budget = HedgeBudget::new(0.0).unwrap();
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
            let budget = HedgeBudget::with_max_burst(ratio, 1000).unwrap();
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
        let budget = HedgeBudget::with_max_burst(0.5, 3).unwrap();
        for _ in 0..100 {
            budget.deposit();
        }
        assert_eq!(budget.available(), 3);
        assert!(budget.try_withdraw() && budget.try_withdraw() && budget.try_withdraw());
        assert!(!budget.try_withdraw());
    }

    #[test]
    fn clones_share_one_balance_across_threads() {
        let budget = HedgeBudget::with_max_burst(0.25, 10_000).unwrap();
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
}
