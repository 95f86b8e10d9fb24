//! Model-based test of the rate limiters: random sequences of calls (of one or several tokens,
//! on a few keys) and advances of virtual time, run against the real limiters and against a
//! reference token bucket written from the module documentation: a level of credit in
//! nanoseconds that refills one nanosecond per nanosecond up to `burst × interval`, where a call
//! of `n` tokens needs `n × interval` of it. (The limiter keeps the same bucket as one arrival
//! time; the model keeps the level. They must agree on every decision and every retry-after.)
//!
//! A keyed limiter with room for every key must agree with one model bucket per key; one with
//! less room must never remember more keys than its maximum. Several threads taking tokens at
//! one instant must get exactly the burst between them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use tailguard::rate::{RateLimiter, Reason};
use tailguard::time::{ManualTimer, Timer};

#[derive(Clone, Debug)]
enum Op {
    Call { key: u8, n: u32 },
    Advance { micros: u64 },
}

fn op(max_n: u32) -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..5, 1..=max_n).prop_map(|(key, n)| Op::Call { key, n }),
        2 => (0u64..50_000).prop_map(|micros| Op::Advance { micros }),
    ]
}

/// The model: credit in nanoseconds.
#[derive(Clone, Debug)]
struct Bucket {
    level: u64,
    at: u64,
}

impl Bucket {
    fn full(cap: u64, at: u64) -> Self {
        Bucket { level: cap, at }
    }

    /// Admits `n` tokens at `t`, or says how long until it could.
    fn call(&mut self, n: u32, t: u64, interval: u64, burst: u32) -> Result<(), Option<u64>> {
        let cap = interval * u64::from(burst);
        self.level = (self.level + (t - self.at)).min(cap);
        self.at = t;
        if n > burst {
            return Err(None);
        }
        let need = interval * u64::from(n);
        if self.level >= need {
            self.level -= need;
            Ok(())
        } else {
            Err(Some(need - self.level))
        }
    }
}

fn check(got: Result<(), tailguard::rate::Rejected>, want: Result<(), Option<u64>>) {
    match (got, want) {
        (Ok(()), Ok(())) => {}
        (Err(e), Err(wait)) => {
            assert_eq!(
                e.retry_after(),
                wait.map(Duration::from_nanos),
                "retry-after"
            );
            let reason = if wait.is_none() {
                Reason::TooMany
            } else {
                Reason::Empty
            };
            assert_eq!(e.reason(), reason);
        }
        (got, want) => panic!("limiter {got:?}, model {want:?}"),
    }
}

fn run(count: u32, per_ms: u64, burst: u32, ops: Vec<Op>, max_keys: usize) {
    let timer = ManualTimer::new();
    let builder = RateLimiter::builder()
        .rate(count, Duration::from_millis(per_ms))
        .burst(burst)
        .max_keys(max_keys)
        .shards(2);
    let limiter = builder.clone().build_with(timer.clone()).unwrap();
    let keyed = builder.build_keyed_with::<u8, _>(timer.clone()).unwrap();
    let interval = limiter.interval().as_nanos() as u64;
    let start: Instant = timer.now();
    let mut t = 0u64;
    let mut shared = Bucket::full(interval * u64::from(burst), 0);
    let mut per_key: HashMap<u8, Bucket> = HashMap::new();
    let exact_keys = max_keys >= 5;
    for op in ops {
        match op {
            Op::Advance { micros } => t += micros * 1000,
            Op::Call { key, n } => {
                let now = start + Duration::from_nanos(t);
                let want = shared.call(n, t, interval, burst);
                check(limiter.try_acquire_n_at(n, now).map(drop), want);
                let got = keyed.try_acquire_n_at(&key, n, now).map(drop);
                if exact_keys {
                    let bucket = per_key
                        .entry(key)
                        .or_insert_with(|| Bucket::full(interval * u64::from(burst), t));
                    check(got, bucket.call(n, t, interval, burst));
                }
                assert!(keyed.len() <= keyed.max_keys());
                assert_eq!(limiter.available_at(now), {
                    let mut probe = shared.clone();
                    let _ = probe.call(0, t, interval, burst);
                    (probe.level / interval) as u32
                });
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn the_limiters_follow_the_model(
        count in 1u32..50,
        per_ms in 1u64..200,
        burst in 1u32..6,
        max_keys in prop_oneof![Just(1usize), Just(3), Just(64)],
        ops in prop::collection::vec(op(7), 1..150),
    ) {
        run(count, per_ms, burst, ops, max_keys);
    }
}

#[test]
fn threads_share_exactly_the_burst() {
    const BURST: u32 = 1000;
    let timer = ManualTimer::new();
    let limiter = RateLimiter::builder()
        .rate(1, Duration::from_secs(1))
        .burst(BURST)
        .build_with(timer.clone())
        .unwrap();
    let keyed = RateLimiter::builder()
        .rate(1, Duration::from_secs(1))
        .burst(BURST)
        .build_keyed_with::<u8, _>(timer.clone())
        .unwrap();
    let now = timer.now();
    let (shared, per_key): (u32, u32) = std::thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let mut got = (0, 0);
                    for _ in 0..600 {
                        got.0 += u32::from(limiter.try_acquire_at(now).is_ok());
                        got.1 += u32::from(keyed.try_acquire_at(&7, now).is_ok());
                    }
                    got
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap())
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    });
    assert_eq!((shared, per_key), (BURST, BURST));
}
