use tailguard::time::Timer;
use tower_layer::Layer;

use super::{CircuitBreaker, ErrorsFail};

/// Wraps services in a [`CircuitBreaker`]; every service it makes shares the one breaker.
#[derive(Debug, Clone)]
pub struct CircuitBreakerLayer<T: Timer, C = ErrorsFail> {
    breaker: tailguard::breaker::CircuitBreaker<T>,
    classify: C,
}

impl<T: Timer> CircuitBreakerLayer<T> {
    /// Services guarded by `breaker`, counting errors as failures and responses as successes
    /// ([`ErrorsFail`]).
    ///
    /// ```
    /// use tailguard::breaker::CircuitBreaker;
    /// use tailguard_tower::CircuitBreakerLayer;
    ///
    /// let layer = CircuitBreakerLayer::new(CircuitBreaker::builder().failure_rate(0.5).build()?);
    /// # let _ = layer;
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    pub fn new(breaker: tailguard::breaker::CircuitBreaker<T>) -> Self {
        CircuitBreakerLayer {
            breaker,
            classify: ErrorsFail,
        }
    }
}

impl<T: Timer, C> CircuitBreakerLayer<T, C> {
    /// The same layer, judging results with `classify` (see [`Classify`](super::Classify)).
    pub fn classify<C2>(self, classify: C2) -> CircuitBreakerLayer<T, C2> {
        CircuitBreakerLayer {
            breaker: self.breaker,
            classify,
        }
    }

    /// The breaker the services share.
    pub fn breaker(&self) -> &tailguard::breaker::CircuitBreaker<T> {
        &self.breaker
    }
}

impl<S, T: Timer, C: Clone> Layer<S> for CircuitBreakerLayer<T, C> {
    type Service = CircuitBreaker<S, T, C>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker::new(inner, self.breaker.clone(), self.classify.clone())
    }
}
