//! The backup of a tied call: a third copy for a copy that started and then overran.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::hedge::HedgeBudget;
use crate::latency::RollingHistogram;
use crate::validate;
use crate::ConfigError;

/// The window a [learnt](Backup::with_learnt_after) delay is computed from, in slices.
const LEARN_WINDOW: Duration = Duration::from_secs(10);
const LEARN_SLOTS: usize = 10;
/// The fewest run times a learnt delay is computed from; until then, `after`.
const LEARN_MIN_SAMPLES: u64 = 100;

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
    unstarted: Option<Duration>,
    learnt: Option<Arc<Learnt>>,
    budget: Option<HedgeBudget>,
    counters: Arc<Counters>,
}

/// A delay after the start learnt from how long started copies ran.
struct Learnt {
    percentile: f64,
    /// Run times: from when the client learnt a copy started to its answer.
    runs: RollingHistogram,
    /// The delay last computed, and (plus one) the window slice it was computed in; 0 = none.
    cached_slice: AtomicU64,
    cached_nanos: AtomicU64,
}

#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    refused: AtomicU64,
    won: AtomicU64,
    sent_unstarted: AtomicU64,
    won_unstarted: AtomicU64,
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
    /// Of the backups sent, those for a call none of whose copies had started
    /// ([`Backup::with_unstarted`]).
    pub sent_unstarted: u64,
    /// Of the calls the backup answered first, those none of whose copies had started when
    /// it was sent.
    pub won_unstarted: u64,
}

impl Backup {
    /// Backs up a started copy `after` it started (at most 584 years), within `budget`.
    pub fn new(after: Duration, budget: HedgeBudget) -> Result<Backup, ConfigError> {
        validate::nanos("after", after)?;
        Ok(Backup {
            after,
            unstarted: None,
            learnt: None,
            budget: Some(budget),
            counters: Arc::default(),
        })
    }

    /// Backs up every started copy that overruns `after`, with no budget.
    pub fn unbudgeted(after: Duration) -> Result<Backup, ConfigError> {
        validate::nanos("after", after)?;
        Ok(Backup {
            after,
            unstarted: None,
            learnt: None,
            budget: None,
            counters: Arc::default(),
        })
    }

    /// How long after a copy started its backup is due.
    pub fn after(&self) -> Duration {
        self.after
    }

    /// The same policy, also backing up a call **none of whose copies has started**
    /// `after_sent` after its second copy was sent (and none has answered, failed or been
    /// cancelled): both tied replicas are stalled, so neither copy starts, neither cancels
    /// its twin, and without this no copy is ever known to run, so no backup is sent and the
    /// call waits for the shorter of the two stalls. The backup then goes to the third
    /// replica like any other (see [`TiedCall::send_unstarted_backup`](super::TiedCall::send_unstarted_backup)),
    /// within the same budget. Off by default.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tailguard::tied::Backup;
    ///
    /// let backup = Backup::unbudgeted(Duration::from_millis(10))?
    ///     .with_unstarted(Duration::from_millis(8))?;
    /// assert_eq!(backup.unstarted(), Some(Duration::from_millis(8)));
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    pub fn with_unstarted(mut self, after_sent: Duration) -> Result<Backup, ConfigError> {
        validate::nanos("after_sent", after_sent)?;
        self.unstarted = Some(after_sent);
        Ok(self)
    }

    /// How long after a call's second copy was sent it is backed up if no copy has started
    /// (see [`with_unstarted`](Backup::with_unstarted)); `None`: never.
    pub fn unstarted(&self) -> Option<Duration> {
        self.unstarted
    }

    /// The budget backups are drawn from, if any.
    pub fn budget(&self) -> Option<&HedgeBudget> {
        self.budget.as_ref()
    }

