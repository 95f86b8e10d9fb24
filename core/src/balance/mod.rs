//! Least-loaded balancing: power of two choices over a peak-EWMA of latency.
//!
//! Sending each call to a replica at random ignores that one replica may be slow right now (a
//! pause, a busy disk); asking every replica for its load on every call costs a scan and sends
//! a herd to whichever looked best. *Power of two choices* (Mitzenmacher) draws two replicas at
//! random and takes the less loaded: nearly as good as the best of all, at the cost of two
//! looks, and no herd. The load is Finagle's and tower's *peak-EWMA*:
//!
//! ```text
//! cost = expected latency × (outstanding calls + 1)
//! ```
//!
//! - the **expected latency** is an exponentially weighted moving average of observed
//!   latencies that jumps to any sample above it at once (the *peak*: one slow answer is
//!   enough to steer away) and otherwise moves towards the sample by `1 − e^(−Δt/decay)`,
//!   where `Δt` is the time since the last sample. When no answer comes, it decays towards
//!   zero with the same time constant, so a replica that was slow once is tried again later;
//! - a stalled replica answers nothing, so its estimate alone would not move: the expected
//!   latency is also at least the **mean age of its outstanding calls**, which grows by the
//!   millisecond while it is stuck;
//! - **outstanding calls** multiply the cost: a replica with a queue is avoided before its
//!   answers show it.
//!
//! A [`Balancer`] is sans-IO: every method takes `now`, and the random draws come from a
//! seedable generator, so a simulation in virtual time picks the same replicas every run.
//! [`Balancer::start_at`] hands out a [`Load`] for each call: it counts the call as
//! outstanding until it is finished ([`Load::finish_at`], which learns the latency), cancelled
//! ([`Load::cancel_at`], which learns the time out as a lower bound) or dropped.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use tailguard::balance::Balancer;
//!
//! let t0 = Instant::now();
//! let balancer = Balancer::builder().seed(7).build(["a", "b"])?;
//! // "b" answers its first call in 50 ms, "a" in 2 ms.
//! let slow = balancer.start_at(1, t0).unwrap();
//! let fast = balancer.start_at(0, t0).unwrap();
//! fast.finish_at(t0 + Duration::from_millis(2));
//! slow.finish_at(t0 + Duration::from_millis(50));
//! // From now on the two choices always include "a" (there are two), and "a" is cheaper.
//! let now = t0 + Duration::from_millis(50);
//! for _ in 0..10 {
//!     assert_eq!(balancer.pick_at(now).and_then(|i| balancer.key(i)), Some(&"a"));
//! }
//! assert!(balancer.is_slow_at(1, now));
//! # Ok::<(), tailguard::ConfigError>(())
//! ```
//!
//! The picks of hedges and retries that must avoid replicas already running the same call are
//! [`Balancer::pick_where_at`]'s, or [`hedge::CallReplicas`](crate::hedge::CallReplicas)'s,
//! which also skips replicas on probation ([`Balancer::is_slow_at`]) or with a half-open
//! breaker.

mod balancer;
mod ewma;

pub use self::balancer::{Balancer, BalancerBuilder, Load};

#[cfg(test)]
mod tests;
