//! The cached clock's ticker thread: started by [`CachedTimer::new`] and by nothing else, once
//! per process. (A test binary of its own, so that no other test has started it.)

#![cfg(all(feature = "async-io", target_os = "linux"))]

use std::fs;
use std::time::{Duration, Instant};

use tailguard::breaker::CircuitBreaker;
use tailguard::time::{AsyncIoTimer, CachedTimer, Timer};

/// The threads of this process named `tailguard-clock`.
fn ticker_threads() -> usize {
    fs::read_dir("/proc/self/task")
        .expect("procfs")
        .filter_map(|task| fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == "tailguard-clock")
        .count()
}

/// `ticker_threads()` once it has settled on `expected` (a new thread names itself after it
/// starts), or what it is after a generous wait.
fn ticker_threads_settling_on(expected: usize) -> usize {
    let give_up = Instant::now() + Duration::from_secs(30);
    loop {
        let count = ticker_threads();
        if count == expected || Instant::now() > give_up {
            return count;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn only_a_cached_timer_starts_the_ticker_thread_and_only_one() {
    // Breakers that measure, on the default timer, and the default timer's own coarse clock:
    // no thread.
    let breaker = CircuitBreaker::builder()
        .time_window(Duration::from_secs(10), 10)
        .slow_calls(Duration::from_secs(1), 0.5)
        .build()
        .unwrap();
    for _ in 0..1000 {
        breaker.try_acquire().unwrap().success();
    }
    let _ = AsyncIoTimer.now_coarse_nanos();
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(ticker_threads(), 0);

    // The first `CachedTimer` starts it; more timers, clones and breakers share it.
    let timer = CachedTimer::new(AsyncIoTimer);
    assert_eq!(ticker_threads_settling_on(1), 1);
    let others: Vec<CachedTimer<AsyncIoTimer>> = (0..10).map(|_| CachedTimer::default()).collect();
    let breaker = CircuitBreaker::builder()
        .slow_calls(Duration::from_secs(1), 0.5)
        .build_with(timer)
        .unwrap();
    for other in others.iter().chain(Some(&timer)) {
        assert!(other.now_coarse() <= other.now());
    }
    breaker.try_acquire().unwrap().success();
    assert_eq!(breaker.metrics().calls, 1);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(ticker_threads(), 1);
}
