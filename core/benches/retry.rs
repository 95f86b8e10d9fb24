//! Retry overhead against backon and tokio-retry2, and the retry budget against tower's.
//!
//! Every future here completes without waiting: the operation is ready at once and delays are
//! zero, so what is measured is the retry machinery itself. Futures are polled with a no-op
//! waker, no executor in the loop.
//!
//! - backon gets a no-op sleeper (`|_| std::future::ready(())`): no tokio runtime needed.
//! - tokio-retry2 sleeps with `tokio::time::sleep_until` even for a zero delay, which needs a
//!   tokio runtime, so it is only measured for first-try success (where it never sleeps).
//! - tailguard uses its default timer (async-io); a zero-delay sleep is due on its first poll
//!   and never registers with the reactor.

use std::cell::Cell;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use backon::{ConstantBuilder, Retryable as _};
use criterion::{criterion_group, criterion_main, Criterion};
use futures::task::noop_waker;
use tailguard::backoff::{Backoff, Jitter};
use tailguard::retry::{Retry, RetryBudget};
use tower::retry::budget::{Budget as _, TpsBudget};

/// Polls `fut` until ready (at most a few times: nothing here really waits). The future is made
/// by `make` inside, so it is built where it is polled, as an `.await` in an async fn builds it
/// in the caller's state; [`drive_moved`] measures the move of a future built elsewhere.
#[inline(always)]
fn drive<F: Future>(make: impl FnOnce() -> F) -> F::Output {
    let mut fut = pin!(make());
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    for _ in 0..16 {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
    }
    panic!("the benchmarked future kept waiting");
}

/// Like [`drive`], but the future is built by the caller and moved in (a copy of its bytes).
#[inline(never)]
fn drive_moved<F: Future>(fut: F) -> F::Output {
    drive(|| fut)
}

fn zero_delay_policy() -> Retry<tailguard::time::DefaultTimer> {
    Retry::builder()
        .max_attempts(3)
        .backoff(
            Backoff::constant(Duration::ZERO)
                .jitter(Jitter::None)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

fn backon_zero_delay() -> ConstantBuilder {
    ConstantBuilder::new()
        .with_delay(Duration::ZERO)
        .with_max_times(2)
}

fn first_try_success(c: &mut Criterion) {
    let mut group = c.benchmark_group("retry/first_try_success");
    let policy = zero_delay_policy();
    let tailguard = || policy.run(|| async { Ok::<u64, ()>(black_box(1)) });
    let backon = || {
        (|| async { Ok::<u64, ()>(black_box(1)) })
            .retry(backon_zero_delay())
            .sleep(|_: Duration| std::future::ready(()))
    };
    let tokio_retry2 = || {
        tokio_retry2::Retry::spawn(
            tokio_retry2::strategy::FixedInterval::from_millis(0).take(2),
            || async { Ok::<u64, tokio_retry2::RetryError<()>>(black_box(1)) },
        )
    };
    group.bench_function("tailguard", |b| b.iter(|| drive(tailguard)));
    group.bench_function("backon", |b| b.iter(|| drive(backon)));
    group.bench_function("tokio-retry2", |b| b.iter(|| drive(tokio_retry2)));
    group.finish();

    let mut group = c.benchmark_group("retry/first_try_success_moved");
    group.bench_function("tailguard", |b| b.iter(|| drive_moved(tailguard())));
    group.bench_function("backon", |b| b.iter(|| drive_moved(backon())));
    group.bench_function("tokio-retry2", |b| b.iter(|| drive_moved(tokio_retry2())));
    group.finish();
}

fn two_failures_then_success(c: &mut Criterion) {
    let mut group = c.benchmark_group("retry/two_failures_zero_delay");
    let policy = zero_delay_policy();
    group.bench_function("tailguard", |b| {
        b.iter(|| {
            let calls = Cell::new(0u32);
            drive(|| {
                policy.run(|| {
                    calls.set(calls.get() + 1);
                    let n = calls.get();
                    async move {
                        if n < 3 {
                            Err(black_box(n))
                        } else {
                            Ok(n)
                        }
                    }
                })
            })
        })
    });
    group.bench_function("backon", |b| {
        b.iter(|| {
            let calls = Cell::new(0u32);
            drive(|| {
                (|| {
                    calls.set(calls.get() + 1);
                    let n = calls.get();
                    async move {
                        if n < 3 {
                            Err(black_box(n))
                        } else {
                            Ok(n)
                        }
                    }
                })
                .retry(backon_zero_delay())
                .sleep(|_: Duration| std::future::ready(()))
            })
        })
    });
    group.finish();
}

fn budget(c: &mut Criterion) {
    let mut group = c.benchmark_group("retry_budget/deposit_withdraw");
    // The same settings for both: 20% of calls, 10 retries/s floor, 10 s window.
    let ours = RetryBudget::builder()
        .ratio(0.2)
        .min_per_second(10)
        .window(Duration::from_secs(10))
        .build()
        .unwrap();
    group.bench_function("tailguard (system clock)", |b| {
        b.iter(|| {
            ours.deposit();
            black_box(ours.try_withdraw())
        })
    });
    let now = Instant::now();
    group.bench_function("tailguard (explicit now)", |b| {
        b.iter(|| {
            ours.deposit_at(black_box(now));
            black_box(ours.try_withdraw_at(black_box(now)))
        })
    });
    let theirs = TpsBudget::new(Duration::from_secs(10), 10, 0.2);
    group.bench_function("tower TpsBudget", |b| {
        b.iter(|| {
            theirs.deposit();
            black_box(theirs.withdraw())
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    first_try_success,
    two_failures_then_success,
    budget
);
criterion_main!(benches);
