//! Hedged requests: [`HedgeLayer`] and [`Hedge`].
//!
//! Each call goes to the inner service at once (the primary). If it has not answered after
//! the policy's delay (fixed, or adaptive at a percentile of recent primary latency), and the
//! [`HedgeBudget`](tailguard::hedge::HedgeBudget) allows, the same request goes out again on a
//! clone of the service (polled ready first); an attempt that fails starts the next one at
//! once. The first success wins and every other attempt is dropped, which is how Rust cancels.
//! If every attempt fails, the call fails with the last attempt's error. The decisions are the
//! core's [`HedgeState`](tailguard::hedge::HedgeState)'s, driven by its
//! [`HedgedRun`](tailguard::hedge::HedgedRun).
//!
//! Requests must be `Clone`: a hedge sends a clone. The service must be `Clone` too, and its
//! clones should reach a replica of their own (a load balancer, a connection pool), or a hedge
//! only queues behind its primary. A primary that answers at once costs no clock read, no
//! timer and no allocation; hedges are boxed (they only exist on the slow path).
//!
//! ```
//! use std::time::Duration;
//! use tailguard::hedge::Hedge;
//! use tailguard::time::{ManualTimer, Timer};
//! use tailguard_tower::HedgeLayer;
//! use tower::{Layer, ServiceExt};
//!
//! let timer = ManualTimer::new();
//! let sleeper = timer.clone();
//! let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
//! let counter = calls.clone();
//! // The first call stalls for a second; any later one answers in 5 ms.
//! let replicas = tower::service_fn(move |_: ()| {
//!     let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
//!     let sleep = sleeper.sleep(Duration::from_millis(if n == 0 { 1000 } else { 5 }));
//!     async move {
//!         sleep.await;
//!         Ok::<u32, std::io::Error>(n)
//!     }
//! });
//! let hedge = Hedge::builder()
//!     .fixed_delay(Duration::from_millis(50))
//!     .unbudgeted()
//!     .build()?;
//! let service = HedgeLayer::new_with(timer.clone(), hedge.clone()).layer(replicas);
//!
//! assert_eq!(timer.block_on(service.oneshot(())).unwrap(), 1); // the hedge won
//! assert_eq!(timer.elapsed(), Duration::from_millis(55));
//! assert_eq!(hedge.stats().hedges_won, 1);
//! # Ok::<(), tailguard::ConfigError>(())
//! ```

mod future;
mod layer;

pub use self::future::{Attempt, Attempts, ResponseFuture};
pub use self::layer::HedgeLayer;

use std::task::{Context, Poll};

#[cfg(feature = "async-io")]
use tailguard::time::DefaultTimer;
use tailguard::time::Timer;
use tower_service::Service;

/// A service whose slow calls are hedged; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Hedge<S, T> {
    inner: S,
    hedge: tailguard::hedge::Hedge,
    timer: T,
}

#[cfg(feature = "async-io")]
impl<S> Hedge<S, DefaultTimer> {
    /// `inner`, hedged under `hedge`, on the default timer.
    pub fn new(inner: S, hedge: tailguard::hedge::Hedge) -> Self {
        Hedge::new_with(DefaultTimer::default(), inner, hedge)
    }
}

impl<S, T: Timer> Hedge<S, T> {
    /// `inner`, hedged under `hedge`, on `timer`.
    pub fn new_with(timer: T, inner: S, hedge: tailguard::hedge::Hedge) -> Self {
        Hedge {
            inner,
            hedge,
            timer,
        }
    }

    /// The policy (shared by every clone).
    pub fn hedge(&self) -> &tailguard::hedge::Hedge {
        &self.hedge
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, T, Req> Service<Req> for Hedge<S, T>
where
    S: Service<Req> + Clone,
    T: Timer,
    Req: Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S, Req, T>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        // The ready service takes the primary; hedges go to clones of it.
        let clone = self.inner.clone();
        let mut service = std::mem::replace(&mut self.inner, clone);
        let primary = service.call(request.clone());
        ResponseFuture::new(
            self.hedge.clone(),
            self.timer.clone(),
            service,
            request,
            primary,
        )
    }
}

#[cfg(test)]
mod tests;
