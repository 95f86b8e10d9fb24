use std::borrow::Borrow;

use tailguard::retry::{Retry, RetryConfig};
use tailguard::time::Timer;

/// How a retry service holds its tailguard [`Retry`] policy.
///
/// Each call's response future keeps a handle (the loop's state needs the policy if an attempt
/// fails), so the handle is cloned once per call:
///
/// - a [`Retry`]: the clone is a reference count, an atomic increment and decrement per call;
/// - a `&'static Retry` (a policy in a `static`, or leaked once at startup): a pointer copy,
///   which is what makes a first-try success cost no more than tower's own `Retry`.
///
/// ```
/// use std::sync::LazyLock;
/// use tailguard::retry::Retry;
/// use tailguard::time::DefaultTimer;
/// use tailguard_tower::RetryLayer;
///
/// static POLICY: LazyLock<Retry<DefaultTimer>> =
///     LazyLock::new(|| Retry::builder().max_attempts(3).build().expect("valid settings"));
/// let layer = RetryLayer::new(&*POLICY);
/// # let _ = layer;
/// ```
pub trait Handle: Clone + Borrow<RetryConfig> {
    /// The timer the policy sleeps on.
    type Timer: Timer;

    /// The policy.
    fn policy(&self) -> &Retry<Self::Timer>;
}

impl<T: Timer> Handle for Retry<T> {
    type Timer = T;

    #[inline(always)]
    fn policy(&self) -> &Retry<T> {
        self
    }
}

impl<T: Timer> Handle for &'static Retry<T> {
    type Timer = T;

    #[inline(always)]
    fn policy(&self) -> &Retry<T> {
        self
    }
}
