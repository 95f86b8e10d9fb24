//! [`RetryBudget`]: retries limited to a fraction of calls over a sliding window, plus a floor
//! per second.

use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::reserve::Reserve;
use crate::time::Timer;
use crate::ConfigError;

/// Slots in the ring: the window slides in steps of `window / SLOTS`.
pub(crate) const SLOTS: usize = 10;
/// One retry, in budget units. A call deposits `ratio × UNIT` units, exactly, because the ratio
/// is counted in thousandths.
const UNIT: i64 = 1000;

/// A shared allowance of retries: every call deposits, every retry withdraws, and retries can
/// never exceed `ratio × calls` over the sliding window, plus a floor of `min_per_second`
/// retries a second so a client with little traffic can still retry at all.
///
/// Share one budget (clones share it) between every retry loop that calls the same dependency.
/// When the dependency is healthy, calls succeed and the budget fills; when it fails broadly, the
/// budget runs dry after a small fraction of extra load and further retries are refused at once
/// ([`GaveUp::BudgetExhausted`](super::GaveUp::BudgetExhausted)), so an outage is not multiplied
/// by every layer's retries: the retry storm.
///
/// ```
/// use std::time::{Duration, Instant};
/// use tailguard::retry::RetryBudget;
///
/// let start = Instant::now();
/// // 10% of calls may be retried, with no floor, over a 10 s window.
/// let budget = RetryBudget::builder()
///     .ratio(0.1)
///     .min_per_second(0)
///     .window(Duration::from_secs(10))
///     .build_at(start)?;
/// for _ in 0..25 {
///     budget.deposit_at(start);
/// }
/// let granted = (0..25).filter(|_| budget.try_withdraw_at(start)).count();
/// assert_eq!(granted, 2); // 10% of 25 calls, rounded down: exact, never more
///
/// // Deposits expire as the window slides past them.
/// let later = start + Duration::from_secs(10);
/// assert_eq!(budget.available_at(later), 0);
/// # Ok::<(), tailguard::ConfigError>(())
/// ```
///
/// # The guarantee
///
/// A retry is granted from the window when the calls in it have earned one, and otherwise from
/// the **floor**: a reserve of `min_per_second` retries that starts full and refills at
/// `min_per_second` a second (as in Finagle's retry budget; it never holds more than one
/// second's worth, so a quiet spell cannot bank a burst).
///
/// The window is divided into ten slots of `window / 10`, aligned to the budget's origin (the
/// instant it was built at). Whenever a retry is granted at time `t`, the ten slots ending with
/// `t`'s slot hold at most `ratio × calls` retries granted from the window, where `calls` are the
/// deposits in those same slots; over any span of time `d`, the floor grants at most
/// `min_per_second × (1 s + d)`. So over a window, retries ≤ `ratio × calls + min_per_second ×
/// (window + 1 s)`. The ratio is counted exactly in thousandths: a 0.6 ratio lets 60 of 100
/// calls be retried, not 100 as a budget that rounds the cost of a retry to whole deposits
/// would. A refund ([`refund_at`](RetryBudget::refund_at)) returns a granted retry that was
/// never made.
///
/// # Time
///
/// The `_at` methods take the current instant, so any clock can drive the budget (a
/// [`Timer`](crate::time::Timer), a test's virtual time, the Python binding's clock); pass
/// non-decreasing instants. An instant earlier than the newest one seen is counted in its own
/// slot while that slot is still in the window, and otherwise dropped (a deposit) or counted as
/// now (a withdrawal), both on the safe side. [`deposit`](RetryBudget::deposit) and
/// [`try_withdraw`](RetryBudget::try_withdraw) read the system clock; the `_with` forms read a
/// timer.
///
/// # Cost
///
/// A deposit is one atomic add; a withdrawal is one atomic add and eleven atomic loads (the
/// ten slots and the remote balance; and an add
/// to undo it when the window refuses, then one atomic update of the floor). A mutex is taken only when the window moves to a new slot, at most
/// once per slot. Should a thread stall for a whole window between reading the slot and adding
/// to it, its one deposit or withdrawal lands in a newer slot; nothing else is ever miscounted.
///
/// # Across a fleet
///
/// [`balance_at`](RetryBudget::balance_at) reads this budget's own balance and
/// [`set_remote_balance`](RetryBudget::set_remote_balance) adds a balance earned elsewhere:
/// the hooks through which `tailguard-fleet` shares one budget across the instances of a
/// service, every instance still deciding locally and lock-free. Unset, nothing changes.
#[derive(Clone)]
pub struct RetryBudget {
    inner: Arc<Inner>,
}

