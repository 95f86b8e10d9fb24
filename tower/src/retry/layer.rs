use tower_layer::Layer;

use super::{Handle, Retry, RetryErrors};

/// Wraps services in a [`Retry`] under one tailguard [`Retry`](tailguard::retry::Retry) policy
/// (attempts, backoff, deadline, budget, timer) and a [`Policy`](super::Policy) saying which
/// outcomes to retry.
///
/// Every service the layer makes shares the policy: its budget, and its seeded backoff's stream
/// counter. `R` is how the services hold it (see [`Handle`]).
#[derive(Debug, Clone)]
pub struct RetryLayer<R, P = RetryErrors> {
    retry: R,
    policy: P,
}

impl<R: Handle> RetryLayer<R> {
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
    pub fn new(retry: R) -> Self {
        RetryLayer {
            retry,
            policy: RetryErrors,
        }
    }
}

impl<R: Handle, P> RetryLayer<R, P> {
    /// The same layer, deciding which outcomes to retry with `policy`.
    pub fn policy<P2>(self, policy: P2) -> RetryLayer<R, P2> {
        RetryLayer {
            retry: self.retry,
            policy,
        }
    }

    /// The tailguard policy the services follow.
    pub fn retry(&self) -> &tailguard::retry::Retry<R::Timer> {
        self.retry.policy()
    }
}

impl<S, R: Handle, P: Clone> Layer<S> for RetryLayer<R, P> {
    type Service = Retry<S, P, R>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry::new(inner, self.retry.clone(), self.policy.clone())
    }
}
