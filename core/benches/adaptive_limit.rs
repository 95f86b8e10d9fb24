//! Adaptive concurrency limit, uncontended: admit a call, record its latency, release.
//!
//! tailguard's `AdaptiveLimiter` (Gradient2, AIMD and Fixed) against tower's `ConcurrencyLimit`
//! semaphore path (`tokio::sync::Semaphore::try_acquire_owned` + drop, which is what its
//! `poll_ready` does when a permit is free), side by side in one run, on one thread. The
//! limiter's rows include the latency sample (a short uncontended lock and the algorithm's
//! arithmetic); the semaphore measures nothing.
//!
//! Run: `cargo bench -p tailguard --bench adaptive_limit -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use tailguard::limit::{AdaptiveLimiter, Aimd, Fixed, Outcome};

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("adaptive_limit/acquire+record+release");
    let limiters = [
        (
            "tailguard gradient2",
            AdaptiveLimiter::builder().build().unwrap(),
        ),
        (
            "tailguard aimd",
            AdaptiveLimiter::builder()
                .algorithm(Aimd::default())
                .build()
                .unwrap(),
        ),
        (
            "tailguard fixed",
            AdaptiveLimiter::builder()
                .algorithm(Fixed::new(100).unwrap())
                .build()
                .unwrap(),
        ),
    ];
    let start = Instant::now();
    let later = start + Duration::from_millis(3);
    for (name, limiter) in limiters {
        group.bench_function(name, |b| {
            b.iter(|| {
                let permit = limiter.try_acquire_at(black_box(start)).unwrap();
                permit.record_at(Outcome::Success, black_box(later));
            })
        });
    }
    group.bench_function("tailguard fixed, dropped unreported", |b| {
        let limiter = AdaptiveLimiter::builder()
            .algorithm(Fixed::new(100).unwrap())
            .build()
            .unwrap();
        b.iter(|| drop(black_box(limiter.try_acquire_at(start).unwrap())))
    });
    let semaphore = Arc::new(tokio::sync::Semaphore::new(100));
    group.bench_function("tower ConcurrencyLimit (semaphore)", |b| {
        b.iter(|| drop(black_box(semaphore.clone().try_acquire_owned().unwrap())))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
