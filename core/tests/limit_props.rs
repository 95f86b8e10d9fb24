//! Property tests of the adaptive limit: under any sequence of samples it stays within
//! `[min_limit, max_limit]`, never reaches 0, and never sticks at 1: once latency is back to
//! normal and the load is there, it grows again. Time is virtual (a `ManualTimer`'s clock).

use std::time::Duration;

use proptest::prelude::*;
use tailguard::limit::{AdaptiveLimiter, Aimd, Gradient2, Outcome, Permit};
use tailguard::priority::Criticality;
use tailguard::time::{ManualTimer, Timer};

#[derive(Clone, Debug)]
enum Op {
    /// Try to admit a call of the class (by index).
    Acquire(usize),
    /// Report the oldest held permit with this outcome (0 success, 1 dropped, 2 ignored).
    Record(u8),
    /// Drop the newest held permit without a report.
    Drop,
    /// Move the clock on by this many milliseconds (0 to 10 s: a latency spike).
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0usize..3).prop_map(Op::Acquire),
        3 => (0u8..3).prop_map(Op::Record),
        1 => Just(Op::Drop),
        2 => prop_oneof![0u64..20, 0u64..10_000].prop_map(Op::Advance),
    ]
}

fn limiter(algorithm: u8, min: u32, max: u32) -> AdaptiveLimiter {
    let builder = AdaptiveLimiter::builder()
        .min_limit(min)
        .max_limit(max)
        .initial_limit(min.max(5).min(max))
        .probe_interval(Duration::from_secs(5))
        .probe_samples(5);
    match algorithm {
        0 => builder.algorithm(Gradient2::new()),
        _ => builder.algorithm(Aimd::new(0.5).unwrap()),
    }
    .build()
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn the_limit_stays_in_range_and_recovers(
        algorithm in 0u8..2,
        min in 1u32..4,
        span in 0u32..200,
        ops in prop::collection::vec(op(), 0..400),
    ) {
        let max = min + 20 + span;
        let timer = ManualTimer::new();
        let limiter = limiter(algorithm, min, max);
        let mut held: Vec<Permit> = Vec::new();
        for op in ops {
            match op {
                Op::Acquire(class) => {
                    if let Ok(permit) = limiter.try_acquire_class_at(Criticality::ALL[class], timer.now()) {
                        held.push(permit);
                    }
                }
                Op::Record(outcome) => {
                    if !held.is_empty() {
                        let outcome = [Outcome::Success, Outcome::Dropped, Outcome::Ignored][outcome as usize];
                        held.remove(0).record_at(outcome, timer.now());
                    }
                }
                Op::Drop => drop(held.pop()),
                Op::Advance(ms) => timer.advance(Duration::from_millis(ms)),
            }
            let limit = limiter.limit();
            prop_assert!(limit >= min && limit <= max, "limit {} outside [{}, {}]", limit, min, max);
            prop_assert_eq!(limiter.in_flight() as usize, held.len());
        }
        held.clear();
        prop_assert_eq!(limiter.in_flight(), 0);

        // Back to normal: 10 ms calls, offered at twice the limit. It must not stay at 1.
        for _ in 0..500 {
            let permits: Vec<_> = (0..limiter.limit() * 2)
                .filter_map(|_| limiter.try_acquire_at(timer.now()).ok())
                .collect();
            timer.advance(Duration::from_millis(10));
            for permit in permits {
                permit.success_at(timer.now());
            }
        }
        let recovered = limiter.limit();
        prop_assert!(recovered >= (min + 4).min(max), "stuck at {} (min {}, max {})", recovered, min, max);
    }
}
