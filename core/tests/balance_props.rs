//! Property tests of the balancer: whatever the sequence of changes to the endpoint set, picks,
//! calls and latencies, it never picks an endpoint that is not in the set, never leaks an
//! outstanding call, and starves an endpoint much slower than the others.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use tailguard::balance::{Balancer, Load};

#[derive(Debug, Clone)]
enum Op {
    Insert(u8),
    Remove(u8),
    /// Pick, start a call; it ends after the given number of later ops.
    Call {
        lasts: u8,
        latency_us: u32,
    },
    /// Pick among the endpoints whose key is not this one.
    PickExcept(u8),
    Advance(u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..8).prop_map(Op::Insert),
        (0u8..8).prop_map(Op::Remove),
        (0u8..6, 1u32..200_000).prop_map(|(lasts, latency_us)| Op::Call { lasts, latency_us }),
        (0u8..8).prop_map(Op::PickExcept),
        (1u32..5_000_000).prop_map(Op::Advance),
    ]
}

proptest! {
    #[test]
    fn never_picks_a_removed_endpoint_and_never_leaks_a_call(
        seed in any::<u64>(),
        ops in prop::collection::vec(op(), 1..200),
    ) {
        let mut now = Instant::now();
        let mut balancer = Balancer::builder().seed(seed).build(0u8..3).unwrap();
        let mut present: Vec<u8> = vec![0, 1, 2];
        // Calls in flight: (ops left, key, load, finish or cancel).
        let mut calls: Vec<(u8, u8, Load, bool)> = Vec::new();
        for op in ops {
            match op {
                Op::Insert(k) => {
                    balancer.insert(k);
                    if !present.contains(&k) {
                        present.push(k);
                    }
                }
                Op::Remove(k) => {
                    prop_assert_eq!(balancer.remove(&k), present.contains(&k));
                    present.retain(|&p| p != k);
                    // Calls out on it end on the removed endpoint, not on a later one of the
                    // same key.
                    for call in calls.iter_mut().filter(|c| c.1 == k) {
                        call.1 = u8::MAX;
                    }
                }
                Op::Call { lasts, latency_us } => {
                    match balancer.pick_at(now) {
                        None => prop_assert!(present.is_empty()),
                        Some(i) => {
                            let key = *balancer.key(i).unwrap();
                            prop_assert!(present.contains(&key));
                            let load = balancer.start_at(i, now).unwrap();
                            calls.push((lasts, key, load, latency_us % 2 == 0));
                        }
                    }
                }
                Op::PickExcept(k) => {
                    if let Some(i) = balancer.pick_where_at(now, |_, &key| key != k) {
                        let key = *balancer.key(i).unwrap();
                        prop_assert!(key != k && present.contains(&key));
                    } else {
                        prop_assert!(present.iter().all(|&p| p == k));
                    }
                }
                Op::Advance(us) => now += Duration::from_micros(u64::from(us)),
            }
            // Age the calls; end those due, alternately finished and cancelled.
            let mut still = Vec::new();
            for (left, key, load, finish) in calls.drain(..) {
                if left == 0 {
                    if finish { load.finish_at(now) } else { load.cancel_at(now) }
                } else {
                    still.push((left - 1, key, load, finish));
                }
            }
            calls = still;
            // Outstanding counts match the calls still in flight on endpoints still present.
            for &key in &present {
                let i = balancer.index_of(&key).unwrap();
                let expected = calls.iter().filter(|c| c.1 == key).count() as u32;
                prop_assert_eq!(balancer.pending(i), Some(expected));
                prop_assert!(balancer.cost_at(i, now).unwrap().is_finite());
            }
        }
        drop(calls);
        for i in 0..balancer.len() {
            prop_assert_eq!(balancer.pending(i), Some(0));
        }
    }

    #[test]
    fn a_much_slower_endpoint_gets_a_vanishing_share(
        seed in any::<u64>(),
        n in 2usize..8,
        slow in 0usize..8,
        fast_us in 500u64..5_000,
        slowdown in 10u64..100,
    ) {
        let slow = slow % n;
        let balancer = Balancer::builder().seed(seed).build(0..n).unwrap();
        let mut now = Instant::now();
        let calls = 4_000;
        let mut slow_calls = 0;
        for _ in 0..calls {
            let i = balancer.pick_at(now).unwrap();
            let latency = if i == slow { fast_us * slowdown } else { fast_us };
            slow_calls += usize::from(i == slow);
            let load = balancer.start_at(i, now).unwrap();
            now += Duration::from_micros(latency);
            load.finish_at(now);
        }
        // An even share would be calls / n; the slow one gets under 2 % of it.
        prop_assert!(slow_calls * 50 < calls / n, "{slow_calls} of {calls} over {n}");
    }
}
