//! The limiter against a simple backend model, in explicit (virtual) time.

use std::time::{Duration, Instant};

use super::*;
use crate::priority::{Criticality, Shares};
use crate::test_util::ms;
use crate::time::{ManualTimer, Timer};

/// A backend of `servers` workers at `service` each, processor-shared: `k` calls at once take
/// `service × max(1, k / servers)`. Each round offers `offered` calls at once and records all
/// admitted ones when they finish. Returns the admitted count of the last round.
fn rounds(
    limiter: &AdaptiveLimiter,
    now: &mut Instant,
    offered: u32,
    servers: u32,
    service: Duration,
    n: usize,
) -> u32 {
    let mut admitted = 0;
    for _ in 0..n {
        let permits: Vec<_> = (0..offered)
            .filter_map(|_| limiter.try_acquire_at(*now).ok())
            .collect();
        admitted = permits.len() as u32;
        let k = admitted.max(1);
        let rtt = service.mul_f64(f64::from(k.max(servers)) / f64::from(servers));
        *now += rtt;
        for permit in permits {
            permit.record_at(Outcome::Success, *now);
        }
    }
    admitted
}

#[test]
fn slow_start_then_settles_near_the_capacity_under_overload() {
    let limiter = AdaptiveLimiter::builder()
        .initial_limit(4)
        .no_probe()
        .build()
        .unwrap();
    let mut now = Instant::now();
    rounds(&limiter, &mut now, 200, 20, ms(10), 200);
    let limit = limiter.limit();
    // 20 servers, queue allowance 4: about 24, never the 200 offered.
    assert!((20..=40).contains(&limit), "limit {limit}");
    assert!(!limiter.metrics().slow_start);
    assert_eq!(limiter.in_flight(), 0);
}

#[test]
fn a_quiet_service_does_not_grow_its_limit() {
    let limiter = AdaptiveLimiter::builder().no_probe().build().unwrap();
    let mut now = Instant::now();
    rounds(&limiter, &mut now, 5, 20, ms(10), 500); // 5 in flight, limit 20
    assert_eq!(limiter.limit(), 20);
    let aimd = AdaptiveLimiter::builder()
        .algorithm(Aimd::default())
        .build()
        .unwrap();
    rounds(&aimd, &mut now, 5, 20, ms(10), 500);
    assert_eq!(aimd.limit(), 20);
}

#[test]
fn lower_classes_are_refused_first() {
    let limiter = AdaptiveLimiter::builder()
        .algorithm(Fixed::new(10).unwrap())
        .shares(Shares::new(0.3, 0.6).unwrap())
        .build()
        .unwrap();
    let now = Instant::now();
    let mut held = Vec::new();
    let mut admitted = [0; 3];
    for _ in 0..10 {
        for class in Criticality::ALL {
            if let Ok(permit) = limiter.try_acquire_class_at(class, now) {
                admitted[class.index()] += 1;
                held.push(permit);
            }
        }
    }
    // Sheddable until 3 in flight, default until 6, critical up to 10.
    assert_eq!(admitted, [1, 3, 6]);
    let err = limiter
        .try_acquire_class_at(Criticality::Critical, now)
        .unwrap_err();
    assert_eq!(
        (err.reason(), err.limit(), err.in_flight()),
        (Reason::Limit, 10, 10)
    );
    drop(held.pop()); // 9 in flight: below the limit, above the sheddable share
    let shed = limiter
        .try_acquire_class_at(Criticality::Sheddable, now)
        .unwrap_err();
    assert_eq!(shed.reason(), Reason::Shed);
    let m = limiter.metrics();
    assert_eq!(m.rejected(Reason::Limit, Criticality::Critical), 5);
    assert!(m.rejected(Reason::Shed, Criticality::Sheddable) > 0);
    drop(held);
    assert_eq!(limiter.in_flight(), 0);
}

#[test]
fn monitor_only_admits_everything_and_counts_what_it_would_refuse() {
    let limiter = AdaptiveLimiter::builder()
        .algorithm(Fixed::new(2).unwrap())
        .shares(Shares::equal())
        .monitor_only(true)
        .build()
        .unwrap();
    let now = Instant::now();
    let held: Vec<_> = (0..5)
        .map(|_| limiter.try_acquire_at(now).unwrap())
        .collect();
    assert_eq!(limiter.in_flight(), 5);
    let m = limiter.metrics();
    assert!(m.monitor_only);
    assert_eq!(m.rejected(Reason::Limit, Criticality::Default), 3);
    assert_eq!(m.rejected_total(), 3);
    drop(held);
}

