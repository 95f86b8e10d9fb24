//! Circuit breaker, closed state: admit a call and record its success.
//!
//! tailguard against failsafe and recloser, side by side in one run: on one thread, and with two
//! threads hammering one shared breaker (throughput; each iteration is one call on each thread,
//! so criterion's time per iteration is the time for two calls made in parallel). The
//! `separate breakers` row gives each thread its own tailguard breaker: the machine's own
//! ceiling for two-thread scaling, with nothing shared. The `window of 1,000,000` row orders
//! the threads' calls with a shared add every 16,384 calls instead of every 512: the cost of
//! that add.
//!
//! The `precise clock` rows run the same breakers on a timer whose `now_coarse` is `now` (as
//! before the coarse clock): beside the plain rows, what reading `CLOCK_MONOTONIC_COARSE`
//! instead of `Instant::now` for measurements saves.
//!
//! The `cached clock` rows run them on [`CachedTimer`]: the default timer with its coarse clock
//! replaced by a time one thread per process refreshes every millisecond, read with one atomic
//! load (no clock read at all on the call path).
//!
//! Run: `cargo bench -p tailguard --bench breaker -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use failsafe::CircuitBreaker as _;
use tailguard::breaker::{CircuitBreaker, CircuitBreakerBuilder};
use tailguard::time::{AsyncIoTimer, CachedTimer, Timer};

fn tailguard_count() -> CircuitBreaker {
    CircuitBreaker::builder().count_window(100).build().unwrap()
}

/// A window so large that its stripes take global positions 16,384 at a time instead of 512:
/// next to `tailguard_count` on two threads, the cost of the shared `fetch_add` that orders
/// the calls of different threads.
fn tailguard_huge_chunks() -> CircuitBreaker {
    CircuitBreaker::builder()
        .count_window(1_000_000)
        .build()
        .unwrap()
}

fn tailguard_timed() -> CircuitBreaker {
    // Slow-call detection reads the clock on admit and on record.
    CircuitBreaker::builder()
        .count_window(100)
        .slow_calls(Duration::from_secs(1), 0.5)
        .build()
        .unwrap()
}

fn tailguard_time_window() -> CircuitBreaker {
    CircuitBreaker::builder()
        .time_window(Duration::from_secs(10), 10)
        .build()
        .unwrap()
}

/// The default timer without its coarse clock: every read is `Instant::now`.
#[derive(Clone, Copy, Debug)]
struct PreciseTimer;

impl Timer for PreciseTimer {
    type Sleep = async_io::Timer;

    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep_until(&self, deadline: Instant) -> Self::Sleep {
        AsyncIoTimer.sleep_until(deadline)
    }
}

fn tailguard_timed_precise() -> CircuitBreaker<PreciseTimer> {
    CircuitBreakerBuilder::new()
        .count_window(100)
        .slow_calls(Duration::from_secs(1), 0.5)
        .build_with(PreciseTimer)
        .unwrap()
}

fn tailguard_time_window_precise() -> CircuitBreaker<PreciseTimer> {
    CircuitBreakerBuilder::new()
        .time_window(Duration::from_secs(10), 10)
        .build_with(PreciseTimer)
        .unwrap()
}

fn tailguard_timed_cached() -> CircuitBreaker<CachedTimer<AsyncIoTimer>> {
    CircuitBreakerBuilder::new()
        .count_window(100)
        .slow_calls(Duration::from_secs(1), 0.5)
        .build_with(CachedTimer::new(AsyncIoTimer))
        .unwrap()
}

fn tailguard_time_window_cached() -> CircuitBreaker<CachedTimer<AsyncIoTimer>> {
    CircuitBreakerBuilder::new()
        .time_window(Duration::from_secs(10), 10)
        .build_with(CachedTimer::new(AsyncIoTimer))
        .unwrap()
}

#[inline]
fn tailguard_op<T: Timer>(breaker: &CircuitBreaker<T>) {
    if let Ok(permit) = breaker.try_acquire() {
        permit.success();
    }
}

fn failsafe_default() -> impl failsafe::CircuitBreaker + Sync {
    failsafe::Config::new().build()
}

fn failsafe_consecutive() -> impl failsafe::CircuitBreaker + Sync {
    let backoff = failsafe::backoff::constant(Duration::from_secs(10));
    failsafe::Config::new()
        .failure_policy(failsafe::failure_policy::consecutive_failures(5, backoff))
        .build()
}

fn recloser() -> recloser::Recloser {
    recloser::Recloser::custom().closed_len(100).build()
}

