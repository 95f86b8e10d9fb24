//! `timeout` side by side with tokio's and with a naive `select` on a futures-timer `Delay`, and
//! the real timers against each other.
//!
//! Run: `cargo bench -p tailguard --all-features --bench timeout`
//!
//! Every future is polled by hand with a no-op waker, so the numbers are the cost of the
//! combinators themselves, not of an executor.

use std::future::Future;
use std::hint::black_box;
use std::pin::{pin, Pin};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use futures::future::{select, Either};
use tailguard::time::{AsyncIoTimer, FuturesTimer, HeapTimer, Timer};
use tailguard::timeout::timeout_with;

const LIMIT: Duration = Duration::from_secs(10);

/// A future that is pending `n` times (waking itself each time), then ready.
struct ReadyAfter(u32);

impl Future for ReadyAfter {
    type Output = u32;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        if self.0 == 0 {
            Poll::Ready(7)
        } else {
            self.0 -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// Polls `fut` to completion with a no-op waker.
fn drive<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

/// A naive timeout: race the future against a freshly made futures-timer `Delay`.
async fn naive_select<F: Future + Unpin>(fut: F) -> Result<F::Output, ()> {
    match select(fut, futures_timer::Delay::new(LIMIT)).await {
        Either::Left((out, _)) => Ok(out),
        Either::Right(_) => Err(()),
    }
}

fn ready(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let mut g = c.benchmark_group("timeout/ready");
    g.bench_function("tailguard (AsyncIoTimer)", |b| {
        b.iter(|| drive(timeout_with(AsyncIoTimer, LIMIT, async { black_box(7) })))
    });
    g.bench_function("tailguard (FuturesTimer)", |b| {
        b.iter(|| drive(timeout_with(FuturesTimer, LIMIT, async { black_box(7) })))
    });
    g.bench_function("tailguard (HeapTimer)", |b| {
        b.iter(|| drive(timeout_with(HeapTimer, LIMIT, async { black_box(7) })))
    });
    g.bench_function("tokio::time::timeout", |b| {
        b.iter(|| drive(tokio::time::timeout(LIMIT, async { black_box(7) })))
    });
    g.bench_function("select + futures_timer::Delay", |b| {
        b.iter(|| drive(naive_select(Box::pin(async { black_box(7) }))))
    });
    g.finish();
}

fn after_polls(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let mut g = c.benchmark_group("timeout/ready after 3 polls");
    g.bench_function("tailguard (AsyncIoTimer)", |b| {
        b.iter(|| drive(timeout_with(AsyncIoTimer, LIMIT, ReadyAfter(3))))
    });
    g.bench_function("tailguard (FuturesTimer)", |b| {
        b.iter(|| drive(timeout_with(FuturesTimer, LIMIT, ReadyAfter(3))))
    });
    g.bench_function("tailguard (HeapTimer)", |b| {
        b.iter(|| drive(timeout_with(HeapTimer, LIMIT, ReadyAfter(3))))
    });
    g.bench_function("tokio::time::timeout", |b| {
        b.iter(|| drive(tokio::time::timeout(LIMIT, ReadyAfter(3))))
    });
    g.bench_function("select + futures_timer::Delay", |b| {
        b.iter(|| drive(naive_select(ReadyAfter(3))))
    });
    g.finish();
}

fn fires(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("timeout/fires (deadline already passed)");
    {
        let _guard = rt.enter();
        let never = || futures::future::pending::<()>();
        g.bench_function("tailguard (AsyncIoTimer)", |b| {
            b.iter(|| drive(timeout_with(AsyncIoTimer, Duration::ZERO, never())))
        });
        g.bench_function("tailguard (FuturesTimer)", |b| {
            b.iter(|| drive(timeout_with(FuturesTimer, Duration::ZERO, never())))
        });
        g.bench_function("tailguard (HeapTimer)", |b| {
            b.iter(|| drive(timeout_with(HeapTimer, Duration::ZERO, never())))
        });
        g.bench_function("select + futures_timer::Delay", |b| {
            b.iter(|| {
                drive(async {
                    match select(never(), futures_timer::Delay::new(Duration::ZERO)).await {
                        Either::Left(_) => Ok(()),
                        Either::Right(_) => Err(()),
                    }
                })
            })
        });
    }
    // tokio's timer fires only when its driver runs, so this one runs on the runtime.
    g.bench_function("tokio::time::timeout", |b| {
        b.iter(|| {
            rt.block_on(async {
                tokio::time::timeout(Duration::ZERO, futures::future::pending::<()>()).await
            })
        })
    });
    g.finish();

    let mut g = c.benchmark_group("timeout/fires after 1 ms (wall time, shows timer resolution)");
    g.sample_size(20);
    g.bench_function("tailguard (AsyncIoTimer)", |b| {
        b.iter(|| {
            smol::block_on(timeout_with(
                AsyncIoTimer,
                Duration::from_millis(1),
                futures::future::pending::<()>(),
            ))
        })
    });
    g.bench_function("tailguard (FuturesTimer)", |b| {
        b.iter(|| {
            futures::executor::block_on(timeout_with(
                FuturesTimer,
                Duration::from_millis(1),
                futures::future::pending::<()>(),
            ))
        })
    });
    g.bench_function("tailguard (HeapTimer)", |b| {
        b.iter(|| {
            smol::block_on(timeout_with(
                HeapTimer,
                Duration::from_millis(1),
                futures::future::pending::<()>(),
            ))
        })
    });
    g.bench_function("tokio::time::timeout", |b| {
        b.iter(|| {
            rt.block_on(async {
                let never = futures::future::pending::<()>();
                tokio::time::timeout(Duration::from_millis(1), never).await
            })
        })
    });
    g.finish();
}

fn timers(c: &mut Criterion) {
    let mut g = c.benchmark_group("timer/sleep: make, poll once (registers), drop");
    let mut cx = Context::from_waker(std::task::Waker::noop());
    g.bench_function("AsyncIoTimer", |b| {
        b.iter(|| {
            let mut sleep = AsyncIoTimer.sleep_until(Instant::now() + LIMIT);
            black_box(Pin::new(&mut sleep).poll(&mut cx).is_pending());
        })
    });
    g.bench_function("FuturesTimer", |b| {
        b.iter(|| {
            let mut sleep = FuturesTimer.sleep_until(Instant::now() + LIMIT);
            black_box(Pin::new(&mut sleep).poll(&mut cx).is_pending());
        })
    });
    g.bench_function("HeapTimer", |b| {
        b.iter(|| {
            let mut sleep = HeapTimer.sleep_until(Instant::now() + LIMIT);
            black_box(Pin::new(&mut sleep).poll(&mut cx).is_pending());
        })
    });
    g.finish();

    let mut g = c.benchmark_group("timer/sleep: make and drop unpolled");
    g.bench_function("AsyncIoTimer", |b| {
        b.iter(|| black_box(AsyncIoTimer.sleep_until(Instant::now() + LIMIT)))
    });
    g.bench_function("FuturesTimer", |b| {
        b.iter(|| black_box(FuturesTimer.sleep_until(Instant::now() + LIMIT)))
    });
    g.bench_function("HeapTimer", |b| {
        b.iter(|| black_box(HeapTimer.sleep_until(Instant::now() + LIMIT)))
    });
    g.finish();
}

criterion_group!(benches, ready, after_polls, fires, timers);
criterion_main!(benches);
