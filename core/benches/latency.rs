//! Latency histograms: tailguard's lock-free `LatencyHistogram` against hdrhistogram behind a
//! `Mutex` (the usual way to share one), recording and reading, in one run.
//!
//! Run: `cargo bench -p tailguard --bench latency -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use hdrhistogram::Histogram;
use tailguard::latency::{LatencyHistogram, RollingHistogram};

/// Latencies from 50 µs to ~50 ms, in nanoseconds, spread so buckets vary.
fn samples() -> Vec<u64> {
    let mut rng = fastrand::Rng::with_seed(7);
    (0..4096).map(|_| 50_000 + rng.u64(0..50_000_000)).collect()
}

/// hdrhistogram configured for the same job: nanoseconds up to an hour, 2 significant digits
/// (1 % resolution, comparable to tailguard's 1/128).
fn hdr() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 2).unwrap()
}

fn record(c: &mut Criterion) {
    let values = samples();
    let mut group = c.benchmark_group("latency/record");

    let ours = LatencyHistogram::new();
    let mut i = 0;
    group.bench_function("tailguard", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            ours.record(Duration::from_nanos(black_box(values[i])));
        })
    });

    let theirs = Mutex::new(hdr());
    let mut i = 0;
    group.bench_function("hdrhistogram+Mutex", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            let _ = theirs.lock().unwrap().record(black_box(values[i]));
        })
    });

    let rolling = RollingHistogram::new(Duration::from_secs(10), 10).unwrap();
    let now = Instant::now();
    let mut i = 0;
    group.bench_function("tailguard-rolling", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            rolling.record_at(now, Duration::from_nanos(black_box(values[i])));
        })
    });
    group.finish();

    // Two threads recording into one shared histogram at once.
    let mut group = c.benchmark_group("latency/record-2-threads");
    group.bench_function("tailguard", |b| {
        b.iter_custom(|iters| {
            let h = LatencyHistogram::new();
            let start = Instant::now();
            std::thread::scope(|s| {
                for t in 0..2u64 {
                    let (h, values) = (&h, &values);
                    s.spawn(move || {
                        for n in 0..iters {
                            h.record_nanos(values[((n + t * 7) & 4095) as usize]);
                        }
                    });
                }
            });
            start.elapsed()
        })
    });
    group.bench_function("hdrhistogram+Mutex", |b| {
        b.iter_custom(|iters| {
            let h = Mutex::new(hdr());
            let start = Instant::now();
            std::thread::scope(|s| {
                for t in 0..2u64 {
                    let (h, values) = (&h, &values);
                    s.spawn(move || {
                        for n in 0..iters {
                            let v = values[((n + t * 7) & 4095) as usize];
                            let _ = h.lock().unwrap().record(v);
                        }
                    });
                }
            });
            start.elapsed()
        })
    });
    group.finish();
}

fn quantile(c: &mut Criterion) {
    let values = samples();
    let ours = LatencyHistogram::new();
    let mut theirs = hdr();
    for &v in &values {
        ours.record_nanos(v);
        theirs.record(v).unwrap();
    }
    let mut group = c.benchmark_group("latency/p99-of-4096");
    group.bench_function("tailguard", |b| b.iter(|| ours.quantile(black_box(0.99))));
    group.bench_function("hdrhistogram", |b| {
        b.iter(|| theirs.value_at_quantile(black_box(0.99)))
    });
    group.finish();
}

criterion_group!(benches, record, quantile);
criterion_main!(benches);
