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

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) primaries: AtomicU64,
    pub(crate) hedges_sent: AtomicU64,
    pub(crate) hedges_won: AtomicU64,
    pub(crate) budget_refusals: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
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
