//! The pipeline's success path (the operation ready at once): every layer present, against the
//! sum of each layer's standalone cost and against a tower `ServiceBuilder` stack of timeout +
//! retry + concurrency limit, side by side in one run.
//!
//! tower's timeout needs tokio's timer, so every row makes its calls one after another inside one
//! `block_on` of the same current-thread tokio runtime (the runtime's entry is not timed); the
//! `baseline` row is the bare operation there, and each row's overhead is its time minus the
//! baseline's. tailguard runs on its default timer
//! (`AsyncIoTimer`), whose clock is `Instant::now`.
//!
//! Run: `cargo bench -p tailguard --bench pipeline -- --warm-up-time 1 --measurement-time 3`

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use tailguard::breaker::CircuitBreaker;
use tailguard::hedge::Hedge;
use tailguard::pipeline::{Limiter, LimiterPermit, Outcome, Pipeline};
use tailguard::retry::{Retry, RetryBudget};
use tailguard::time::{AsyncIoTimer, Timer};
use tailguard::timeout::timeout_with;
use tower::limit::ConcurrencyLimitLayer;
use tower::retry::{Policy, RetryLayer};
use tower::timeout::TimeoutLayer;
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

#[path = "../tests/common/slots.rs"]
mod slots;
use slots::Slots;

fn slots() -> Slots {
    Slots::new(100)
}

/// tower's retry: up to 3 attempts, every error retried.
#[derive(Clone)]
struct Attempts(u32);

impl<E> Policy<u64, u64, E> for Attempts {
    type Future = Ready<()>;

    fn retry(&mut self, _: &mut u64, result: &mut Result<u64, E>) -> Option<Self::Future> {
        match result {
            Ok(_) => None,
            Err(_) if self.0 > 1 => {
                self.0 -= 1;
                Some(ready(()))
            }
            Err(_) => None,
        }
    }

    fn clone_request(&mut self, req: &u64) -> Option<u64> {
        Some(*req)
    }
}

async fn op(n: u64) -> Result<u64, Infallible> {
    Ok(n)
}

const SECOND: Duration = Duration::from_secs(1);
const ATTEMPT: Duration = Duration::from_millis(100);

/// Times `iters` calls made one after another inside one `block_on`, so that the runtime's own
/// entry and exit are not counted.
fn calls<F, Fut>(rt: &tokio::runtime::Runtime, iters: u64, mut call: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future,
{
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            black_box(call().await);
        }
        start.elapsed()
    })
}

fn success_path(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("pipeline/success");
    let timer = AsyncIoTimer;

    group.bench_function("baseline", |b| {
        b.iter_custom(|n| calls(&rt, n, || op(black_box(1))))
    });

    // Each layer alone.
    group.bench_function("alone/timeout", |b| {
        b.iter_custom(|n| calls(&rt, n, || timeout_with(timer, ATTEMPT, op(black_box(1)))))
    });
    let budget = RetryBudget::builder().build().unwrap();
    let retry = Retry::builder()
        .max_attempts(3)
        .budget(budget.clone())
        .build()
        .unwrap();
    group.bench_function("alone/retry+budget", |b| {
        b.iter_custom(|n| calls(&rt, n, || retry.run(|| op(black_box(1)))))
    });
    let hedge = Hedge::builder().build().unwrap();
    group.bench_function("alone/hedge", |b| {
        b.iter_custom(|n| calls(&rt, n, || hedge.run_with(timer, |_| op(black_box(1)))))
    });
    let breaker = CircuitBreaker::builder().build().unwrap();
    group.bench_function("alone/breaker", |b| {
        b.iter_custom(|n| calls(&rt, n, || breaker.call(|| op(black_box(1)))))
    });
    let limiter = slots();
    group.bench_function("alone/limiter", |b| {
        b.iter_custom(|n| {
            calls(&rt, n, || async {
                let permit = limiter.acquire_at(timer.now(), None).await.unwrap();
                let out = op(black_box(1)).await;
                permit.finish(Outcome::Success, Duration::ZERO);
                out
            })
        })
    });

    // Every layer, in one pipeline.
    let all = Pipeline::builder()
        .total_timeout(SECOND)
        .retry_budget(RetryBudget::builder().build().unwrap())
        .max_attempts(3)
        .hedge(Hedge::builder().build().unwrap())
        .breaker(CircuitBreaker::builder().build().unwrap())
        .limiter(slots())
        .attempt_timeout(ATTEMPT)
        .build()
        .unwrap();
    group.bench_function("pipeline/all layers", |b| {
        b.iter_custom(|n| calls(&rt, n, || all.call(|_| op(black_box(1)))))
    });

    // The same three layers as the tower stack.
    let three = Pipeline::builder()
        .max_attempts(3)
        .limiter(slots())
        .attempt_timeout(ATTEMPT)
        .build()
        .unwrap();
    group.bench_function("pipeline/timeout+retry+limit", |b| {
        b.iter_custom(|n| calls(&rt, n, || three.call(|_| op(black_box(1)))))
    });

    let mut tower_stack = {
        let _guard = rt.enter();
        ServiceBuilder::new()
            .layer(RetryLayer::new(Attempts(3)))
            .layer(ConcurrencyLimitLayer::new(100))
            .layer(TimeoutLayer::new(ATTEMPT))
            .service(service_fn(op))
    };
    group.bench_function("tower/timeout+retry+limit", |b| {
        b.iter_custom(|n| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..n {
                    let svc = tower_stack.ready().await.unwrap();
                    black_box(svc.call(black_box(1)).await.unwrap());
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

criterion_group!(benches, success_path);
criterion_main!(benches);