    /// The same policy with the delay after a start **learnt**: the `percentile` (in (0, 1))
    /// of how long recent started copies ran (from when the client learnt that a copy started
    /// to its answer; over the last 10 s, once 100 have answered), never more than `after`,
    /// which is also the delay until then. A fixed delay must sit above the service time's
    /// tail, wherever that is; the learnt one follows it, so a copy frozen by a stall that
    /// began while it ran is backed up about as soon as it has overrun what the percentile of
    /// copies take. Copies that lost to a backup are not recorded, so the stalls the backup
    /// goes around do not inflate the delay. Record run times with
    /// [`record_run_at`](Backup::record_run_at) ([`Tied::run_backed_with`](super::Tied::run_backed_with)
    /// does).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use tailguard::tied::Backup;
    ///
    /// let backup = Backup::unbudgeted(Duration::from_millis(10))?.with_learnt_after(0.99)?;
    /// let now = Instant::now();
    /// assert_eq!(backup.after_at(now), Duration::from_millis(10), "nothing learnt yet");
    /// for _ in 0..100 {
    ///     backup.record_run_at(now, Duration::from_millis(3));
    /// }
    /// let learnt = backup.after_at(now);
    /// assert!(learnt > Duration::from_micros(2_900) && learnt < Duration::from_micros(3_100));
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    pub fn with_learnt_after(mut self, percentile: f64) -> Result<Backup, ConfigError> {
        if !(percentile > 0.0 && percentile < 1.0) {
            return Err(ConfigError::new(
                "percentile",
                format!("must be in (0, 1), got {percentile}"),
            ));
        }
        self.learnt = Some(Arc::new(Learnt {
            percentile,
            runs: RollingHistogram::new(LEARN_WINDOW, LEARN_SLOTS)?,
            cached_slice: AtomicU64::new(0),
            cached_nanos: AtomicU64::new(0),
        }));
        Ok(self)
    }

    /// The percentile the delay after a start is learnt at, if it is
    /// ([`with_learnt_after`](Backup::with_learnt_after)).
    pub fn learnt_percentile(&self) -> Option<f64> {
        self.learnt.as_ref().map(|l| l.percentile)
    }

    /// Records that a copy known to run answered `run` after the client learnt it started
    /// (for a [learnt](Backup::with_learnt_after) delay; nothing otherwise).
    pub fn record_run_at(&self, now: Instant, run: Duration) {
        if let Some(learnt) = &self.learnt {
            learnt.runs.record_at(now, run);
        }
    }

    /// The delay after a start in force at `now`: `after`, or the learnt one (recomputed once
    /// per second-long slice of its window).
    pub fn after_at(&self, now: Instant) -> Duration {
        let Some(learnt) = &self.learnt else {
            return self.after;
        };
        let slice = learnt.runs.slice_at(now) + 1;
        let cached = learnt.cached_slice.load(Relaxed);
        if cached == slice {
            return Duration::from_nanos(learnt.cached_nanos.load(Relaxed));
        }
        if !learnt.runs.has_at_least(now, LEARN_MIN_SAMPLES) {
            // Too few: at first, `after`; after a quiet spell, the last delay learnt.
            return if cached == 0 {
                self.after
            } else {
                Duration::from_nanos(learnt.cached_nanos.load(Relaxed))
            };
        }
        let delay = learnt
            .runs
            .quantile_at(now, learnt.percentile)
            .map_or(self.after, |q| q.min(self.after));
        learnt
            .cached_nanos
            .store(u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX), Relaxed);
        learnt.cached_slice.store(slice, Relaxed);
        delay
    }

    /// When the backup of a copy that started at `started` is due (saturating far in the
    /// future rather than overflowing): [`after_at`](Backup::after_at) later.
    pub fn due_at(&self, started: Instant) -> Instant {
        crate::time::deadline_after(started, self.after_at(started))
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

    /// Counts a backup sent ([`try_send_at`](Backup::try_send_at) counted it) for a call
    /// none of whose copies had started.
    pub(super) fn sent_unstarted(&self) {
        self.counters.sent_unstarted.fetch_add(1, Relaxed);
    }

    /// Counts a call answered first by a backup sent before any copy had started (on top of
    /// [`won`](Backup::won)).
    pub(super) fn won_unstarted(&self) {
        self.counters.won_unstarted.fetch_add(1, Relaxed);
    }

    /// What this policy and its clones have done so far.
    pub fn stats(&self) -> BackupStats {
        let c = &self.counters;
        BackupStats {
            sent: c.sent.load(Relaxed),
            refused: c.refused.load(Relaxed),
            won: c.won.load(Relaxed),
            sent_unstarted: c.sent_unstarted.load(Relaxed),
            won_unstarted: c.won_unstarted.load(Relaxed),
        }
    }
}

impl fmt::Debug for Backup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backup")
            .field("after", &self.after)
            .field("unstarted", &self.unstarted)
            .field("learnt_percentile", &self.learnt_percentile())
            .field("budgeted", &self.budget.is_some())
            .field("stats", &self.stats())
            .finish()
    }
}
