//! The call path with sharing off and on, side by side: a closed breaker's acquire + success,
//! alone, and shared through a `Fleet` whose thread syncs with a local redis-server every
//! 10 ms (the shortest interval) while the calls run. The sharing reads what the breaker keeps
//! anyway, so the two should match.
//!
//! `cargo bench -p tailguard-fleet --bench hot_path -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use tailguard::breaker::CircuitBreaker;
use tailguard_fleet::local::LocalRedis;
use tailguard_fleet::{Fleet, Mode};

fn breaker() -> CircuitBreaker {
    CircuitBreaker::builder()
        .name("bench")
        .count_window(100)
        .minimum_calls(100)
        .build()
        .unwrap()
}

fn hot_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("fleet_hot_path");
    let alone = breaker();
    group.bench_function("acquire_success/sharing_off", |b| {
        b.iter(|| black_box(&alone).try_acquire().unwrap().success())
    });

    let redis = LocalRedis::start();
    let url = redis
        .as_ref()
        .map_or_else(|_| "redis://127.0.0.1:1/".to_owned(), LocalRedis::url);
    if let Err(why) = &redis {
        eprintln!("no redis-server ({why}): the fleet runs in local mode, reconnecting");
    }
    let fleet = Fleet::builder(&url)
        .interval(Duration::from_millis(10))
        .on_log(|_| {})
        .build()
        .unwrap();
    let shared = breaker();
    fleet.share(&shared).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    eprintln!("fleet mode during the run: {}", fleet.status().mode);
    group.bench_function("acquire_success/sharing_on", |b| {
        b.iter(|| black_box(&shared).try_acquire().unwrap().success())
    });
    let status = fleet.status();
    eprintln!(
        "fleet: mode {}, {} syncs, {} failed",
        status.mode, status.syncs, status.syncs_failed
    );
    assert!(redis.is_err() || status.mode == Mode::Shared);
    group.finish();
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
