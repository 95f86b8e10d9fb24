//! The call path with sharing off and on, side by side: a closed breaker's acquire + success,
//! a retry budget's deposit + withdrawal, a rate limiter's acquire; each alone, and shared
//! through a `Fleet` whose thread syncs with a local redis-server every 10 ms (the shortest
//! interval) while the calls run (the fleet runs during the "off" rows too, so both see the
//! same background). The rate limiter's rows compare one path at a time: admitted (a
//! limiter shared alone, at a billion tokens a second, never charged) and refused (a limiter
//! at one token an hour, with an idle peer so the fleet divides its rate and charges its
//! bucket every sync). A shared limiter that is charged refuses some calls, so a mixed row
//! would compare two paths, not sharing off and on. The sharing reads what the policies keep
//! anyway, so the rows should match.
//!
//! `cargo bench -p tailguard-fleet --bench hot_path -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use tailguard::breaker::CircuitBreaker;
use tailguard::rate::RateLimiter;
use tailguard::retry::RetryBudget;
use tailguard_fleet::local::LocalRedis;
use tailguard_fleet::{Fleet, Mode, RateFallback};

fn breaker() -> CircuitBreaker {
    CircuitBreaker::builder()
        .name("bench")
        .count_window(100)
        .minimum_calls(100)
        .build()
        .unwrap()
}

fn budget() -> RetryBudget {
    RetryBudget::builder().ratio(0.5).build().unwrap()
}

/// A billion tokens a second: the bench's calls are admitted.
fn limiter() -> RateLimiter {
    RateLimiter::builder()
        .rate(1_000_000_000, Duration::from_secs(1))
        .burst(1_000)
        .build()
        .unwrap()
}

/// One token an hour, taken at once: the bench's calls are refused.
fn empty_limiter() -> RateLimiter {
    let limiter = RateLimiter::builder()
        .rate(1, Duration::from_secs(3600))
        .build()
        .unwrap();
    limiter.try_acquire().unwrap();
    limiter
}

fn fleet(url: &str, id: &str) -> Fleet {
    Fleet::builder(url)
        .instance_id(id)
        .interval(Duration::from_millis(10))
        .on_log(|_| {})
        .build()
        .unwrap()
}

fn hot_path(c: &mut Criterion) {
    let redis = LocalRedis::start();
    let url = redis
        .as_ref()
        .map_or_else(|_| "redis://127.0.0.1:1/".to_owned(), LocalRedis::url);
    if let Err(why) = &redis {
        eprintln!("no redis-server ({why}): the fleet runs in local mode, reconnecting");
    }
    let (alone, shared) = (breaker(), breaker());
    let (budget_alone, budget_shared) = (budget(), budget());
    let (limiter_alone, limiter_shared) = (limiter(), limiter());
    let (empty_alone, empty_shared, empty_peer) =
        (empty_limiter(), empty_limiter(), empty_limiter());
    let fleet = fleet(&url, "bench");
    let peer = fleet_peer(&url, &empty_peer);
    fleet.share(&shared).unwrap();
    fleet.share_budget("bench", &budget_shared).unwrap();
    fleet
        .share_rate("bench", &limiter_shared, RateFallback::LastShare)
        .unwrap();
    fleet
        .share_rate("refused", &empty_shared, RateFallback::LastShare)
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    eprintln!("fleet mode during the run: {}", fleet.status().mode);

    let mut group = c.benchmark_group("fleet_hot_path");
    group.bench_function("acquire_success/sharing_off", |b| {
        b.iter(|| black_box(&alone).try_acquire().unwrap().success())
    });
    group.bench_function("acquire_success/sharing_on", |b| {
        b.iter(|| black_box(&shared).try_acquire().unwrap().success())
    });
    group.bench_function("budget_deposit_withdraw/sharing_off", |b| {
        b.iter(|| {
            let budget = black_box(&budget_alone);
            budget.deposit();
            black_box(budget.try_withdraw())
        })
    });
    group.bench_function("budget_deposit_withdraw/sharing_on", |b| {
        b.iter(|| {
            let budget = black_box(&budget_shared);
            budget.deposit();
            black_box(budget.try_withdraw())
        })
    });
    group.bench_function("rate_try_acquire/sharing_off", |b| {
        b.iter(|| black_box(black_box(&limiter_alone).try_acquire().is_ok()))
    });
    group.bench_function("rate_try_acquire/sharing_on", |b| {
        b.iter(|| black_box(black_box(&limiter_shared).try_acquire().is_ok()))
    });
    group.bench_function("rate_refused/sharing_off", |b| {
        b.iter(|| black_box(black_box(&empty_alone).try_acquire().is_ok()))
    });
    group.bench_function("rate_refused/sharing_on", |b| {
        b.iter(|| black_box(black_box(&empty_shared).try_acquire().is_ok()))
    });
    group.finish();
    let status = fleet.status();
    eprintln!(
        "fleet: mode {}, {} syncs, {} failed, rate shares {:?} (admitted) {:?} (refused), remote budget {}",
        status.mode,
        status.syncs,
        status.syncs_failed,
        fleet.rate_share("bench"),
        fleet.rate_share("refused"),
        budget_shared.remote_balance()
    );
    assert!(redis.is_err() || status.mode == Mode::Shared);
    drop(peer);
}

/// An idle instance sharing the rate limiter, so the bench's instance has a share below 1.
fn fleet_peer(url: &str, limiter: &RateLimiter) -> Fleet {
    let peer = fleet(url, "peer");
    peer.share_rate("refused", limiter, RateFallback::LastShare)
        .unwrap();
    peer
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
