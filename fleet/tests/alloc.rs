//! The call path allocates nothing with sharing on: a breaker's acquire and record, a retry
//! budget's deposit and withdrawal, a rate limiter's acquire, each while a `Fleet` shares it
//! with a real redis-server (its thread allocating freely: the counting allocator, core's
//! `tests/alloc/support.rs`, counts the current thread only). Skipped without a redis-server
//! unless `TAILGUARD_REQUIRE_REDIS=1`.

use std::time::Duration;

use tailguard::breaker::CircuitBreaker;
use tailguard::rate::RateLimiter;
use tailguard::retry::RetryBudget;
use tailguard_fleet::{Fleet, Mode, RateFallback};

mod common;
use common::{eventually, redis};

// Installs core's counting allocator in this binary (with its own test that it counts).
#[allow(dead_code)]
#[path = "../../core/tests/alloc/support.rs"]
mod support;
use support::allocations_in;

#[test]
fn shared_policies_allocate_nothing_on_the_call_path() {
    let Some(redis) = redis() else { return };
    let fleet = Fleet::builder(&redis.url())
        .interval(Duration::from_millis(10))
        .on_log(|_| {})
        .build()
        .unwrap();
    let breaker = CircuitBreaker::builder()
        .name("alloc")
        .count_window(100)
        .minimum_calls(100)
        .build()
        .unwrap();
    let budget = RetryBudget::builder().ratio(0.5).build().unwrap();
    let limiter = RateLimiter::builder()
        .rate(1_000_000, Duration::from_secs(1))
        .burst(1_000)
        .build()
        .unwrap();
    fleet.share(&breaker).unwrap();
    fleet.share_budget("alloc", &budget).unwrap();
    fleet
        .share_rate("alloc", &limiter, RateFallback::LastShare)
        .unwrap();
    assert!(eventually(
        || fleet.status().mode == Mode::Shared && fleet.status().syncs >= 3
    ));
    // Many calls, across many syncs of the fleet's thread (every 10 ms).
    let syncs = fleet.status().syncs;
    let mut admitted = 0;
    let allocated = allocations_in(|| {
        for _ in 0..20 {
            for _ in 0..1_000 {
                breaker.try_acquire().unwrap().success();
                budget.deposit();
                let _ = budget.try_withdraw();
                admitted += u32::from(limiter.try_acquire().is_ok());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    assert_eq!(allocated, 0);
    assert!(admitted > 0);
    assert!(fleet.status().syncs > syncs, "the fleet synced meanwhile");
    assert_eq!(fleet.status().mode, Mode::Shared);
}