struct Inner {
    origin: Instant,
    slot_nanos: u64,
    /// Net units per slot: deposits × per_call − withdrawals × UNIT.
    slots: [AtomicI64; SLOTS],
    /// The absolute number of the newest slot; the ring holds slots `current - 9 ..= current`.
    current: AtomicU64,
    rotate: Mutex<()>,
    per_call: i64,
    /// Units earned elsewhere (another instance of a fleet), added to the window's balance when
    /// deciding: set by [`RetryBudget::set_remote_balance`], 0 unless shared.
    remote: AtomicI64,
    /// Retries allowed whatever the traffic, drawn on when the window has none.
    floor: Reserve,
    ratio_thousandths: u32,
    window: Duration,
}

/// Where a granted retry came from, to refund it there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Grant {
    /// Earned by the calls in the window.
    Window,
    /// The floor's reserve.
    Floor,
}

impl RetryBudget {
    /// Settings for a budget: 20% of calls, a floor of 10 retries per second, a 10 s window
    /// (Finagle's and tower's defaults).
    pub fn builder() -> RetryBudgetBuilder {
        RetryBudgetBuilder {
            ratio: 0.2,
            min_per_second: 10,
            window: Duration::from_secs(10),
        }
    }

    /// The fraction of calls that may be retried.
    pub fn ratio(&self) -> f64 {
        f64::from(self.inner.ratio_thousandths) / 1000.0
    }

    /// The floor: retries a second allowed whatever the traffic (and the most it saves up).
    pub fn min_per_second(&self) -> u32 {
        self.inner.floor.per_second()
    }

    /// The length of the sliding window.
    pub fn window(&self) -> Duration {
        self.inner.window
    }

    /// Records a call made at `now`: it earns `ratio` of a retry for one window.
    pub fn deposit_at(&self, now: Instant) {
        let inner = &*self.inner;
        if let Some(index) = inner.index_of(inner.slot_of(now)) {
            inner.slots[index].fetch_add(inner.per_call, SeqCst);
        }
    }

    /// Asks for one retry at `now`: `true` if granted (and withdrawn), `false` if the budget is
    /// spent.
    pub fn try_withdraw_at(&self, now: Instant) -> bool {
        self.try_grant_at(now).is_some()
    }

    /// [`try_withdraw_at`](RetryBudget::try_withdraw_at), saying where the retry came from.
    pub(crate) fn try_grant_at(&self, now: Instant) -> Option<Grant> {
        if self.try_withdraw_from_window(now) {
            Some(Grant::Window)
        } else if self.inner.floor.try_take_at(now) {
            Some(Grant::Floor)
        } else {
            None
        }
    }

    fn try_withdraw_from_window(&self, now: Instant) -> bool {
        let inner = &*self.inner;
        let slot = inner.slot_of(now);
        let index = inner
            .index_of(slot)
            .unwrap_or(inner.current.load(SeqCst) as usize % SLOTS);
        // Withdraw first, then check: of two racing withdrawals the later one sees both, so the
        // budget is never overspent; a refused one puts its units back.
        inner.slots[index].fetch_sub(UNIT, SeqCst);
        if inner.balance() >= 0 {
            true
        } else {
            inner.slots[index].fetch_add(UNIT, SeqCst);
            false
        }
    }

    /// Gives back a retry granted from `grant` at `withdrawn_at` that was never made.
    pub(crate) fn refund_grant(&self, grant: Grant, withdrawn_at: Instant) {
        match grant {
            Grant::Window => self.refund_at(withdrawn_at),
            Grant::Floor => self.inner.floor.give_back(),
        }
    }

    /// Gives back a retry granted at `withdrawn_at` that was never made (its loop was cancelled).
    /// It is credited to the window; nothing happens if that instant's slot has left it. (A
    /// [`Retry`](super::Retry) loop refunds a retry to where it came from, the window or the
    /// floor; this method, not knowing, assumes the window.)
    pub fn refund_at(&self, withdrawn_at: Instant) {
        let inner = &*self.inner;
        let slot = inner.slot_of(withdrawn_at);
        let current = inner.current.load(SeqCst);
        if slot > current || current - slot >= SLOTS as u64 {
            return;
        }
        let index = slot as usize % SLOTS;
        inner.slots[index].fetch_add(UNIT, SeqCst);
        // If the window moved past the slot meanwhile, the refund may have landed in a newer
        // slot: take it back (at worst the newer slot is short by one retry, the safe side).
        if inner.current.load(SeqCst) - slot >= SLOTS as u64 {
            inner.slots[index].fetch_sub(UNIT, SeqCst);
        }
    }

    /// How many retries would be granted at `now`, one after another, if nothing else happened:
    /// the window's and the floor's.
    pub fn available_at(&self, now: Instant) -> u64 {
        let inner = &*self.inner;
        inner.index_of(inner.slot_of(now));
        u64::try_from(inner.balance() / UNIT).unwrap_or(0) + inner.floor.available_at(now)
    }

