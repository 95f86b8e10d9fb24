use std::time::Duration;

#[cfg(feature = "async-io")]
use tailguard::time::DefaultTimer;
use tailguard::time::Timer;
use tower_layer::Layer;

use super::Timeout;

/// Wraps services in a [`Timeout`]: every call must finish within the limit.
#[derive(Debug, Clone)]
pub struct TimeoutLayer<T> {
    timer: T,
    limit: Duration,
}

#[cfg(feature = "async-io")]
impl TimeoutLayer<DefaultTimer> {
    /// Calls limited to `limit`, on the default timer.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tailguard_tower::TimeoutLayer;
    ///
    /// let layer = TimeoutLayer::new(Duration::from_secs(2));
    /// # let _ = layer;
    /// ```
    pub fn new(limit: Duration) -> Self {
        TimeoutLayer::new_with(DefaultTimer::default(), limit)
    }
}

impl<T: Timer> TimeoutLayer<T> {
    /// Calls limited to `limit`, on `timer`.
    pub fn new_with(timer: T, limit: Duration) -> Self {
        TimeoutLayer { timer, limit }
    }
}

impl<S, T: Timer> Layer<S> for TimeoutLayer<T> {
    type Service = Timeout<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        Timeout::new_with(self.timer.clone(), inner, self.limit)
    }
}
