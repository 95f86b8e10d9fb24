//! Hedged calls and fan-out: tailguard against tower's `hedge` middleware, side by side.
//!
//! tower's hedge needs tokio's timer, so both run inside the same tokio runtime here (the
//! runtime is a dev-dependency of the benchmarks only). tailguard also runs without any
//! executor (one poll with a no-op waker) and in virtual time, to show its own cost.
//!
//! Run: `cargo bench -p tailguard --bench hedge -- --warm-up-time 1 --measurement-time 3`

use std::convert::Infallible;
use std::future::{ready, Future};
use std::hint::black_box;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use futures::future::{join_all, pending};
use futures::task::noop_waker_ref;
use tailguard::fanout::{first_ok, scatter_gather_with};
use tailguard::hedge::Hedge;
use tailguard::time::{AsyncIoTimer, ManualTimer, Timer};
use tailguard::timeout::Deadline;
use tower::hedge::{Hedge as TowerHedge, Policy};
use tower::{service_fn, Service, ServiceExt};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

/// Hedge every request: requests are plain numbers.
#[derive(Clone)]
struct AlwaysHedge;

impl Policy<u64> for AlwaysHedge {
    fn clone_request(&self, req: &u64) -> Option<u64> {
        Some(*req)
    }
    fn can_retry(&self, _: &u64) -> bool {
        true
    }
}

fn poll_once<F: Future>(f: F) -> Poll<F::Output> {
    let mut f = pin!(f);
    f.as_mut().poll(&mut Context::from_waker(noop_waker_ref()))
}

fn primary_wins_at_once(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("hedge/primary-ready");

    let hedge = Hedge::builder()
        .fixed_delay(Duration::from_millis(10))
        .build()
        .unwrap();
    let adaptive = Hedge::builder().build().unwrap();

    group.bench_function("tailguard/no-executor", |b| {
        b.iter(|| {
            poll_once(hedge.run_with(AsyncIoTimer, |n| ready(Ok::<_, Infallible>(black_box(n)))))
        })
    });
    group.bench_function("tailguard-adaptive/no-executor", |b| {
        b.iter(|| {
            poll_once(adaptive.run_with(AsyncIoTimer, |n| ready(Ok::<_, Infallible>(black_box(n)))))
        })
    });
    group.bench_function("baseline-ready-future/tokio", |b| {
        b.iter(|| rt.block_on(ready(Ok::<_, Infallible>(black_box(0u32)))))
    });
    group.bench_function("tailguard/tokio", |b| {
        b.iter(|| {
            rt.block_on(hedge.run_with(AsyncIoTimer, |n| ready(Ok::<_, Infallible>(black_box(n)))))
        })
    });

    // tower: latencies pre-filled so it would hedge at its p90 (10 ms) if the call were slow.
    let service = service_fn(|req: u64| ready(Ok::<_, Infallible>(req)));
    bench_tower(&mut group, &rt, service, 10);
    group.finish();
}

/// tower's hedge around `service`, at its p90 of 100 mock latencies all `latency_ms`, in `rt`.
fn bench_tower<S, F>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
    service: S,
    latency_ms: u64,
) where
    S: Service<u64, Response = u64, Error = Infallible, Future = F> + Clone,
    F: Future<Output = Result<u64, Infallible>>,
{
    let mut tower_hedge = {
        let _guard = rt.enter();
        TowerHedge::new_with_mock_latencies(
            service,
            AlwaysHedge,
            10,
            0.9,
            Duration::from_secs(10),
            &[latency_ms; 100],
        )
    };
    group.bench_function("tower/tokio", |b| {
        b.iter(|| {
            rt.block_on(async {
                let svc = tower_hedge.ready().await.unwrap();
                svc.call(black_box(1)).await.unwrap()
            })
        })
    });
}

fn a_hedge_wins(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("hedge/hedge-wins");

    // The primary never answers; the hedge, sent after a zero delay, answers at once.
    let hedge = Hedge::builder()
        .fixed_delay(Duration::ZERO)
        .unbudgeted()
        .build()
        .unwrap();
    group.bench_function("tailguard/tokio", |b| {
        b.iter(|| {
            rt.block_on(hedge.run_with(AsyncIoTimer, |n| async move {
                if n == 1 {
                    pending::<()>().await;
                }
                Ok::<_, Infallible>(n)
            }))
        })
    });

    // The same in virtual time: primary 10 ms, hedge after 1 ms answers in 1 ms.
    let timer = ManualTimer::new();
    let virtual_hedge = Hedge::builder()
        .fixed_delay(Duration::from_millis(1))
        .unbudgeted()
        .build()
        .unwrap();
    group.bench_function("tailguard/virtual-time", |b| {
        b.iter(|| {
            let t = timer.clone();
            timer.block_on(virtual_hedge.run_with(timer.clone(), move |n| {
                let sleep = t.sleep(Duration::from_millis(if n == 1 { 10 } else { 1 }));
                async move {
                    sleep.await;
                    Ok::<_, Infallible>(n)
                }
            }))
        })
    });

    // tower: every recorded latency is 0 ms, so it hedges after 0 ms; the service answers
    // every second call (the hedge) and leaves the first (the primary) pending.
    let calls = Arc::new(AtomicU64::new(0));
    let service = service_fn(move |req: u64| {
        let primary = calls.fetch_add(1, Ordering::Relaxed) % 2 == 0;
        async move {
            if primary {
                pending::<()>().await;
            }
            Ok::<_, Infallible>(req)
        }
    });
    bench_tower(&mut group, &rt, service, 0);
    group.finish();
}

fn fan_out_100_ready(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout/100-ready");
    let timer = AsyncIoTimer;
    group.bench_function("scatter_gather", |b| {
        b.iter(|| {
            let deadline = Deadline::at(timer.now() + Duration::from_secs(1));
            let legs = (0..100u64).map(|i| ready(black_box(i)));
            poll_once(scatter_gather_with(timer, legs, deadline))
        })
    });
    group.bench_function("first_ok", |b| {
        b.iter(|| {
            let legs = (0..100u64).map(|i| ready(Ok::<_, Infallible>(black_box(i))));
            poll_once(first_ok(legs))
        })
    });
    group.bench_function("futures-join_all (no deadline)", |b| {
        b.iter(|| {
            let legs = (0..100u64).map(|i| ready(black_box(i)));
            poll_once(join_all(legs))
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    primary_wins_at_once,
    a_hedge_wins,
    fan_out_100_ready
);
criterion_main!(benches);
