//! What several of the core's integration tests share.

use std::time::Duration;

use tailguard::breaker::CircuitBreaker;
use tailguard::time::ManualTimer;

/// A breaker on `timer` that has just gone half-open with one probe slot: opened by two failures
/// in a count window of 2, then its 10 s open duration passed.
pub fn half_open_breaker(timer: &ManualTimer) -> CircuitBreaker<ManualTimer> {
    let breaker = CircuitBreaker::builder()
        .count_window(2)
        .minimum_calls(2)
        .open_duration(Duration::from_secs(10))
        .half_open_calls(1)
        .build_with(timer.clone())
        .unwrap();
    for _ in 0..2 {
        breaker.try_acquire().unwrap().failure();
    }
    timer.advance(Duration::from_secs(10));
    breaker
}