    /// [`deposit_at`](RetryBudget::deposit_at) the system clock's now.
    pub fn deposit(&self) {
        self.deposit_at(Instant::now());
    }

    /// [`try_withdraw_at`](RetryBudget::try_withdraw_at) the system clock's now.
    pub fn try_withdraw(&self) -> bool {
        self.try_withdraw_at(Instant::now())
    }

    /// [`deposit_at`](RetryBudget::deposit_at) `timer`'s now.
    pub fn deposit_with<T: Timer>(&self, timer: T) {
        self.deposit_at(timer.now());
    }

    /// [`try_withdraw_at`](RetryBudget::try_withdraw_at) `timer`'s now.
    pub fn try_withdraw_with<T: Timer>(&self, timer: T) -> bool {
        self.try_withdraw_at(timer.now())
    }

    /// This budget's own balance at `now`, in thousandths of a retry: what the calls recorded
    /// in the window deposited (`ratio × 1000` each) minus `1000` per retry granted from the
    /// window, **without** the [remote balance](RetryBudget::set_remote_balance). It moves the
    /// window to `now` first (as a deposit at `now` would), so slots that left it no longer
    /// count.
    ///
    /// With [`set_remote_balance`](RetryBudget::set_remote_balance), this is the hook a fleet
    /// (the `tailguard-fleet` crate) uses to share one budget across the instances of a
    /// service: it publishes each instance's own balance and adds the others' in. Off the call
    /// path: ten atomic loads.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use tailguard::retry::RetryBudget;
    ///
    /// let start = Instant::now();
    /// let budget = RetryBudget::builder().ratio(0.1).min_per_second(0).build_at(start)?;
    /// for _ in 0..25 {
    ///     budget.deposit_at(start);
    /// }
    /// assert_eq!(budget.balance_at(start), 2_500); // 2.5 retries
    /// assert!(budget.try_withdraw_at(start));
    /// assert_eq!(budget.balance_at(start), 1_500);
    ///
    /// // Another instance's surplus, added in by a fleet: counted when deciding, not here.
    /// budget.set_remote_balance(3_000);
    /// assert_eq!(budget.available_at(start), 4);
    /// assert_eq!(budget.balance_at(start), 1_500);
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    pub fn balance_at(&self, now: Instant) -> i64 {
        let inner = &*self.inner;
        inner.index_of(inner.slot_of(now));
        inner.own_balance()
    }

    /// Sets the balance earned (or owed, if negative) elsewhere, in thousandths of a retry:
    /// from then on, a retry is granted from the window while this budget's own
    /// [balance](RetryBudget::balance_at) plus `thousandths` covers it. It replaces the
    /// previous value; it does not expire on its own (its setter refreshes or clears it); 0,
    /// the value a budget is built with, leaves the budget as it is alone.
    ///
    /// A fleet of instances sets it every interval so the fleet's budget holds across them
    /// (see `tailguard-fleet`'s SCHEMA.md for the rule). The call path pays one more atomic
    /// load per withdrawal, none per deposit.
    pub fn set_remote_balance(&self, thousandths: i64) {
        self.inner.remote.store(thousandths, SeqCst);
    }

    /// The balance last set by [`set_remote_balance`](RetryBudget::set_remote_balance) (0
    /// unless set).
    pub fn remote_balance(&self) -> i64 {
        self.inner.remote.load(SeqCst)
    }

    /// Whether two handles share one budget.
    pub fn ptr_eq(&self, other: &RetryBudget) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Inner {
    fn slot_of(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.origin);
        // u64 nanoseconds cover 584 years; beyond that every instant is the last slot.
        let nanos = since
            .as_secs()
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::from(since.subsec_nanos()));
        // Most calls land in the newest slot: check that before dividing.
        let current = self.current.load(SeqCst);
        let current_start = current.saturating_mul(self.slot_nanos);
        if nanos >= current_start && nanos - current_start < self.slot_nanos {
            current
        } else {
            nanos / self.slot_nanos
        }
    }

    /// Moves the window forward to `slot` if it is newer, and returns the ring index that holds
    /// `slot`, or `None` if `slot` has already left the window.
    fn index_of(&self, slot: u64) -> Option<usize> {
        let current = self.current.load(SeqCst);
        if slot <= current {
            return (current - slot < SLOTS as u64).then_some(slot as usize % SLOTS);
        }
        let _guard = self
            .rotate
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let current = self.current.load(SeqCst);
        if slot > current {
            // Clear the slots the window slid past, then publish the new position: a thread that
            // sees the new position also sees the cleared slots.
            if slot - current >= SLOTS as u64 {
                for cell in &self.slots {
                    cell.store(0, SeqCst);
                }
            } else {
                for passed in current + 1..=slot {
                    self.slots[passed as usize % SLOTS].store(0, SeqCst);
                }
            }
            self.current.store(slot, SeqCst);
        }
        let current = self.current.load(SeqCst);
        (current - slot < SLOTS as u64).then_some(slot as usize % SLOTS)
    }

    /// Units left in the window: the sum of its slots, plus the remote balance (0 unless a
    /// fleet set one).
    fn balance(&self) -> i64 {
        self.own_balance().saturating_add(self.remote.load(SeqCst))
    }

    /// The sum of the window's slots: this budget's own deposits and withdrawals.
    fn own_balance(&self) -> i64 {
        self.slots.iter().map(|slot| slot.load(SeqCst)).sum()
    }
}

