use crate::metrics::{self, Counter, PolicyName};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// What a [`Hedge`](super::Hedge) policy and its clones have done so far.
///
/// A snapshot of relaxed atomic counters: cheap to take, consistent per field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HedgeStats {
    /// Calls started: every call sends exactly one primary (attempt 1).
    pub primaries: u64,
    /// Extra attempts sent (attempt 2 and later), after the delay or after a failure.
    pub hedges_sent: u64,
    /// Calls whose first success came from a hedge rather than the primary.
    pub hedges_won: u64,
    /// Hedges the budget refused when due, counted once per hedge: a later chance (at twice
    /// the delay, ...) may still have sent it, and then it is in `hedges_sent` too.
    pub budget_refusals: u64,
}

impl HedgeStats {
    /// Extra load as a fraction of primaries: `hedges_sent / primaries` (0 before any call).
    pub fn extra_load(&self) -> f64 {
        if self.primaries == 0 {
            0.0
        } else {
            self.hedges_sent as f64 / self.primaries as f64
        }
    }
}

/// The statistics, and (with the `metrics` feature) the same events as metric counters.
#[derive(Debug)]
pub(crate) struct Counters {
    primaries: AtomicU64,
    hedges_sent: AtomicU64,
    hedges_won: AtomicU64,
    budget_refusals: AtomicU64,
    pub(crate) name: PolicyName,
    metrics: [Counter; 4],
}

impl Counters {
    /// Counters for the policy `name`, registering its metrics.
    pub(crate) fn new(name: PolicyName) -> Self {
        Counters {
            primaries: AtomicU64::new(0),
            hedges_sent: AtomicU64::new(0),
            hedges_won: AtomicU64::new(0),
            budget_refusals: AtomicU64::new(0),
            metrics: [
                Counter::new(metrics::HEDGE_PRIMARIES, &name),
                Counter::new(metrics::HEDGE_SENT, &name),
                Counter::new(metrics::HEDGE_WON, &name),
                Counter::new(metrics::HEDGE_BUDGET_REFUSALS, &name),
            ],
            name,
        }
    }

    /// Primaries counted so far.
    pub(crate) fn primaries(&self) -> u64 {
        self.primaries.load(Relaxed)
    }

    pub(crate) fn primary(&self) {
        self.primaries.fetch_add(1, Relaxed);
        self.metrics[0].increment();
    }

    pub(crate) fn hedge_sent(&self) {
        self.hedges_sent.fetch_add(1, Relaxed);
        self.metrics[1].increment();
    }

    pub(crate) fn hedge_won(&self) {
        self.hedges_won.fetch_add(1, Relaxed);
        self.metrics[2].increment();
    }

    pub(crate) fn budget_refused(&self) {
        self.budget_refusals.fetch_add(1, Relaxed);
        self.metrics[3].increment();
    }

    pub(crate) fn snapshot(&self) -> HedgeStats {
        HedgeStats {
            primaries: self.primaries.load(Relaxed),
            hedges_sent: self.hedges_sent.load(Relaxed),
            hedges_won: self.hedges_won.load(Relaxed),
            budget_refusals: self.budget_refusals.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_load_is_hedges_over_primaries() {
        assert_eq!(HedgeStats::default().extra_load(), 0.0);
        let stats = HedgeStats {
            primaries: 200,
            hedges_sent: 5,
            ..HedgeStats::default()
        };
        assert_eq!(stats.extra_load(), 0.025);
    }
}
