//! [`BulkheadBuilder`]: the bulkhead's configuration, validated when built.

use super::waiters::QueueOrder;
use super::Bulkhead;
use crate::metrics::PolicyName;
#[cfg(any(feature = "async-io", feature = "futures-timer"))]
use crate::time::DefaultTimer;
use crate::time::Timer;
use crate::validate;
use crate::ConfigError;

/// The longest wait queue accepted: callers beyond a million waiting would only wait longer.
pub(super) const MAX_QUEUE: u32 = 1_000_000;

/// Configures and builds a [`Bulkhead`].
///
/// | setting | default | accepted |
/// |---|---|---|
/// | [`max_concurrent`](Self::max_concurrent) | 10 | at least 1 |
/// | [`max_queue`](Self::max_queue) | 0 (no waiting) | 0..=1,000,000 |
/// | [`queue_order`](Self::queue_order) | [`QueueOrder::Fifo`] | either |
///
/// ```
/// use tailguard::bulkhead::{Bulkhead, QueueOrder};
/// use tailguard::time::ManualTimer;
///
/// let bulkhead = Bulkhead::builder()
///     .max_concurrent(32)
///     .max_queue(64)
///     .queue_order(QueueOrder::Lifo)
///     .build_with(ManualTimer::new())?;
/// assert_eq!(bulkhead.max_concurrent(), 32);
///
/// let err = Bulkhead::builder().max_concurrent(0).build_with(ManualTimer::new()).unwrap_err();
/// assert_eq!(err.field(), "max_concurrent");
/// # Ok::<(), tailguard::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct BulkheadBuilder {
    max_concurrent: u32,
    max_queue: u32,
    order: QueueOrder,
    name: PolicyName,
}

impl Default for BulkheadBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl BulkheadBuilder {
    /// The defaults: 10 concurrent calls, no wait queue, FIFO.
    pub fn new() -> Self {
        BulkheadBuilder {
            max_concurrent: 10,
            max_queue: 0,
            order: QueueOrder::Fifo,
            name: PolicyName::DEFAULT,
        }
    }

    /// Calls allowed at once.
    pub fn max_concurrent(mut self, n: u32) -> Self {
        self.max_concurrent = n;
        self
    }

    /// Callers allowed to wait for a slot at once; beyond it, a call is refused at once. 0 (the
    /// default) means a call that finds every slot taken is refused without waiting.
    pub fn max_queue(mut self, n: u32) -> Self {
        self.max_queue = n;
        self
    }

    /// Which waiter a released slot goes to (see [`QueueOrder`]).
    pub fn queue_order(mut self, order: QueueOrder) -> Self {
        self.order = order;
        self
    }

    /// Names the bulkhead: the `name` label of its [metrics](crate::metrics) (`"default"` if
    /// not set).
    ///
    /// ```
    /// use tailguard::bulkhead::Bulkhead;
    /// use tailguard::time::ManualTimer;
    ///
    /// let bulkhead = Bulkhead::builder().name("db").build_with(ManualTimer::new())?;
    /// # let _ = bulkhead;
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    pub fn name(mut self, name: &str) -> Self {
        self.name = PolicyName::new(name);
        self
    }

    /// Builds a bulkhead on the [`DefaultTimer`].
    #[cfg(any(feature = "async-io", feature = "futures-timer"))]
    pub fn build(self) -> Result<Bulkhead<DefaultTimer>, ConfigError> {
        self.build_with(DefaultTimer::default())
    }

    /// Builds a bulkhead whose waits sleep on `timer`.
    pub fn build_with<T: Timer>(self, timer: T) -> Result<Bulkhead<T>, ConfigError> {
        validate::at_least_one("max_concurrent", self.max_concurrent, "0 admits no call")?;
        validate::count_in(
            "max_queue",
            self.max_queue,
            0..=u64::from(MAX_QUEUE),
            "a longer queue only makes callers wait longer",
        )?;
        Ok(Bulkhead::new(
            self.max_concurrent,
            self.max_queue,
            self.order,
            &self.name,
            timer,
        ))
    }
}
