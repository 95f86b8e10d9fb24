#[cfg(feature = "async-io")]
use tailguard::time::DefaultTimer;
use tailguard::time::Timer;
use tower_layer::Layer;

use super::Hedge;

/// Wraps services in a [`Hedge`]; every service it makes shares the policy (its budget,
/// statistics and latency window).
#[derive(Debug, Clone)]
pub struct HedgeLayer<T> {
    hedge: tailguard::hedge::Hedge,
    timer: T,
}

#[cfg(feature = "async-io")]
impl HedgeLayer<DefaultTimer> {
    /// Calls hedged under `hedge`, on the default timer.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tailguard::hedge::Hedge;
    /// use tailguard_tower::HedgeLayer;
    ///
    /// let layer = HedgeLayer::new(Hedge::builder().fixed_delay(Duration::from_millis(20)).build()?);
    /// # let _ = layer;
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    pub fn new(hedge: tailguard::hedge::Hedge) -> Self {
        HedgeLayer::new_with(DefaultTimer::default(), hedge)
    }
}

impl<T: Timer> HedgeLayer<T> {
    /// Calls hedged under `hedge`, on `timer`.
    pub fn new_with(timer: T, hedge: tailguard::hedge::Hedge) -> Self {
        HedgeLayer { hedge, timer }
    }

    /// The policy the services share.
    pub fn hedge(&self) -> &tailguard::hedge::Hedge {
        &self.hedge
    }
}

impl<S, T: Timer> Layer<S> for HedgeLayer<T> {
    type Service = Hedge<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        Hedge::new_with(self.timer.clone(), inner, self.hedge.clone())
    }
}
