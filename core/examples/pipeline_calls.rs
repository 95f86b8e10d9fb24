//! Makes `N` calls of one row of `benches/pipeline.rs` in a loop, for counting instructions with
//! callgrind (wall time on a shared machine is too noisy to compare a few nanoseconds):
//!
//! ```sh
//! cargo build --release -p tailguard --example pipeline_calls
//! for row in baseline three tower; do
//!   valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/pipeline_calls $row 100000 2>&1 | grep refs
//! done
//! ```
//!
//! The instructions per call over the bare operation are (row − baseline) / `N`; the runtime's
//! start-up is the same in every row and cancels out.

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tailguard::breaker::CircuitBreaker;
use tailguard::hedge::Hedge;
use tailguard::pipeline::{Limiter, LimiterPermit, LimiterRejected, Outcome, Pipeline};
use tailguard::retry::RetryBudget;
use tower::limit::ConcurrencyLimitLayer;
use tower::retry::{Policy, RetryLayer};
use tower::timeout::TimeoutLayer;
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};

/// The bench's minimal limiter: `n` slots in an atomic counter.
#[derive(Clone)]
struct Slots(Arc<AtomicUsize>);

struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

impl LimiterPermit for Slot {
    fn finish(self, _: Outcome, _: Duration) {}
}

impl Limiter for Slots {
    type Permit = Slot;
    type Acquire<'a> = Ready<Result<Slot, LimiterRejected>>;

    fn acquire_at(&self, _: Instant, _: Option<Instant>) -> Self::Acquire<'_> {
        let taken = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        ready(match taken {
            Ok(_) => Ok(Slot(self.0.clone())),
            Err(_) => Err(LimiterRejected::new("full")),
        })
    }
}

fn slots() -> Slots {
    Slots(Arc::new(AtomicUsize::new(100)))
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

fn main() {
    let mut args = std::env::args().skip(1);
    let row = args.next().unwrap_or_else(|| "all".to_owned());
    let n: u64 = args.next().map_or(100_000, |n| n.parse().expect("a count"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    // Each row builds only its own stack: a breaker reads the coarse clock through rustix's
    // vDSO lookup, which valgrind does not support, so the `all` row cannot run under it.
    let all = || {
        Pipeline::builder()
            .total_timeout(Duration::from_secs(1))
            .retry_budget(RetryBudget::builder().build().unwrap())
            .max_attempts(3)
            .hedge(Hedge::builder().build().unwrap())
            .breaker(CircuitBreaker::builder().build().unwrap())
            .limiter(slots())
            .attempt_timeout(Duration::from_millis(100))
            .build()
            .unwrap()
    };
    let three = || {
        Pipeline::builder()
            .max_attempts(3)
            .limiter(slots())
            .attempt_timeout(Duration::from_millis(100))
            .build()
            .unwrap()
    };
    let tower_stack = || {
        let _guard = rt.enter();
        ServiceBuilder::new()
            .layer(RetryLayer::new(Attempts(3)))
            .layer(ConcurrencyLimitLayer::new(100))
            .layer(TimeoutLayer::new(Duration::from_millis(100)))
            .service(service_fn(op))
    };
    match row.as_str() {
        "baseline" => rt.block_on(async {
            for _ in 0..n {
                black_box(op(black_box(1)).await.unwrap());
            }
        }),
        "all" => {
            let all = all();
            rt.block_on(async {
                for _ in 0..n {
                    black_box(all.call(|_| op(black_box(1))).await.unwrap());
                }
            })
        }
        "three" => {
            let three = three();
            rt.block_on(async {
                for _ in 0..n {
                    black_box(three.call(|_| op(black_box(1))).await.unwrap());
                }
            })
        }
        "tower" => {
            let mut tower_stack = tower_stack();
            rt.block_on(async {
                for _ in 0..n {
                    let svc = tower_stack.ready().await.unwrap();
                    black_box(svc.call(black_box(1)).await.unwrap());
                }
            })
        }
        other => panic!("unknown row {other}: baseline, all, three or tower"),
    }
}