/// Time for `iters` operations on each of two threads, run in parallel: from the first thread
/// starting to the last one finishing, each thread reading the clock itself (a coordinator's
/// clock read could come late on a busy machine and flatter the result).
fn two_threads<S: Sync>(iters: u64, states: [&S; 2], op: impl Fn(&S) + Sync) -> Duration {
    let barrier = Barrier::new(2);
    let spans: Vec<(Instant, Instant)> = thread::scope(|scope| {
        let workers: Vec<_> = states
            .into_iter()
            .map(|state| {
                let (barrier, op) = (&barrier, &op);
                scope.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..iters {
                        op(black_box(state));
                    }
                    (start, Instant::now())
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let start = spans.iter().map(|s| s.0).min().unwrap();
    let end = spans.iter().map(|s| s.1).max().unwrap();
    end - start
}

fn one_thread(c: &mut Criterion) {
    let mut group = c.benchmark_group("breaker/one thread");
    group.throughput(Throughput::Elements(1));

    let breaker = tailguard_count();
    group.bench_function("tailguard", |b| {
        b.iter(|| tailguard_op(black_box(&breaker)))
    });
    let breaker = tailguard_timed();
    group.bench_function("tailguard (slow-call timing)", |b| {
        b.iter(|| tailguard_op(black_box(&breaker)))
    });
    let breaker = tailguard_time_window();
    group.bench_function("tailguard (time window)", |b| {
        b.iter(|| tailguard_op(black_box(&breaker)))
    });
    let breaker = tailguard_timed_precise();
    group.bench_function("tailguard (slow-call timing, precise clock)", |b| {
        b.iter(|| tailguard_op(black_box(&breaker)))
    });
    let breaker = tailguard_time_window_precise();
    group.bench_function("tailguard (time window, precise clock)", |b| {
        b.iter(|| tailguard_op(black_box(&breaker)))
    });
    let breaker = tailguard_timed_cached();
    group.bench_function("tailguard (slow-call timing, cached clock)", |b| {
        b.iter(|| tailguard_op(black_box(&breaker)))
    });
    let breaker = tailguard_time_window_cached();
    group.bench_function("tailguard (time window, cached clock)", |b| {
        b.iter(|| tailguard_op(black_box(&breaker)))
    });
    let breaker = failsafe_default();
    group.bench_function("failsafe (default policy)", |b| {
        b.iter(|| black_box(breaker.call(|| Ok::<(), ()>(()))))
    });
    let breaker = failsafe_consecutive();
    group.bench_function("failsafe (consecutive failures)", |b| {
        b.iter(|| black_box(breaker.call(|| Ok::<(), ()>(()))))
    });
    let breaker = recloser();
    group.bench_function("recloser", |b| {
        b.iter(|| black_box(breaker.call(|| Ok::<(), ()>(()))))
    });
    group.finish();
}

fn two_threads_one_breaker(c: &mut Criterion) {
    let mut group = c.benchmark_group("breaker/two threads");
    group.throughput(Throughput::Elements(2));

    let breaker = tailguard_count();
    group.bench_function("tailguard", |b| {
        b.iter_custom(|iters| two_threads(iters, [&breaker, &breaker], tailguard_op))
    });
    let breaker = tailguard_timed();
    group.bench_function("tailguard (slow-call timing)", |b| {
        b.iter_custom(|iters| two_threads(iters, [&breaker, &breaker], tailguard_op))
    });
    let breaker = tailguard_time_window();
    group.bench_function("tailguard (time window)", |b| {
        b.iter_custom(|iters| two_threads(iters, [&breaker, &breaker], tailguard_op))
    });
    let breaker = tailguard_huge_chunks();
    group.bench_function("tailguard (window of 1,000,000)", |b| {
        b.iter_custom(|iters| two_threads(iters, [&breaker, &breaker], tailguard_op))
    });
    let breakers = [tailguard_count(), tailguard_count()];
    group.bench_function("tailguard (separate breakers)", |b| {
        b.iter_custom(|iters| two_threads(iters, [&breakers[0], &breakers[1]], tailguard_op))
    });
    let breaker = failsafe_default();
    group.bench_function("failsafe (default policy)", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, [&breaker, &breaker], |cb| {
                let _ = black_box(cb.call(|| Ok::<(), ()>(())));
            })
        })
    });
    let breaker = failsafe_consecutive();
    group.bench_function("failsafe (consecutive failures)", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, [&breaker, &breaker], |cb| {
                let _ = black_box(cb.call(|| Ok::<(), ()>(())));
            })
        })
    });
    let breaker = recloser();
    group.bench_function("recloser", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, [&breaker, &breaker], |cb| {
                let _ = black_box(cb.call(|| Ok::<(), ()>(())));
            })
        })
    });
    group.finish();
}

criterion_group!(benches, one_thread, two_threads_one_breaker);
criterion_main!(benches);
