//! tailguard's tower layers against tower's own `Timeout`, `Retry`, `Hedge` and
//! `ConcurrencyLimit` (and a whole pipeline against a `ServiceBuilder` stack), in one run.
//!
//! tower's layers need tokio's timer, so every row runs inside the same current-thread tokio
//! runtime's context, and every row does the same thing: `poll_ready`, `call`, and one poll of
//! the response future (with a no-op waker; the inner service is a `service_fn` answering with
//! a ready future, so one poll completes the call). No executor runs, so what is measured is
//! the layer itself; the `bare` row is the service with no layer.
//!
//! Run: `cargo bench -p tailguard-tower --bench layers -- --warm-up-time 1 --measurement-time 3`

use std::cell::Cell;
use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::hint::black_box;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use futures::task::noop_waker_ref;
use tailguard::backoff::{Backoff, Jitter};
use tailguard::retry::{Decision, Retry, RetryBudget};
use tailguard_tower::{
    AdaptiveLimitLayer, BulkheadLayer, HedgeLayer, PipelineLayer, RetryLayer, TimeoutLayer,
};
use tower::retry::budget::{Budget as _, TpsBudget};
use tower::{service_fn, Layer, Service};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

type Group<'a> = BenchmarkGroup<'a, criterion::measurement::WallTime>;

/// Readiness, then the call, polled once: the inner services answer at once.
fn call_once<S: Service<R>, R>(service: &mut S, request: R) -> S::Response
where
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(noop_waker_ref());
    let Poll::Ready(Ok(())) = service.poll_ready(&mut cx) else {
        panic!("the service is always ready")
    };
    let mut call = pin!(service.call(request));
    match call.as_mut().poll(&mut cx) {
        Poll::Ready(Ok(response)) => response,
        Poll::Ready(Err(error)) => panic!("the call failed: {error:?}"),
        Poll::Pending => panic!("the call did not answer at once"),
    }
}

/// One row: `service` made ready and called once per iteration, in `rt`'s context.
fn row<S, R>(
    group: &mut Group<'_>,
    rt: &tokio::runtime::Runtime,
    name: &str,
    service: S,
    request: R,
) where
    S: Service<R>,
    S::Error: std::fmt::Debug,
    R: Clone,
{
    let mut service = service;
    let _context = rt.enter();
    group.bench_function(name, |b| {
        b.iter(|| black_box(call_once(&mut service, black_box(request.clone()))))
    });
}

fn echo(
) -> impl Service<u64, Response = u64, Error = Infallible, Future = Ready<Result<u64, Infallible>>> + Clone
{
    service_fn(|n: u64| ready(Ok::<_, Infallible>(n)))
}

fn timeout(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("tower-layers/timeout-ready");
    let limit = Duration::from_secs(1);
    row(&mut group, &rt, "bare", echo(), 1);
    row(
        &mut group,
        &rt,
        "tailguard",
        TimeoutLayer::new(limit).layer(echo()),
        1,
    );
    let tower = {
        let _guard = rt.enter();
        tower::timeout::TimeoutLayer::new(limit).layer(echo())
    };
    row(&mut group, &rt, "tower", tower, 1);
    group.finish();
}

/// tower's retry policy: retry every error, with no delay and no limit.
#[derive(Clone)]
struct RetryErrors;

impl<Req: Clone, Res, E> tower::retry::Policy<Req, Res, E> for RetryErrors {
    type Future = Ready<()>;

    fn retry(&mut self, _: &mut Req, result: &mut Result<Res, E>) -> Option<Self::Future> {
        result.is_err().then(|| ready(()))
    }

    fn clone_request(&mut self, req: &Req) -> Option<Req> {
        Some(req.clone())
    }
}

/// tower's retry policy with its budget (`TpsBudget`): deposit on a success, withdraw to
/// retry, as tower's documentation shows.
#[derive(Clone)]
struct Budgeted(Arc<TpsBudget>);

impl Budgeted {
    /// A 10 s window, at least 10 retries a second, and `ratio` retries per call.
    fn new(ratio: f32) -> Self {
        Budgeted(Arc::new(TpsBudget::new(Duration::from_secs(10), 10, ratio)))
    }
}

impl<Req: Clone, Res, E> tower::retry::Policy<Req, Res, E> for Budgeted {
    type Future = Ready<()>;

    fn retry(&mut self, _: &mut Req, result: &mut Result<Res, E>) -> Option<Self::Future> {
        match result {
            Ok(_) => {
                self.0.deposit();
                None
            }
            Err(_) => self.0.withdraw().then(|| ready(())),
        }
    }

