//! Least-loaded balancing: tailguard's `Balancer` against tower's `p2c::Balance` over
//! `PeakEwma` services, side by side, with no network.
//!
//! Both pick between two of 16 endpoints by peak-EWMA cost and count the call as outstanding
//! until it completes. tower does it as a `Service` (`poll_ready` picks, `call` sends to a
//! ready no-op service whose response completes at once and records the latency); tailguard as
//! a sans-IO pick (`pick_at`), a `Load` (`start_at`) and its end (`finish_at`), on a time
//! read once per iteration, like tower's.
//!
//! Run: `cargo bench -p tailguard --bench balance -- --warm-up-time 1 --measurement-time 3`

use std::convert::Infallible;
use std::future::{ready, Future};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use futures::task::noop_waker_ref;
use tailguard::balance::Balancer;
use tower::balance::p2c::Balance;
use tower::discover::ServiceList;
use tower::load::{CompleteOnResponse, PeakEwmaDiscover};
use tower::{service_fn, Service};

const ENDPOINTS: usize = 16;

fn poll_once<F: Future>(f: F) -> Poll<F::Output> {
    let mut f = pin!(f);
    f.as_mut().poll(&mut Context::from_waker(noop_waker_ref()))
}

fn pick_and_complete(c: &mut Criterion) {
    let mut group = c.benchmark_group("balance/p2c-peak-ewma-16");

    let balancer = Balancer::builder().seed(1).build(0..ENDPOINTS).unwrap();
    group.bench_function("tailguard", |b| {
        b.iter(|| {
            let now = Instant::now();
            let pick = balancer.pick_at(now).unwrap();
            let load = balancer.start_at(pick, now).unwrap();
            load.finish_at(now);
            black_box(pick)
        })
    });

    let services: Vec<_> = (0..ENDPOINTS)
        .map(|i| service_fn(move |_: ()| ready(Ok::<usize, Infallible>(i))))
        .collect();
    let discover = PeakEwmaDiscover::new::<()>(
        ServiceList::new::<()>(services),
        Duration::from_millis(1),
        Duration::from_secs(10),
        CompleteOnResponse::default(),
    );
    let mut tower = Balance::new(discover);
    let mut cx = Context::from_waker(noop_waker_ref());
    group.bench_function("tower", |b| {
        b.iter(|| {
            assert!(tower.poll_ready(&mut cx).is_ready());
            let reply = poll_once(tower.call(()));
            black_box(reply)
        })
    });
    group.finish();
}

criterion_group!(benches, pick_and_complete);
criterion_main!(benches);
