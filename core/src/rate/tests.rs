use std::time::Duration;

use super::*;
use crate::time::{ManualTimer, Timer};

const MS: Duration = Duration::from_millis(1);

fn limiter(per_second: u32, burst: u32) -> (ManualTimer, RateLimiter<ManualTimer>) {
    let timer = ManualTimer::new();
    let limiter = RateLimiter::builder()
        .rate(per_second, Duration::from_secs(1))
        .burst(burst)
        .build_with(timer.clone())
        .unwrap();
    (timer, limiter)
}

#[test]
fn smooth_spaces_calls_one_interval_apart() {
    let (timer, l) = limiter(10, 1);
    let start = timer.now();
    l.try_acquire_at(start).unwrap();
    let e = l.try_acquire_at(start + 99 * MS).unwrap_err();
    assert_eq!(e.retry_after(), Some(MS));
    l.try_acquire_at(start + 100 * MS).unwrap();
    // A quiet spell banks nothing beyond the burst of 1.
    l.try_acquire_at(start + Duration::from_secs(5)).unwrap();
    assert!(l.try_acquire_at(start + Duration::from_secs(5)).is_err());
}

#[test]
fn until_ready_waits_for_each_token_in_virtual_time() {
    let (timer, l) = limiter(100, 3);
    let start = timer.now();
    timer.block_on(async {
        for _ in 0..9 {
            l.until_ready().await.unwrap();
        }
    });
    // Three at once, then one every 10 ms.
    assert_eq!(timer.now() - start, 60 * MS);
}

#[test]
fn acquire_until_refuses_at_once_when_the_token_comes_too_late() {
    let (timer, l) = limiter(10, 1);
    l.try_acquire().unwrap();
    let start = timer.now();
    let e = timer
        .block_on(l.acquire_until(start + 50 * MS))
        .unwrap_err();
    assert_eq!(e.reason(), Reason::Deadline);
    assert_eq!(timer.now(), start, "did not sleep in vain");
    timer.block_on(l.acquire_until(start + 100 * MS)).unwrap();
    assert_eq!(timer.now() - start, 100 * MS);
}

#[test]
fn racing_waiters_each_get_their_own_token() {
    let (timer, l) = limiter(1000, 1);
    let start = timer.now();
    let got = std::cell::Cell::new(0);
    timer.block_on(futures::future::join_all((0..10).map(|_| async {
        l.until_ready().await.unwrap();
        got.set(got.get() + 1);
    })));
    assert_eq!(got.get(), 10);
    assert_eq!(timer.now() - start, 9 * MS);
}

#[test]
fn weighted_calls_take_several_tokens_or_none() {
    let (timer, l) = limiter(10, 5);
    let now = timer.now();
    l.try_acquire_n_at(3, now).unwrap();
    assert_eq!(
        l.try_acquire_n_at(3, now).unwrap_err().reason(),
        Reason::Empty
    );
    assert_eq!(l.available_at(now), 2);
    let e = l.try_acquire_n_at(6, now).unwrap_err();
    assert_eq!((e.reason(), e.retry_after()), (Reason::TooMany, None));
}

#[test]
fn bad_rates_are_refused_naming_the_field() {
    let field = |b: RateLimiterBuilder| b.build_with(ManualTimer::new()).unwrap_err().field();
    assert_eq!(
        field(RateLimiterBuilder::new().rate(0, Duration::from_secs(1))),
        "rate.count"
    );
    assert_eq!(
        field(RateLimiterBuilder::new().rate(1, Duration::ZERO)),
        "rate.per"
    );
    assert_eq!(
        field(RateLimiterBuilder::new().rate(10, Duration::from_nanos(5))),
        "rate.count"
    );
    // Whole nanoseconds would change these rates by more than 1%: refused, not rounded.
    assert_eq!(
        field(RateLimiterBuilder::new().rate(999_999_999, Duration::from_secs(1))),
        "rate.count"
    );
    assert_eq!(
        field(RateLimiterBuilder::new().rate(3, Duration::from_nanos(5))),
        "rate.count"
    );
    // Within 1%: taken (1 s / 3 is 333_333_333 ns and 1 ns over).
    assert!(RateLimiterBuilder::new()
        .rate(3, Duration::from_secs(1))
        .build_with(ManualTimer::new())
        .is_ok());
    assert_eq!(field(RateLimiterBuilder::new().burst(0)), "burst");
    assert_eq!(
        field(
            RateLimiterBuilder::new()
                .rate(1, Duration::from_secs(1u64 << 33))
                .burst(u32::MAX)
        ),
        "burst"
    );
    let keyed = |b: RateLimiterBuilder| {
        b.build_keyed_with::<u32, _>(ManualTimer::new())
            .unwrap_err()
            .field()
    };
    assert_eq!(keyed(RateLimiterBuilder::new().max_keys(0)), "max_keys");
    assert_eq!(keyed(RateLimiterBuilder::new().shards(0)), "shards");
    assert_eq!(keyed(RateLimiterBuilder::new().shards(5000)), "shards");
}

#[test]
fn keyed_buckets_are_independent_and_memory_stays_bounded() {
    let timer = ManualTimer::new();
    let l = RateLimiter::builder()
        .rate(1, Duration::from_secs(1))
        .max_keys(8)
        .shards(2)
        .build_keyed_with::<u32, _>(timer.clone())
        .unwrap();
    assert_eq!(l.max_keys(), 8);
    let now = timer.now();
    for key in 0..100 {
        assert!(
            l.try_acquire_at(&key, now).is_ok(),
            "a new key has a full bucket"
        );
        assert!(l.len() <= 8);
    }
    // A remembered key is refused; the refusal is exact.
    let last = 99;
    assert_eq!(
        l.try_acquire_at(&last, now).unwrap_err().reason(),
        Reason::Empty
    );
    // Once every bucket has refilled, all are forgotten.
    assert_eq!(l.retain_recent_at(now + Duration::from_secs(1)), 0);
    assert!(l.is_empty());
}

#[test]
fn a_full_shard_forgets_idle_keys_before_active_ones() {
    let timer = ManualTimer::new();
    let l = RateLimiter::builder()
        .rate(1, Duration::from_secs(1))
        .burst(1)
        .max_keys(2)
        .shards(1)
        .build_keyed_with::<&str, _>(timer.clone())
        .unwrap();
    let t0 = timer.now();
    l.try_acquire_at(&"idle", t0).unwrap();
    let t1 = t0 + Duration::from_secs(1);
    l.try_acquire_at(&"active", t1).unwrap();
    // "idle" has refilled by t1: it makes room, "active" is kept and still refused.
    l.try_acquire_at(&"new", t1).unwrap();
    assert_eq!(
        l.try_acquire_at(&"active", t1).unwrap_err().reason(),
        Reason::Empty
    );
    assert_eq!(l.len(), 2);
}

#[test]
fn a_dropped_wait_holds_nothing() {
    let (timer, l) = limiter(10, 1);
    l.try_acquire().unwrap();
    let mut waiting = Box::pin(l.until_ready());
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(std::future::Future::poll(waiting.as_mut(), &mut cx).is_pending());
    assert_eq!(timer.pending_sleeps(), 1);
    drop(waiting);
    assert_eq!(timer.pending_sleeps(), 0, "its sleep is gone");
    // Nothing was reserved: the next token is there at its time for anyone.
    timer.advance(100 * MS);
    assert!(l.try_acquire().is_ok());
}
