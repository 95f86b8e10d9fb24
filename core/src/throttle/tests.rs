use std::time::Duration;

use super::*;
use crate::time::ManualTimer;

fn throttle(k: f64) -> (ManualTimer, Throttle<ManualTimer>) {
    let timer = ManualTimer::new();
    let t = Throttle::builder()
        .k(k)
        .window(Duration::from_secs(10))
        .buckets(10)
        .seed(42)
        .build_with(timer.clone())
        .unwrap();
    (timer, t)
}

#[test]
fn a_healthy_backend_sees_no_local_refusal() {
    let (timer, t) = throttle(2.0);
    let now = timer.now();
    for _ in 0..10_000 {
        t.try_acquire_at(now).unwrap().record_at(true, now);
    }
    assert_eq!(t.rejection_probability_at(now), 0.0);
}

#[test]
fn the_probability_follows_the_formula() {
    let (timer, t) = throttle(2.0);
    let now = timer.now();
    for _ in 0..30 {
        t.record_at(false, now);
    }
    for _ in 0..10 {
        t.record_at(true, now);
    }
    // (40 − 2·10) / 41
    assert_eq!(t.rejection_probability_at(now), 20.0 / 41.0);
    assert_eq!(
        t.counts_at(now),
        Counts {
            requests: 40,
            accepts: 10
        }
    );
}

#[test]
fn the_window_rolls_bucket_by_bucket() {
    let (timer, t) = throttle(2.0);
    let start = timer.now();
    for _ in 0..10 {
        t.record_at(false, start);
    }
    t.record_at(false, start + Duration::from_secs(5));
    assert_eq!(
        t.counts_at(start + Duration::from_millis(9_999)).requests,
        11
    );
    assert_eq!(t.counts_at(start + Duration::from_secs(10)).requests, 1);
    assert_eq!(t.counts_at(start + Duration::from_secs(100)).requests, 0);
}

#[test]
fn local_refusals_count_as_requests_and_cancelled_permits_as_nothing() {
    let (timer, t) = throttle(1.0);
    let now = timer.now();
    for _ in 0..5 {
        t.record_at(false, now);
    }
    let mut refused = 0;
    let mut sent = 0;
    for _ in 0..100 {
        match t.try_acquire_at(now) {
            Ok(permit) => {
                sent += 1;
                drop(permit); // cancelled: counts as nothing
            }
            Err(_) => refused += 1,
        }
    }
    assert_eq!(sent + refused, 100);
    assert!(refused > 0);
    assert_eq!(t.counts_at(now).requests, 5 + refused);
}

#[test]
fn the_same_seed_replays_the_same_decisions() {
    let run = || {
        let (timer, t) = throttle(2.0);
        let now = timer.now();
        (0..200)
            .map(|i| match t.try_acquire_at(now) {
                Ok(p) => {
                    p.record_at(i % 5 == 0, now);
                    true
                }
                Err(_) => false,
            })
            .collect::<Vec<_>>()
    };
    let first = run();
    assert_eq!(first, run());
    assert!(first.contains(&false));
}

#[test]
fn bad_settings_are_refused_naming_the_field() {
    let field = |b: ThrottleBuilder| b.build_with(ManualTimer::new()).unwrap_err().field();
    assert_eq!(field(ThrottleBuilder::new().k(0.9)), "k");
    assert_eq!(field(ThrottleBuilder::new().k(f64::NAN)), "k");
    assert_eq!(
        field(ThrottleBuilder::new().window(Duration::ZERO)),
        "window"
    );
    assert_eq!(field(ThrottleBuilder::new().buckets(0)), "buckets");
    assert_eq!(
        field(
            ThrottleBuilder::new()
                .window(Duration::from_nanos(3))
                .buckets(4)
        ),
        "buckets"
    );
}