    fn clone_request(&mut self, req: &Req) -> Option<Req> {
        Some(req.clone())
    }
}

/// Three attempts, no delay between them; with a budget of `ratio` retries per call (at least
/// 10 retries a second, over 10 s), as tower's above.
fn tailguard_retry(budget: Option<f64>) -> RetryLayer<Retry<tailguard::time::DefaultTimer>> {
    let retry = Retry::builder().max_attempts(3).backoff(
        Backoff::constant(Duration::ZERO)
            .jitter(Jitter::None)
            .build()
            .unwrap(),
    );
    let retry = match budget {
        Some(ratio) => retry.budget(
            RetryBudget::builder()
                .ratio(ratio)
                .min_per_second(10)
                .window(Duration::from_secs(10))
                .build()
                .unwrap(),
        ),
        None => retry,
    };
    RetryLayer::new(retry.build().unwrap())
}

/// The same, holding the policy as a `&'static` (leaked once): no reference count per call.
fn tailguard_retry_static(
    budget: Option<f64>,
) -> RetryLayer<&'static Retry<tailguard::time::DefaultTimer>> {
    let policy = tailguard_retry(budget).retry().clone();
    RetryLayer::new(&*Box::leak(Box::new(policy)))
}

fn retry_first_try(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("tower-layers/retry-first-try");
    row(&mut group, &rt, "bare", echo(), 1);
    row(
        &mut group,
        &rt,
        "tailguard",
        tailguard_retry(None).layer(echo()),
        1,
    );
    let tailguard = tailguard_retry_static(None).layer(echo());
    row(&mut group, &rt, "tailguard-static", tailguard, 1);
    let tower = tower::retry::RetryLayer::new(RetryErrors).layer(echo());
    row(&mut group, &rt, "tower", tower, 1);
    // Budgets of 20 % of calls.
    let tailguard = tailguard_retry(Some(0.2)).layer(echo());
    row(&mut group, &rt, "tailguard+budget", tailguard, 1);
    let tailguard = tailguard_retry_static(Some(0.2)).layer(echo());
    row(&mut group, &rt, "tailguard-static+budget", tailguard, 1);
    let tower = tower::retry::RetryLayer::new(Budgeted::new(0.2)).layer(echo());
    row(&mut group, &rt, "tower+budget", tower, 1);
    group.finish();
}

/// Fails the first two attempts of each request (the request counts its attempts).
fn fails_twice() -> impl Service<
    Rc<Cell<u32>>,
    Response = u32,
    Error = &'static str,
    Future = Ready<Result<u32, &'static str>>,
> + Clone {
    service_fn(|attempts: Rc<Cell<u32>>| {
        let n = attempts.get() + 1;
        attempts.set(n);
        ready(if n <= 2 { Err("transient") } else { Ok(n) })
    })
}

/// Runs one request that fails twice then succeeds, through `service`, per iteration.
fn retry_row<S>(group: &mut Group<'_>, rt: &tokio::runtime::Runtime, name: &str, service: S)
where
    S: Service<Rc<Cell<u32>>, Response = u32>,
    S::Error: std::fmt::Debug,
{
    let mut service = service;
    let _context = rt.enter();
    group.bench_function(name, |b| {
        b.iter(|| {
            let response = call_once(&mut service, Rc::new(Cell::new(0)));
            assert_eq!(response, 3);
            black_box(response)
        })
    });
}

fn retry_two_failures(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("tower-layers/retry-two-failures");
    let retry_errors = |_: &Rc<Cell<u32>>, result: Result<&u32, &&'static str>| match result {
        Ok(_) => Decision::Stop,
        Err(_) => Decision::Retry,
    };
    retry_row(
        &mut group,
        &rt,
        "tailguard",
        tailguard_retry(None)
            .policy(retry_errors)
            .layer(fails_twice()),
    );
    retry_row(
        &mut group,
        &rt,
        "tailguard-static",
        tailguard_retry_static(None)
            .policy(retry_errors)
            .layer(fails_twice()),
    );
    retry_row(
        &mut group,
        &rt,
        "tower",
        tower::retry::RetryLayer::new(RetryErrors).layer(fails_twice()),
    );
    retry_row(
        &mut group,
        &rt,
        "tailguard+budget",
        // Budgets of 3 retries per call: every call's two retries are granted.
        tailguard_retry(Some(3.0))
            .policy(retry_errors)
            .layer(fails_twice()),
    );
    retry_row(
        &mut group,
        &rt,
        "tailguard-static+budget",
        tailguard_retry_static(Some(3.0))
            .policy(retry_errors)
            .layer(fails_twice()),
    );
    retry_row(
        &mut group,
        &rt,
        "tower+budget",
        tower::retry::RetryLayer::new(Budgeted::new(3.0)).layer(fails_twice()),
    );
    group.finish();
}

