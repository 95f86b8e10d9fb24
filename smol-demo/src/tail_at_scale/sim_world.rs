//! The world of the simulation ([`sim`](super::sim)): replicas and their stalls, request
//! arrivals, key placement, service times, and each replica's workers. Every mode runs in the
//! same world; only its policy differs.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::sim::SimConfig;
// SplitMix64 gives per-read randomness from a counter.
use crate::backend::{mix, nanos};

/// A replica's stalls: sorted, disjoint `[start, end)` intervals in nanoseconds since the start.
#[derive(Debug, Clone)]
pub(super) struct Replica {
    stalls: Vec<(u64, u64)>,
}

impl Replica {
    /// When a read arriving at `start` with `service` nanoseconds of work finishes: pauses
    /// delay its start and freeze it mid-service.
    pub(super) fn finish(&self, start: u64, service: u64) -> u64 {
        let mut t = start;
        let mut remaining = service;
        // The first stall that ends after `t`.
        let mut i = self.stalls.partition_point(|&(_, end)| end <= t);
        while let Some(&(stall_start, stall_end)) = self.stalls.get(i) {
            if stall_start > t {
                if t + remaining <= stall_start {
                    break;
                }
                remaining -= stall_start - t;
            }
            t = stall_end;
            i += 1;
        }
        t + remaining
    }
}

/// A uniform number in (0, 1] from a hash.
fn unit(hash: u64) -> f64 {
    ((hash >> 11) as f64 + 1.0) / (1u64 << 53) as f64
}

fn exponential(rng: &mut fastrand::Rng, mean: f64) -> f64 {
    -mean * (1.0 - rng.f64()).ln()
}

/// The world every mode runs in: replicas with their stalls, request arrival times.
pub(super) struct World {
    pub(super) replicas: Vec<Replica>,
    pub(super) arrivals: Vec<u64>,
}

impl World {
    pub(super) fn generate(config: &SimConfig) -> World {
        let mut rng = fastrand::Rng::with_seed(config.seed);
        let total = config.warmup_requests + config.requests;
        let mut arrivals = Vec::with_capacity(total);
        let mut t = 0.0f64;
        let interval = config.request_interval.as_nanos() as f64;
        for _ in 0..total {
            t += exponential(&mut rng, interval);
            arrivals.push(t as u64);
        }
        let horizon = t as u64 + nanos(config.request_deadline) * 2;
        let every = config.stall_every.as_nanos() as f64;
        let (min, max) = (nanos(config.stall_min), nanos(config.stall_max));
        let replicas = (0..config.replicas)
            .map(|_| {
                let mut stalls = Vec::new();
                // Exponential gaps are memoryless: the first stall is as far off as any other,
                // as if the replica had been running for ever.
                let mut t = exponential(&mut rng, every);
                while (t as u64) < horizon {
                    let start = t as u64;
                    let end = start + rng.u64(min..=max);
                    stalls.push((start, end));
                    t = end as f64 + exponential(&mut rng, every);
                }
                Replica { stalls }
            })
            .collect();
        World { replicas, arrivals }
    }
}

/// Where key `key` of request `request` lives: its hash, its home replica and the stride to
/// its copies (attempt `n` goes to `home + stride × (n - 1)`, distinct replicas).
pub(super) fn placement(
    config: &SimConfig,
    replicas: usize,
    request: u64,
    key: u64,
) -> (u64, usize, usize) {
    let id = mix(config.seed ^ mix(request << 20 | key));
    let home = (id % replicas as u64) as usize;
    let stride = 1 + (mix(id) % (replicas as u64 - 1)) as usize;
    (id, home, stride)
}

/// The service time of attempt `attempt` (from 1) of the read hashed `id`, in nanoseconds.
pub(super) fn service(config: &SimConfig, id: u64, attempt: u32) -> u64 {
    // Through a u64 where it fits: the same value, without a 128-bit float conversion per read.
    let extra = config.service_mean_extra.as_nanos();
    let mean_extra = u64::try_from(extra).map_or(extra as f64, |n| n as f64);
    nanos(config.service_base) + (-mean_extra * unit(mix(id ^ u64::from(attempt))).ln()) as u64
}

/// The workers of every replica in one mode's run: when each is next free, in nanoseconds.
/// `None`: a worker for every read (no queueing but for stalls).
pub(super) struct Workers {
    free: Option<Vec<RefCell<BinaryHeap<Reverse<u64>>>>>,
    /// Reads served (each runs to its end).
    pub(super) served: AtomicU64,
}

impl Workers {
    pub(super) fn new(config: &SimConfig) -> Workers {
        Workers {
            free: config.workers.map(|w| {
                (0..config.replicas)
                    .map(|_| RefCell::new((0..w).map(|_| Reverse(0)).collect()))
                    .collect()
            }),
            served: AtomicU64::new(0),
        }
    }

    /// A read of `service` nanoseconds reaching `replica` at `arrival`: it waits for the
    /// first free worker, first come first served (reads reach a replica in time order, as
    /// virtual time only moves forward), and for stalls. Returns when it finishes. A read
    /// once queued runs to the end, like a request sent to an ordinary server, even if the
    /// call it belongs to has been answered by another attempt.
    pub(super) fn serve(&self, world: &World, replica: usize, arrival: u64, service: u64) -> u64 {
        self.served.fetch_add(1, Relaxed);
        let Some(free) = &self.free else {
            return world.replicas[replica].finish(arrival, service);
        };
        let mut free = free[replica].borrow_mut();
        let Reverse(first_free) = free.pop().expect("at least one worker");
        let done = world.replicas[replica].finish(arrival.max(first_free), service);
        free.push(Reverse(done));
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn a_stall_delays_the_start_and_freezes_service() {
        let replica = Replica {
            stalls: vec![(10 * MS, 20 * MS), (30 * MS, 40 * MS)],
        };
        assert_eq!(replica.finish(0, 5 * MS), 5 * MS); // before any stall
        assert_eq!(replica.finish(12 * MS, MS), 21 * MS); // waits for the pause to end
        assert_eq!(replica.finish(8 * MS, 4 * MS), 22 * MS); // frozen mid-service
        assert_eq!(replica.finish(8 * MS, 15 * MS), 43 * MS); // frozen twice
        assert_eq!(replica.finish(50 * MS, MS), 51 * MS); // after all stalls
        assert_eq!(replica.finish(0, 10 * MS), 10 * MS); // done exactly as the pause starts
    }
}
