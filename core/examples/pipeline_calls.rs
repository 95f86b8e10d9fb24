//! Makes `N` calls of one row of `benches/pipeline.rs` in a loop, for counting instructions with
//! callgrind (wall time on a shared machine is too noisy to compare a few nanoseconds):
//!
//! ```sh
//! cargo build --release -p tailguard --example pipeline_calls
//! for row in baseline all all_adaptive three three_adaptive tower timeout retry hedge breaker limiter; do
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
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use tailguard::adaptive_timeout::AdaptiveTimeout;
use tailguard::breaker::CircuitBreaker;
use tailguard::hedge::Hedge;
use tailguard::pipeline::{Limiter, LimiterPermit, Outcome, Pipeline};
use tailguard::retry::{Retry, RetryBudget};
use tailguard::time::{process_nanos, AsyncIoTimer, Timer};
use tailguard::timeout::timeout_with;
use tower::limit::ConcurrencyLimitLayer;
use tower::retry::{Policy, RetryLayer};
use tower::timeout::TimeoutLayer;
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};

/// The bench's minimal limiter: `n` slots in an atomic counter.
#[path = "../tests/common/slots.rs"]
mod slots;
use slots::Slots;

fn slots() -> Slots {
    Slots::new(100)
}

/// The default timer with a coarse clock valgrind can run: `AsyncIoTimer`'s is a vDSO call
/// whose lookup (rustix's) valgrind does not support. Here `now_coarse_nanos` is one atomic
/// load of a time set at start-up, what `CachedTimer`'s read costs (without its ticker thread):
/// the pipeline reads it to date an attempt ready at once (unless the call read the clock).
#[derive(Clone, Copy)]
struct Precise;

static COARSE_NANOS: AtomicU64 = AtomicU64::new(0);

impl Timer for Precise {
    type Sleep = <AsyncIoTimer as Timer>::Sleep;

    fn now(&self) -> Instant {
        AsyncIoTimer.now()
    }

    fn sleep_until(&self, deadline: Instant) -> Self::Sleep {
        AsyncIoTimer.sleep_until(deadline)
    }

    fn reset(&self, sleep: &mut Self::Sleep, deadline: Instant) {
        AsyncIoTimer.reset(sleep, deadline)
    }

    fn now_coarse_nanos(&self) -> u64 {
        COARSE_NANOS.load(Relaxed)
    }
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
    // Each row builds only its own stack. The pipeline rows run on `Precise`: the default timer
    // with a coarse clock valgrind can run (an atomic load); the breaker's count window reads
    // no clock on a success.
    COARSE_NANOS.store(process_nanos(Instant::now()), Relaxed);
    // `_adaptive`: the same, with an adaptive attempt timeout instead of the fixed one.
    let adaptive = || AdaptiveTimeout::builder().build().unwrap();
    let all = |adaptive_timeout: bool| {
        let builder = Pipeline::with_timer(Precise)
            .total_timeout(Duration::from_secs(1))
            .retry_budget(RetryBudget::builder().build().unwrap())
            .max_attempts(3)
            .hedge(Hedge::builder().build().unwrap())
            .breaker(CircuitBreaker::builder().build_with(Precise).unwrap())
            .limiter(slots());
        match adaptive_timeout {
            true => builder.attempt_timeout_adaptive(adaptive()),
            false => builder.attempt_timeout(Duration::from_millis(100)),
        }
        .build()
        .unwrap()
    };
    let three = |adaptive_timeout: bool| {
        let builder = Pipeline::with_timer(Precise)
            .max_attempts(3)
            .limiter(slots());
        match adaptive_timeout {
            true => builder.attempt_timeout_adaptive(adaptive()),
            false => builder.attempt_timeout(Duration::from_millis(100)),
        }
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
        "all" | "all_adaptive" => {
            let all = all(row == "all_adaptive");
            rt.block_on(async {
                for _ in 0..n {
                    black_box(all.call(|_| op(black_box(1))).await.unwrap());
                }
            })
        }
        "three" | "three_adaptive" => {
            let three = three(row == "three_adaptive");
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
        // Each layer alone, as in the bench.
        "timeout" => rt.block_on(async {
            for _ in 0..n {
                let limit = Duration::from_millis(100);
                black_box(timeout_with(Precise, limit, op(black_box(1))).await.ok());
            }
        }),
        "retry" => {
            let budget = RetryBudget::builder().build().unwrap();
            let retry = Retry::builder()
                .max_attempts(3)
                .budget(budget)
                .build()
                .unwrap();
            rt.block_on(async {
                for _ in 0..n {
                    black_box(retry.run(|| op(black_box(1))).await.ok());
                }
            })
        }
        "hedge" => {
            let hedge = Hedge::builder().build().unwrap();
            rt.block_on(async {
                for _ in 0..n {
                    black_box(hedge.run_with(Precise, |_| op(black_box(1))).await.ok());
                }
            })
        }
        "breaker" => {
            let breaker = CircuitBreaker::builder().build_with(Precise).unwrap();
            rt.block_on(async {
                for _ in 0..n {
                    black_box(breaker.call(|| op(black_box(1))).await.ok());
                }
            })
        }
        "limiter" => {
            let limiter = slots();
            rt.block_on(async {
                for _ in 0..n {
                    let permit = limiter.acquire_at(Precise.now(), None).await.unwrap();
                    let out = op(black_box(1)).await;
                    permit.finish(Outcome::Success, Duration::ZERO);
                    black_box(out.ok());
                }
            })
        }
        other => panic!(
            "unknown row {other}: baseline, all, all_adaptive, three, three_adaptive, tower, \
             timeout, retry, hedge, breaker or limiter"
        ),
    }
}
