//! The overload limits against their peers, side by side in one run.
//!
//! * **Bulkhead**: take a slot and give it back, uncontended, against tower's `ConcurrencyLimit`
//!   (`poll_ready` + `call` + the response future, which holds tokio's semaphore permit) and
//!   tokio's `Semaphore::try_acquire` alone (the semaphore under tower's layer).
//! * **Rate limiter**: take a token against governor's `check`, both GCRA. Like for like: the
//!   `sans-IO` rows give each the time without a real clock read (tailguard's `try_acquire_at`
//!   with an instant read once; governor on its `FakeRelativeClock`, an atomic load); the
//!   `own clock` rows let each read its own default clock (tailguard: `Instant::now` through
//!   `AsyncIoTimer`; governor: quanta's TSC clock). Both admitted (a burst larger than the run)
//!   and refused (an empty bucket). Keyed: one known key, tailguard's sharded maps against
//!   governor's dashmap.
//!
//! Run: `cargo bench -p tailguard --bench limits -- --warm-up-time 1 --measurement-time 3`

use std::future::Future;
use std::hint::black_box;
use std::num::NonZeroU32;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use governor::clock::FakeRelativeClock;
use governor::Quota;
use tailguard::bulkhead::Bulkhead;
use tailguard::rate::RateLimiter;
use tailguard::time::{AsyncIoTimer, Timer};
use tower::Service;

fn bulkhead(c: &mut Criterion) {
    let mut group = c.benchmark_group("bulkhead acquire+release");
    let bulkhead = Bulkhead::builder().max_concurrent(100).build().unwrap();
    group.bench_function("tailguard try_acquire", |b| {
        b.iter(|| drop(black_box(bulkhead.try_acquire().unwrap())))
    });
    group.bench_function("tailguard try_acquire_owned", |b| {
        b.iter(|| drop(black_box(bulkhead.try_acquire_owned().unwrap())))
    });
    let deadline = Instant::now() + Duration::from_secs(3600);
    let mut cx = Context::from_waker(Waker::noop());
    group.bench_function("tailguard acquire_until (a free slot)", |b| {
        b.iter(|| {
            let fut = pin!(bulkhead.acquire_until(black_box(deadline)));
            match fut.poll(&mut cx) {
                Poll::Ready(Ok(permit)) => drop(black_box(permit)),
                _ => unreachable!(),
            }
        })
    });
    let mut svc = tower::limit::ConcurrencyLimit::new(
        tower::service_fn(|()| std::future::ready(Ok::<_, ()>(()))),
        100,
    );
    group.bench_function("tower ConcurrencyLimit", |b| {
        b.iter(|| {
            assert!(svc.poll_ready(&mut cx).is_ready());
            let fut = pin!(svc.call(()));
            black_box(fut.poll(&mut cx).is_ready());
        })
    });
    let semaphore = Arc::new(tokio::sync::Semaphore::new(100));
    group.bench_function("tokio Semaphore::try_acquire", |b| {
        b.iter(|| drop(black_box(semaphore.try_acquire().unwrap())))
    });
    group.bench_function("tokio Semaphore::try_acquire_owned", |b| {
        b.iter(|| {
            drop(black_box(
                Arc::clone(&semaphore).try_acquire_owned().unwrap(),
            ))
        })
    });
    group.finish();
}

/// One token a second with a burst no run can spend: every call is admitted.
fn open_quota() -> Quota {
    Quota::per_second(NonZeroU32::MIN).allow_burst(NonZeroU32::MAX)
}

fn tailguard_open<T: Timer>(timer: T) -> RateLimiter<T> {
    RateLimiter::builder()
        .rate(1, Duration::from_secs(1))
        .burst(u32::MAX)
        .build_with(timer)
        .unwrap()
}

fn rate(c: &mut Criterion) {
    let mut group = c.benchmark_group("rate limiter check");
    // Each `now` is read after its limiter is built: an instant before a limiter's origin takes
    // a slower path (std's `Instant` subtraction going negative, then saturating).

    let ours = tailguard_open(AsyncIoTimer);
    let now = Instant::now();
    group.bench_function("admitted, sans-IO: tailguard try_acquire_at", |b| {
        b.iter(|| black_box(ours.try_acquire_at(black_box(now)).is_ok()))
    });
    let theirs =
        governor::RateLimiter::direct_with_clock(open_quota(), FakeRelativeClock::default());
    group.bench_function(
        "admitted, sans-IO: governor check (FakeRelativeClock)",
        |b| b.iter(|| black_box(theirs.check().is_ok())),
    );

    let ours = tailguard_open(AsyncIoTimer);
    group.bench_function(
        "admitted, own clock: tailguard try_acquire (AsyncIoTimer)",
        |b| b.iter(|| black_box(ours.try_acquire().is_ok())),
    );
    let theirs = governor::RateLimiter::direct(open_quota());
    group.bench_function("admitted, own clock: governor check (quanta)", |b| {
        b.iter(|| black_box(theirs.check().is_ok()))
    });

    // Empty buckets: one token an hour, spent.
    let ours = RateLimiter::builder()
        .rate(1, Duration::from_secs(3600))
        .build_with(AsyncIoTimer)
        .unwrap();
    let now = Instant::now();
    ours.try_acquire_at(now).unwrap();
    group.bench_function("refused, sans-IO: tailguard try_acquire_at", |b| {
        b.iter(|| black_box(ours.try_acquire_at(black_box(now)).is_err()))
    });
    let theirs = governor::RateLimiter::direct_with_clock(
        Quota::per_hour(NonZeroU32::MIN),
        FakeRelativeClock::default(),
    );
    assert!(theirs.check().is_ok());
    group.bench_function(
        "refused, sans-IO: governor check (FakeRelativeClock)",
        |b| b.iter(|| black_box(theirs.check().is_err())),
    );

    // Keyed, one known key.
    let ours = RateLimiter::builder()
        .rate(1, Duration::from_secs(1))
        .burst(u32::MAX)
        .build_keyed_with::<u64, _>(AsyncIoTimer)
        .unwrap();
    let now = Instant::now();
    group.bench_function("keyed, sans-IO: tailguard try_acquire_at", |b| {
        b.iter(|| black_box(ours.try_acquire_at(black_box(&42), now).is_ok()))
    });
    let theirs =
        governor::RateLimiter::dashmap_with_clock(open_quota(), FakeRelativeClock::default());
    group.bench_function(
        "keyed, sans-IO: governor check_key (dashmap, FakeRelativeClock)",
        |b| b.iter(|| black_box(theirs.check_key(black_box(&42u64)).is_ok())),
    );
    group.finish();
}

criterion_group!(benches, bulkhead, rate);
criterion_main!(benches);