/// tower's hedge policy: every request may be hedged.
#[derive(Clone)]
struct AlwaysHedge;

impl tower::hedge::Policy<u64> for AlwaysHedge {
    fn clone_request(&self, req: &u64) -> Option<u64> {
        Some(*req)
    }
    fn can_retry(&self, _: &u64) -> bool {
        true
    }
}

fn hedge_primary_ready(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("tower-layers/hedge-primary-ready");
    row(&mut group, &rt, "bare", echo(), 1);
    let fixed = tailguard::hedge::Hedge::builder()
        .fixed_delay(Duration::from_millis(10))
        .build()
        .unwrap();
    row(
        &mut group,
        &rt,
        "tailguard",
        HedgeLayer::new(fixed).layer(echo()),
        1,
    );
    let adaptive = tailguard::hedge::Hedge::builder().build().unwrap();
    row(
        &mut group,
        &rt,
        "tailguard-adaptive",
        HedgeLayer::new(adaptive).layer(echo()),
        1,
    );
    // tower: latencies pre-filled so it would hedge at its p90 (10 ms) if a call were slow.
    let tower = {
        let _guard = rt.enter();
        tower::hedge::Hedge::new_with_mock_latencies(
            echo(),
            AlwaysHedge,
            10,
            0.9,
            Duration::from_secs(10),
            &[10; 100],
        )
    };
    row(&mut group, &rt, "tower", tower, 1);
    group.finish();
}

/// Slots for every row: the limit is never reached (the rows measure taking and giving back a
/// slot, not waiting for one).
const SLOTS: u32 = 1024;

fn bulkhead() -> tailguard::bulkhead::Bulkhead {
    tailguard::bulkhead::Bulkhead::builder()
        .max_concurrent(SLOTS)
        .build()
        .unwrap()
}

fn limit_ready(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("tower-layers/limit-ready");
    row(&mut group, &rt, "bare", echo(), 1);
    row(
        &mut group,
        &rt,
        "tailguard-bulkhead",
        BulkheadLayer::new(bulkhead()).layer(echo()),
        1,
    );
    let adaptive = tailguard::limit::AdaptiveLimiter::builder()
        .initial_limit(SLOTS)
        .max_limit(SLOTS)
        .build()
        .unwrap();
    row(
        &mut group,
        &rt,
        "tailguard-adaptive",
        AdaptiveLimitLayer::new(adaptive).layer(echo()),
        1,
    );
    let tower = tower::limit::ConcurrencyLimitLayer::new(SLOTS as usize).layer(echo());
    row(&mut group, &rt, "tower", tower, 1);
    group.finish();
}

/// A whole pipeline (attempt timeout, retry, bulkhead) against tower's equivalent stack
/// (retry, concurrency limit, timeout), on a call that succeeds at once.
fn pipeline_first_try(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("tower-layers/pipeline-first-try");
    row(&mut group, &rt, "bare", echo(), 1);
    let pipeline = tailguard::pipeline::Pipeline::builder()
        .attempt_timeout(Duration::from_secs(1))
        .max_attempts(3)
        .limiter(bulkhead())
        .build()
        .unwrap();
    {
        // The core's pipeline alone, polled once: what the layer adds is the difference.
        let pipeline = pipeline.clone();
        let _context = rt.enter();
        group.bench_function("tailguard-core-call", |b| {
            b.iter(|| {
                let mut cx = Context::from_waker(noop_waker_ref());
                let mut call = pin!(pipeline.call(|_| ready(Ok::<_, Infallible>(black_box(1u64)))));
                match call.as_mut().poll(&mut cx) {
                    Poll::Ready(Ok(response)) => black_box(response),
                    _ => panic!("the call did not answer at once"),
                }
            })
        });
    }
    row(
        &mut group,
        &rt,
        "tailguard",
        PipelineLayer::new(pipeline).layer(echo()),
        1,
    );
    let tower = {
        let _guard = rt.enter();
        tower::ServiceBuilder::new()
            .retry(RetryErrors)
            .concurrency_limit(SLOTS as usize)
            .timeout(Duration::from_secs(1))
            .service(echo())
    };
    row(&mut group, &rt, "tower", tower, 1);
    group.finish();
}

criterion_group!(
    benches,
    timeout,
    retry_first_try,
    retry_two_failures,
    hedge_primary_ready,
    limit_ready,
    pipeline_first_try
);
criterion_main!(benches);