#[test]
fn an_unreported_permit_is_a_drop_and_frees_its_slot() {
    let limiter = AdaptiveLimiter::builder()
        .algorithm(Aimd::new(0.5).unwrap())
        .initial_limit(20)
        .shares(Shares::equal())
        .slow_start(false)
        .build()
        .unwrap();
    let now = Instant::now();
    let held: Vec<_> = (0..20)
        .map(|_| limiter.try_acquire_at(now).unwrap())
        .collect();
    assert!(limiter.try_acquire_at(now).is_err());
    drop(held); // twenty drops: AIMD halves on each, down to the minimum
    assert_eq!(limiter.in_flight(), 0);
    assert_eq!(limiter.limit(), 1);
    assert_eq!(limiter.metrics().samples, 20);
    // Ignored calls are no samples.
    limiter.try_acquire_at(now).unwrap().ignore();
    assert_eq!(limiter.metrics().samples, 20);
    // And from 1 it grows again.
    let mut now = now;
    rounds(&limiter, &mut now, 10, 10, ms(10), 10);
    assert!(limiter.limit() > 5, "{}", limiter.limit());
}

#[test]
fn a_probe_holds_the_limit_low_and_rebases_after_a_long_overload() {
    let limiter = AdaptiveLimiter::builder()
        .initial_limit(4)
        .probe_interval(Duration::from_secs(5))
        .probe_limit(2)
        .probe_samples(5)
        .build()
        .unwrap();
    let mut now = Instant::now();
    rounds(&limiter, &mut now, 200, 20, ms(10), 3000); // 30 s and more of overload
    let m = limiter.metrics();
    assert!(m.probes >= 4, "{m:?}");
    // Re-based on the no-load latency, the limit stays near the capacity instead of drifting.
    assert!((20..=40).contains(&m.limit), "{m:?}");

    // Force a probe and watch it: the limit is held at 2, refusals say why.
    let mut seen_probe = false;
    for _ in 0..2000 {
        let attempts: Vec<_> = (0..10).map(|_| limiter.try_acquire_at(now)).collect();
        let refused = attempts.iter().find_map(|a| a.as_ref().err().copied());
        if let Some(rejected) = refused.filter(|r| r.reason() == Reason::Probe) {
            assert_eq!(rejected.in_flight(), 2);
            seen_probe = true;
            break;
        }
        now += ms(10);
        for permit in attempts.into_iter().flatten() {
            permit.success_at(now);
        }
    }
    assert!(seen_probe);
    assert!(
        limiter
            .metrics()
            .rejected(Reason::Probe, Criticality::Default)
            > 0
    );
}

#[test]
fn call_with_measures_on_the_timer_and_cancel_releases() {
    let timer = ManualTimer::new();
    let limiter = AdaptiveLimiter::builder()
        .algorithm(Fixed::new(1).unwrap())
        .build()
        .unwrap();
    let slow = limiter.call_with(timer.clone(), Criticality::Default, || async {
        timer.sleep(Duration::from_secs(10)).await;
        Ok::<_, ()>(())
    });
    let result = timer.block_on(crate::timeout::timeout_with(timer.clone(), ms(5), slow));
    assert!(result.is_err());
    assert_eq!(limiter.in_flight(), 0);
    let failed = timer.block_on(
        limiter.call_with(timer.clone(), Criticality::Default, || async {
            Err::<(), _>("boom")
        }),
    );
    assert_eq!(failed, Err(CallError::Inner("boom")));
    assert_eq!(limiter.metrics().samples, 1); // the cancel (a drop); the error was ignored
}

/// The longest probe interval the builder takes never overflows an `Instant` (found by review:
/// `Duration::MAX` was accepted and the first success panicked).
#[test]
fn the_longest_probe_interval_is_scheduled_without_overflow() {
    let limiter = AdaptiveLimiter::builder()
        .probe_interval(Duration::from_nanos(u64::MAX))
        .build()
        .unwrap();
    let now = Instant::now();
    for i in 0..3 {
        let permit = limiter.try_acquire_at(now).unwrap();
        permit.success_at(now + Duration::from_millis(1 + i));
    }
    assert!(limiter.limit() >= 1);
}
