//! Makes `N` timeouts of one row of `benches/timeout.rs` ("ready after 3 polls": the future is
//! pending three times, then ready, inside a 10 s timeout) in a loop, for counting instructions
//! with callgrind (wall time on a shared machine is too noisy to compare a few nanoseconds):
//!
//! ```sh
//! cargo build --release -p tailguard --example timeout_calls
//! for row in baseline heap async-io tokio heap-passed async-io-passed; do
//!   valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/timeout_calls $row 100000 2>&1 | grep refs
//! done
//! ```
//!
//! The instructions per timeout are (row − baseline) / `N`; start-up is the same in every row
//! and cancels out. Every row runs inside a tokio runtime's context, as in the bench.

use std::future::Future;
use std::hint::black_box;
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tailguard::time::{AsyncIoTimer, HeapTimer};
use tailguard::timeout::timeout_with;

const LIMIT: Duration = Duration::from_secs(10);
const ZERO: Duration = Duration::ZERO;
/// Pending for as long as any row runs.
const NEVER: u32 = u32::MAX;

fn passed<T, E>(out: Result<T, E>) -> u32 {
    assert!(out.is_err(), "the deadline had passed");
    0
}

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
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let row = args.next().unwrap_or_else(|| "heap".into());
    let n: u32 = args.next().map_or(100_000, |n| n.parse().expect("a count"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let _guard = rt.enter();
    let mut sum = 0u64;
    for _ in 0..n {
        sum += u64::from(match row.as_str() {
            "baseline" => drive(ReadyAfter(black_box(3))),
            "heap" => drive(timeout_with(HeapTimer, LIMIT, ReadyAfter(black_box(3)))).unwrap(),
            "async-io" => {
                drive(timeout_with(AsyncIoTimer, LIMIT, ReadyAfter(black_box(3)))).unwrap()
            }
            "tokio" => drive(tokio::time::timeout(LIMIT, ReadyAfter(black_box(3)))).unwrap(),
            // The deadline has passed at the first poll ("fires (deadline already passed)").
            "heap-passed" => passed(drive(timeout_with(HeapTimer, ZERO, ReadyAfter(NEVER)))),
            "async-io-passed" => passed(drive(timeout_with(AsyncIoTimer, ZERO, ReadyAfter(NEVER)))),
            other => panic!(
                "unknown row {other:?}: baseline, heap, async-io, tokio, heap-passed or \
                 async-io-passed"
            ),
        });
    }
    println!("{row}: {n} timeouts, sum {sum}");
}
