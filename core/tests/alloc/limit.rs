//! The adaptive limiter's acquire + record + release, and its refusals, allocate nothing.

use std::time::{Duration, Instant};

use crate::support::allocations_in;
use tailguard::limit::{AdaptiveLimiter, Aimd, Fixed, Outcome};
use tailguard::priority::Criticality;

#[test]
fn acquire_record_release_and_refusals_allocate_nothing() {
    let limiters = [
        AdaptiveLimiter::builder()
            .probe_interval(Duration::from_millis(50))
            .build()
            .unwrap(),
        AdaptiveLimiter::builder()
            .algorithm(Aimd::default())
            .build()
            .unwrap(),
        AdaptiveLimiter::builder()
            .algorithm(Fixed::new(1).unwrap())
            .build()
            .unwrap(),
    ];
    for limiter in limiters {
        let mut now = Instant::now();
        let allocations = allocations_in(|| {
            for i in 0..10_000u32 {
                let permit = limiter.try_acquire_at(now).unwrap();
                let _ = limiter.try_acquire_class_at(Criticality::Sheddable, now);
                now += Duration::from_micros(100);
                match i % 4 {
                    0 => permit.record_at(Outcome::Dropped, now),
                    1 => drop(permit),
                    2 => permit.ignore(),
                    _ => permit.success_at(now),
                }
            }
        });
        assert_eq!(allocations, 0);
        assert_eq!(limiter.in_flight(), 0);
    }
}
