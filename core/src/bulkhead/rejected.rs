//! Why a bulkhead refused a call.

use std::fmt;

/// Why a call was refused, from [`Rejected::reason`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// Every slot was taken and the wait queue was full (or there is none): refused at once.
    Full,
    /// The caller's deadline came (or had already passed) before a slot was free.
    Deadline,
}

/// A call the bulkhead refused; a rejection, not a failure of the dependency.
///
/// ```
/// use tailguard::bulkhead::{Bulkhead, Reason};
/// use tailguard::time::ManualTimer;
///
/// let bulkhead = Bulkhead::builder().max_concurrent(1).build_with(ManualTimer::new())?;
/// let _held = bulkhead.try_acquire().unwrap();
/// let refused = bulkhead.try_acquire().unwrap_err();
/// assert_eq!(refused.reason(), Reason::Full);
/// assert_eq!(refused.to_string(), "bulkhead is full: all 1 slots are taken and there is no wait queue");
/// # Ok::<(), tailguard::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejected {
    pub(super) reason: Reason,
    pub(super) max_concurrent: u32,
    pub(super) max_queue: u32,
}

impl Rejected {
    /// Why the call was refused.
    pub fn reason(&self) -> Reason {
        self.reason
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.reason, self.max_queue) {
            (Reason::Full, 0) => write!(
                f,
                "bulkhead is full: all {} slots are taken and there is no wait queue",
                self.max_concurrent
            ),
            (Reason::Full, queue) => write!(
                f,
                "bulkhead is full: all {} slots are taken and {queue} callers already wait",
                self.max_concurrent
            ),
            (Reason::Deadline, _) => write!(
                f,
                "bulkhead: the deadline came before one of its {} slots was free",
                self.max_concurrent
            ),
        }
    }
}

impl std::error::Error for Rejected {}
