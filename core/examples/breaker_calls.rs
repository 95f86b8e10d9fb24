//! Makes `N` calls (admit, then record a success) of one row of `benches/breaker.rs` in a loop,
//! for counting instructions with callgrind (wall time on a shared machine is too noisy to
//! compare a few nanoseconds):
//!
//! ```sh
//! cargo build --release -p tailguard --example breaker_calls
//! for row in count slow-precise window-precise slow-cached window-cached; do
//!   valgrind --tool=callgrind --callgrind-out-file=/dev/null --toggle-collect='*calls_on*' \
//!     target/release/examples/breaker_calls $row 1000000 2>&1 | grep refs
//! done
//! ```
//!
//! Only the loop is counted (`--toggle-collect`), on the calling thread: not the start-up, and
//! not `CachedTimer`'s ticker thread. Instructions per call are the count / `N`.
//!
//! The default timer's coarse clock cannot run under valgrind (rustix's vDSO lookup crashes
//! there), so there are no rows for it: every row runs on `Precise`, the default timer with
//! `now_coarse` left at `now` (the count window reads no clock; the `-precise` rows read
//! `Instant::now`, the `-cached` rows `CachedTimer` over it).

use std::hint::black_box;
use std::time::{Duration, Instant};

use tailguard::breaker::CircuitBreaker;
use tailguard::time::{AsyncIoTimer, CachedTimer, Timer};

/// The default timer, with `now_coarse` left at its default (`now`).
#[derive(Clone, Copy)]
struct Precise;

impl Timer for Precise {
    type Sleep = <AsyncIoTimer as Timer>::Sleep;

    fn now(&self) -> Instant {
        AsyncIoTimer.now()
    }

    fn sleep_until(&self, deadline: Instant) -> Self::Sleep {
        AsyncIoTimer.sleep_until(deadline)
    }
}

#[inline(never)]
fn calls_on<T: Timer>(breaker: &CircuitBreaker<T>, n: u64) {
    for _ in 0..n {
        if let Ok(permit) = black_box(breaker).try_acquire() {
            permit.success();
        }
    }
}

fn run<T: Timer>(timer: T, slow: bool, window: bool, n: u64) {
    let mut builder = CircuitBreaker::builder();
    builder = if window {
        builder.time_window(Duration::from_secs(10), 10)
    } else {
        builder.count_window(100)
    };
    if slow {
        builder = builder.slow_calls(Duration::from_secs(1), 0.5);
    }
    let breaker = builder.build_with(timer).expect("a valid breaker");
    calls_on(&breaker, 1); // warm up: the thread's stripe
    calls_on(&breaker, n);
    assert_eq!(breaker.metrics().failures, 0);
}

fn main() {
    let mut args = std::env::args().skip(1);
    let row = args.next().unwrap_or_else(|| "count".to_owned());
    let n: u64 = args
        .next()
        .map_or(1_000_000, |n| n.parse().expect("a count"));
    match row.as_str() {
        "count" => run(Precise, false, false, n),
        "slow-precise" => run(Precise, true, false, n),
        "window-precise" => run(Precise, false, true, n),
        "slow-cached" => run(CachedTimer::new(Precise), true, false, n),
        "window-cached" => run(CachedTimer::new(Precise), false, true, n),
        other => panic!("unknown row {other}"),
    }
}
