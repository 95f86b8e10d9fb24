//! The backup of a tied call: a third copy for a copy that started and then overran.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::hedge::HedgeBudget;
use crate::validate;
use crate::ConfigError;

/// When a tied call backs up the copy that started: `after` that copy was learnt to have
/// started, if it has not answered, a third copy goes to a third replica, within a budget.
///
/// Tying cancels a copy stuck in a queue, but once one copy has started its twin is gone: a
/// stall that begins while it runs (a pause of the server, a slow disk) holds the call for
/// the whole stall. "The Tail at Scale" pairs tied requests with hedging for this reason. A
/// [`TiedCall`](super::TiedCall) knows which copy started, because the server that cancels a
/// copy answers it ([`cancelled_by_twin`](super::TiedCall::cancelled_by_twin)); the backup
/// is sent only for that copy, only once it has run for `after` (so a copy that merely draws a
/// slow service time is rarely backed up), and only when the budget has a hedge to spare.
/// While the backup waits in the third replica's queue it costs nothing: if the running copy
/// answers first, the backup is cancelled there ([`Settled::Won`](super::Settled::Won) names
/// it).
///
/// The budget is a [`HedgeBudget`]: give the backup its own, or a clone of the one the
/// client's hedges draw from, to share it. [`Tied`](super::Tied) deposits once per call.
///
/// ```
/// use std::time::{Duration, Instant};
/// use tailguard::hedge::HedgeBudget;
/// use tailguard::tied::Backup;
///
/// let now = Instant::now();
/// let budget = HedgeBudget::builder().ratio(0.02).min_per_second(1).build()?;
/// let backup = Backup::new(Duration::from_millis(10), budget)?;
/// assert_eq!(backup.due_at(now), now + Duration::from_millis(10));
/// assert!(backup.try_send_at(now), "the budget's reserve holds one");
/// assert!(!backup.try_send_at(now), "and no more this second");
/// assert_eq!((backup.stats().sent, backup.stats().refused), (1, 1));
/// # Ok::<(), tailguard::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct Backup {
    after: Duration,
    budget: Option<HedgeBudget>,
    counters: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    refused: AtomicU64,
    won: AtomicU64,
}

/// What a [`Backup`] policy and its clones have done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackupStats {
    /// Backups sent.
    pub sent: u64,
    /// Backups due that the budget refused.
    pub refused: u64,
    /// Calls the backup answered first.
    pub won: u64,
}

impl Backup {
    /// Backs up a started copy `after` it started (at most 584 years), within `budget`.
    pub fn new(after: Duration, budget: HedgeBudget) -> Result<Backup, ConfigError> {
        validate::nanos("after", after)?;
        Ok(Backup {
            after,
            budget: Some(budget),
            counters: Arc::default(),
        })
    }

    /// Backs up every started copy that overruns `after`, with no budget.
    pub fn unbudgeted(after: Duration) -> Result<Backup, ConfigError> {
        validate::nanos("after", after)?;
        Ok(Backup {
            after,
            budget: None,
            counters: Arc::default(),
        })
    }

    /// How long after a copy started its backup is due.
    pub fn after(&self) -> Duration {
        self.after
    }

    /// The budget backups are drawn from, if any.
    pub fn budget(&self) -> Option<&HedgeBudget> {
        self.budget.as_ref()
    }

    /// When the backup of a copy that started at `started` is due (saturating far in the
    /// future rather than overflowing).
    pub fn due_at(&self, started: Instant) -> Instant {
        crate::time::deadline_after(started, self.after)
    }

    /// Credits one call to the budget (see [`HedgeBudget::deposit`]).
    pub fn deposit(&self) {
        if let Some(budget) = &self.budget {
            budget.deposit();
        }
    }

    /// A backup is due at `now`: takes one from the budget and counts it sent, or counts it
    /// refused and returns `false`.
    pub fn try_send_at(&self, now: Instant) -> bool {
        let ok = self.budget.as_ref().is_none_or(|b| b.try_withdraw_at(now));
        let counter = if ok {
            &self.counters.sent
        } else {
            &self.counters.refused
        };
        counter.fetch_add(1, Relaxed);
        ok
    }

    /// Counts a call the backup answered first.
    pub fn won(&self) {
        self.counters.won.fetch_add(1, Relaxed);
    }

    /// What this policy and its clones have done so far.
    pub fn stats(&self) -> BackupStats {
        let c = &self.counters;
        BackupStats {
            sent: c.sent.load(Relaxed),
            refused: c.refused.load(Relaxed),
            won: c.won.load(Relaxed),
        }
    }
}

impl fmt::Debug for Backup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backup")
            .field("after", &self.after)
            .field("budgeted", &self.budget.is_some())
            .field("stats", &self.stats())
            .finish()
    }
}
