//! The `p2c` mode of the simulation: least-loaded replica choice and replica-aware hedging on
//! top of adaptive hedging.
//!
//! Each key has `max_attempts` copies (the replicas the other modes send attempt 1, 2, ... to).
//! Here:
//!
//! - the **primary** goes to the cheaper of two of the key's copies drawn at random (power of
//!   two choices), by a [`Balancer`]'s cost: its peak-EWMA latency, or the mean age of its
//!   outstanding reads if longer, × (outstanding + 1). A replica stalled for a while holds
//!   reads that age, or has answered late, so it is avoided;
//! - a **hedge** goes to the cheapest copy not running this read and not on probation for
//!   being slow ([`Balancer::is_slow_against_at`]), as
//!   [`CallReplicas`] picks; only if every copy left is slow
//!   does it go to the cheapest of those (the hedge was already paid for);
//! - each attempt's [`Load`](tailguard::balance::Load) is finished when the read completes, and cancelled (the time out
//!   learnt as a lower bound) when a hedge wins first.
//!
//! The event loop (the `sim_loop` module) calls these at each attempt, starts and ends
//! its load, and keeps the read's [`CallReplicas`]. The balancer
//! is seeded from the run's seed and each mode runs on one thread, so the mode stays
//! deterministic for a seed.

use std::time::Instant;

use tailguard::balance::Balancer;
use tailguard::hedge::{AttemptKind, CallReplicas, Candidate, ReplicaHealth};
use tailguard::ConfigError;

use super::sim::SimConfig;
use crate::backend::mix;

/// The balancer of one run: every replica, by index, seeded from the run's seed.
pub(super) fn balancer(config: &SimConfig) -> Result<Balancer<usize>, ConfigError> {
    Balancer::builder()
        .seed(config.seed)
        .build(0..config.replicas)
}

/// Where one key read's copies are: its hash, home replica and the stride between copies (see
/// [`placement`](super::sim::placement)).
#[derive(Debug, Clone, Copy)]
pub(super) struct Copies {
    pub(super) id: u64,
    pub(super) home: usize,
    pub(super) stride: usize,
    pub(super) replicas: usize,
}

impl Copies {
    /// The key's `copy`-th replica (0 is its home): copies sit at a fixed stride from home,
    /// distinct for every copy up to the number of replicas.
    pub(super) fn copy(&self, copy: usize) -> usize {
        (self.home + self.stride * copy) % self.replicas
    }
}

/// The replica of a read's primary at `now`: the cheaper of two of the key's copies, drawn from
/// the read's hash.
pub(super) fn primary(
    read: &Copies,
    balancer: &Balancer<usize>,
    copies: usize,
    now: Instant,
) -> usize {
    let r = mix(read.id ^ 0x70_32_63);
    let a = (r % copies as u64) as usize;
    let b = ((r >> 32) % (copies as u64 - 1)) as usize;
    let b = if b >= a { b + 1 } else { b };
    let (a, b) = (read.copy(a), read.copy(b));
    let cost = |i: usize| balancer.cost_at(i, now).unwrap_or(f64::INFINITY);
    if cost(b) < cost(a) {
        b
    } else {
        a
    }
}

/// The replica a hedge of the read goes to at `now`: healthy and not running this read
/// (`call`), cheapest first; if none is healthy, the cheapest not running it.
pub(super) fn hedge(
    read: &Copies,
    balancer: &Balancer<usize>,
    copies: usize,
    call: &CallReplicas,
    now: Instant,
) -> usize {
    let mean = balancer.mean_latency_at(now);
    let candidates = (0..copies).map(|c| {
        let replica = read.copy(c);
        Candidate {
            replica,
            health: if balancer.is_slow_against_at(replica, now, mean) {
                ReplicaHealth::Slow
            } else {
                ReplicaHealth::Healthy
            },
            cost: balancer.cost_at(replica, now).unwrap_or(f64::INFINITY),
        }
    });
    call.pick(AttemptKind::Hedge, candidates.clone())
        .or_else(|| call.pick(AttemptKind::Retry, candidates))
        // Attempts never outnumber copies (validated), so one copy is always free.
        .unwrap_or_else(|| read.copy(0))
}
