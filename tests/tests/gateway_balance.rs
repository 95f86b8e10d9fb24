//! The gateway with `Balance::P2c` over real sockets: keys go to the replicas that answer
//! fast, a slow replica gets hardly any, and hedges never go back to the replica still running
//! the key's call.
//!
//! Real-time test: shapes, generous bounds.

use std::time::Duration;

use tailguard_demo::backend::BackendConfig;
use tailguard_demo::gateway::{Balance, HedgeMode};

mod gateway_support;

use gateway_support::{fixed, n, Stack};

#[test]
fn p2c_sends_few_keys_to_a_slow_replica() {
    let mut backends = BackendConfig::uniform(3, fixed(1));
    backends.profiles[2] = fixed(40);
    let stack = Stack::start(backends, |c| {
        c.balance = Balance::P2c;
        c.hedge = HedgeMode::Off;
        c.seed = Some(7);
    });
    let mut served = [0u64; 3];
    for _ in 0..20 {
        let report = stack.fanout(6);
        assert_eq!(n(&report["ok"]), 6, "{report}");
        for (i, count) in served.iter_mut().enumerate() {
            *count += n(&report["served_by"][i.to_string()]);
        }
    }
    // Home placement would give replica 2 a third (40 of 120); p2c learns from its first
    // slow answers and from the age of its outstanding calls.
    assert!(served[2] < 20, "{served:?}");
    assert_eq!(served.iter().sum::<u64>(), 120);
}

#[test]
fn a_hedge_goes_to_another_replica_than_the_one_running_the_call() {
    // Two replicas, both slow: a key's first hedge goes to the other replica; its second has
    // nowhere to go (home placement would send it back to the replica running the primary).
    let stack = Stack::start_with(
        BackendConfig::uniform(2, fixed(60)),
        Duration::from_secs(3),
        |c| {
            c.balance = Balance::P2c;
            c.hedge = HedgeMode::Fixed(Duration::from_millis(5));
            c.hedge_max_attempts = 3;
            c.hedge_budget_ratio = 1.0;
            c.seed = Some(3);
        },
    );
    let keys = 10u64;
    let report = stack.fanout(keys as usize);
    assert_eq!(n(&report["ok"]), keys, "{report}");
    let calls: u64 = stack.backends.stats().iter().map(|r| r.requests).sum();
    assert_eq!(calls, 2 * keys, "a primary and one hedge per key: {report}");
}
