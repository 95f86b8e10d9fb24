//! Rate limiters shared through a real `redis-server` (started on 127.0.0.1 on a free port,
//! killed at the end): the fleet holds its configured rate together, and what each instance
//! does while Redis is down. Real time (the rate is the point), judged with margins. Skipped
//! without a redis-server unless `TAILGUARD_REQUIRE_REDIS=1`.

use std::time::{Duration, Instant};

use tailguard::rate::RateLimiter;
use tailguard_fleet::local::LocalRedis;
use tailguard_fleet::{Fleet, Mode, RateFallback};

mod common;
use common::{eventually, rate_load, redis};

const INTERVAL: Duration = Duration::from_millis(50);

#[test]
fn three_instances_hold_the_fleets_rate_within_five_percent_over_ten_seconds() {
    let Some(redis) = redis() else { return };
    // 300 a second for the fleet; the instances ask for about 2,000, 1,000 and 1,000 a second.
    let load = rate_load::Load {
        url: redis.url(),
        rate: 300,
        burst: 2,
        interval: INTERVAL,
        attempts_per_ms: vec![2, 1, 1],
        warm_up: Duration::from_millis(500),
        window: Duration::from_secs(10),
        namespace: "test".to_owned(),
    };
    let m = rate_load::run(&load);
    eprintln!("{m:?}");
    assert!(
        m.overshoot_pct <= 5.0,
        "the fleet admitted {} for {} allowed: {:+.2}%",
        m.admitted,
        m.allowed,
        m.overshoot_pct
    );
    // Not starved either: nearly the whole rate is used.
    assert!(m.overshoot_pct >= -20.0, "{m:?}");
    // Without the fleet each instance would take the whole rate: 3 times as much.
    assert!(
        m.per_instance.iter().all(|&n| (n as f64) < m.allowed * 0.7),
        "{m:?}"
    );
}

fn instance(redis: &LocalRedis, id: &str, fallback: RateFallback) -> (Fleet, RateLimiter) {
    let fleet = Fleet::builder(&redis.url())
        .namespace("test")
        .instance_id(id)
        .interval(INTERVAL)
        .io_timeout(Duration::from_millis(40))
        .on_log(|_| {})
        .build()
        .unwrap();
    // A burst of 20: a thread that oversleeps on a loaded machine still takes what it is due.
    let limiter = RateLimiter::builder()
        .rate(200, Duration::from_secs(1))
        .burst(20)
        .build()
        .unwrap();
    fleet.share_rate("dependency", &limiter, fallback).unwrap();
    (fleet, limiter)
}

/// Calls admitted over `for_`, taking every token there is each millisecond or so.
fn admitted(limiter: &RateLimiter, for_: Duration) -> u64 {
    let end = Instant::now() + for_;
    let mut admitted = 0;
    while Instant::now() < end {
        while limiter.try_acquire().is_ok() {
            admitted += 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    admitted
}

#[test]
fn redis_down_keeps_the_last_share_or_takes_the_full_rate_as_configured() {
    let Some(mut redis) = redis() else { return };
    let (closed, a) = instance(&redis, "closed", RateFallback::LastShare);
    let (open, b) = instance(&redis, "open", RateFallback::FullRate);
    let fleets = [&closed, &open];
    assert!(eventually(|| fleets.iter().all(|f| f.status().peers == 1)));
    // Both busy: about half each.
    std::thread::scope(|s| {
        s.spawn(|| admitted(&a, Duration::from_millis(600)));
        s.spawn(|| admitted(&b, Duration::from_millis(600)));
    });
    let share = closed.rate_share("dependency").unwrap();
    assert!((0.25..0.75).contains(&share), "{share}");

    redis.stop();
    assert!(eventually(|| fleets
        .iter()
        .all(|f| f.status().mode == Mode::Local)));
    std::thread::sleep(INTERVAL * 4); // past stale_after (3 intervals)
    assert_eq!(open.rate_share("dependency"), Some(1.0), "fails open");
    assert_eq!(closed.rate_share("dependency"), Some(share), "fails closed");
    let (closed_n, open_n) = std::thread::scope(|s| {
        let closed_n = s.spawn(|| admitted(&a, Duration::from_secs(1)));
        let open_n = s.spawn(|| admitted(&b, Duration::from_secs(1)));
        (closed_n.join().unwrap(), open_n.join().unwrap())
    });
    eprintln!("while Redis is down, over 1 s at 200/s: last share {closed_n}, full rate {open_n}");
    // Its last share of the rate and at most a bucket (20) more — judged against the share it
    // kept (anywhere in 0.25..0.75 on a loaded machine), with 20 calls to spare — or the full
    // rate (200) and a bucket, which the last share stays well under.
    let last_share_bound = 200.0 * share + 20.0 + 20.0;
    assert!(
        (closed_n as f64) < last_share_bound,
        "last share {share}: {closed_n} admitted, bound {last_share_bound}"
    );
    assert!((open_n as f64) > 200.0 * 0.8, "full rate: {open_n}");

    redis.restart().unwrap();
    assert!(eventually(|| fleets.iter().all(|f| f.status().mode
        == Mode::Shared
        && f.status().peers == 1)));
    assert!(eventually(|| open.rate_share("dependency").unwrap() < 0.99));
}

#[test]
fn sharing_a_limiter_twice_or_nameless_is_refused() {
    let fleet = Fleet::builder("redis://127.0.0.1:1/")
        .on_log(|_| {})
        .build()
        .unwrap();
    let limiter = RateLimiter::builder().build().unwrap();
    fleet
        .share_rate("x", &limiter, RateFallback::default())
        .unwrap();
    let again = fleet.share_rate("x", &limiter, RateFallback::FullRate);
    assert_eq!(again.unwrap_err().field(), "name");
    let nameless = fleet.share_rate("", &limiter, RateFallback::FullRate);
    assert_eq!(nameless.unwrap_err().field(), "name");
    assert_eq!(
        fleet.rate_share("x"),
        Some(1.0),
        "never synced: the full rate"
    );
    assert_eq!(fleet.rate_share("y"), None);
    assert_eq!(fleet.status().rate_limiters, 1);
}
