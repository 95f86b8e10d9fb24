use tailguard::time::Timer;
use tower_layer::Layer;

use super::{Retry, RetryErrors};

/// Wraps services in a [`Retry`] under one tailguard [`Retry`](tailguard::retry::Retry) policy
/// (attempts, backoff, deadline, budget, timer) and a [`Policy`](super::Policy) saying which
/// outcomes to retry.
///
/// Every service the layer makes shares the policy: its budget, and its seeded backoff's stream
/// counter.
#[derive(Debug, Clone)]
pub struct RetryLayer<T, P = RetryErrors> {
    retry: tailguard::retry::Retry<T>,
    policy: P,
}

impl<T: Timer> RetryLayer<T> {
    /// Retries every error, accepts every response ([`RetryErrors`]).
    ///
    /// ```
    /// use tailguard::retry::{Retry, RetryBudget};
    /// use tailguard_tower::RetryLayer;
    ///
    /// let budget = RetryBudget::builder().ratio(0.1).build()?;
    /// let layer = RetryLayer::new(Retry::builder().max_attempts(3).budget(budget).build()?);
    /// # let _ = layer;
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    pub fn new(retry: tailguard::retry::Retry<T>) -> Self {
        RetryLayer {
            retry,
            policy: RetryErrors,
        }
    }
}

impl<T: Timer, P> RetryLayer<T, P> {
    /// The same layer, deciding which outcomes to retry with `policy`.
    pub fn policy<P2>(self, policy: P2) -> RetryLayer<T, P2> {
        RetryLayer {
            retry: self.retry,
            policy,
        }
    }

    /// The tailguard policy the services follow.
    pub fn retry(&self) -> &tailguard::retry::Retry<T> {
        &self.retry
    }
}

impl<S, T: Timer, P: Clone> Layer<S> for RetryLayer<T, P> {
    type Service = Retry<S, P, T>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry::new(inner, self.retry.clone(), self.policy.clone())
    }
}
