//! A pick, a load started and ended, and the replica choice of a hedge allocate nothing.
//!
//! Allocations are counted by the allocator in `support`.

use std::time::{Duration, Instant};

use crate::support::allocations_in;
use tailguard::balance::Balancer;
use tailguard::hedge::{AttemptKind, CallReplicas, Candidate, ReplicaHealth};

#[test]
fn picks_and_loads_do_not_allocate() {
    let t0 = Instant::now();
    let balancer = Balancer::builder().seed(1).build(0..16usize).unwrap();
    let n = allocations_in(|| {
        for i in 0..10_000u64 {
            let now = t0 + Duration::from_micros(i * 100);
            let pick = balancer.pick_at(now).unwrap();
            let load = balancer.start_at(pick, now).unwrap();
            let other = balancer.pick_where_at(now, |j, _| j != pick).unwrap();
            std::hint::black_box(balancer.is_slow_at(other, now));
            if i % 3 == 0 {
                drop(load);
            } else if i % 3 == 1 {
                load.cancel_at(now + Duration::from_millis(1));
            } else {
                load.finish_at(now + Duration::from_millis(1));
            }
        }
    });
    assert_eq!(n, 0);
}

#[test]
fn choosing_a_replica_does_not_allocate() {
    let n = allocations_in(|| {
        let mut call = CallReplicas::new();
        for replica in 0..40 {
            let candidates = (0..8).map(|r| Candidate {
                replica: (replica + r) % 50,
                health: ReplicaHealth::Healthy,
                cost: r as f64,
            });
            let next = call.pick(AttemptKind::Hedge, candidates).unwrap();
            call.start(next);
            call.finish(next);
        }
        std::hint::black_box(call);
    });
    assert_eq!(n, 0);
}