impl fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBudget")
            .field("ratio", &self.ratio())
            .field("min_per_second", &self.min_per_second())
            .field("window", &self.inner.window)
            .finish()
    }
}

impl Default for RetryBudget {
    /// [`RetryBudget::builder`]'s defaults, with the window starting now.
    fn default() -> Self {
        RetryBudget::builder()
            .build()
            .expect("the default budget is valid")
    }
}

/// Settings for a [`RetryBudget`], validated by [`build`](RetryBudgetBuilder::build).
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct RetryBudgetBuilder {
    ratio: f64,
    min_per_second: u32,
    window: Duration,
}

impl RetryBudgetBuilder {
    /// The fraction of calls that may be retried, in `[0, 1000]` and a multiple of 0.001
    /// (default 0.2). `0.1` means one retry per ten calls; `2.0` two retries per call.
    pub fn ratio(mut self, ratio: f64) -> Self {
        self.ratio = ratio;
        self
    }

    /// Retries a second allowed whatever the traffic (default 10), so a client that makes few
    /// calls can still retry: a reserve of this many, full at the start and refilling at this
    /// many a second, drawn on when the window holds no retry. Zero leaves only the ratio.
    pub fn min_per_second(mut self, retries: u32) -> Self {
        self.min_per_second = retries;
        self
    }

    /// How long a call's deposit counts (default 10 s): between 10 ms and 1 hour, in whole
    /// milliseconds.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Makes the budget, its window aligned to the system clock's now.
    ///
    /// # Errors
    ///
    /// See [`build_at`](RetryBudgetBuilder::build_at).
    pub fn build(self) -> Result<RetryBudget, ConfigError> {
        self.build_at(Instant::now())
    }

    /// Makes the budget, its window aligned to `timer`'s now.
    ///
    /// # Errors
    ///
    /// See [`build_at`](RetryBudgetBuilder::build_at).
    pub fn build_with<T: Timer>(self, timer: T) -> Result<RetryBudget, ConfigError> {
        self.build_at(timer.now())
    }

    /// Makes the budget with its window's slots aligned to `origin`. Instants before `origin`
    /// count as `origin`.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming `ratio` if it is not a finite multiple of 0.001 in `[0, 1000]`,
    /// or `window` if it is outside 10 ms ..= 1 h or not a whole number of milliseconds.
    pub fn build_at(self, origin: Instant) -> Result<RetryBudget, ConfigError> {
        let ratio = self.ratio;
        let thousandths = (ratio * 1000.0).round();
        if !(ratio.is_finite() && (0.0..=1000.0).contains(&ratio)) {
            return Err(ConfigError::new(
                "ratio",
                format!(
                    "must be a number in [0, 1000], got {}",
                    crate::validate::Float(ratio)
                ),
            ));
        }
        if (ratio * 1000.0 - thousandths).abs() > 1e-6 {
            return Err(ConfigError::new(
                "ratio",
                format!(
                    "must be a multiple of 0.001 (the budget counts it exactly in thousandths), \
                     got {}; use {}",
                    crate::validate::Float(ratio),
                    thousandths / 1000.0
                ),
            ));
        }
        let window = self.window;
        let window_ms = window.as_millis();
        if !(Duration::from_millis(10)..=Duration::from_secs(3600)).contains(&window)
            || Duration::from_millis(window_ms as u64) != window
        {
            return Err(ConfigError::new(
                "window",
                format!("must be between 10ms and 1h in whole milliseconds, got {window:?}"),
            ));
        }
        Ok(RetryBudget {
            inner: Arc::new(Inner {
                origin,
                slot_nanos: (window.as_nanos() / SLOTS as u128) as u64,
                slots: Default::default(),
                current: AtomicU64::new(0),
                rotate: Mutex::new(()),
                remote: AtomicI64::new(0),
                per_call: thousandths as i64,
                floor: Reserve::new(self.min_per_second),
                ratio_thousandths: thousandths as u32,
                window,
            }),
        })
    }
}

#[cfg(test)]
mod tests;
