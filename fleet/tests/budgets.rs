//! Retry budgets shared through a real `redis-server` (started on 127.0.0.1 on a free port,
//! killed at the end). Real time, judged by shapes: who may retry, and that the fleet never
//! retries more than its budget. Skipped without a redis-server unless
//! `TAILGUARD_REQUIRE_REDIS=1`.

use std::time::{Duration, Instant};

use tailguard::retry::RetryBudget;
use tailguard_fleet::local::LocalRedis;
use tailguard_fleet::{Fleet, Mode};

mod common;
use common::{eventually, redis};

const INTERVAL: Duration = Duration::from_millis(50);

fn fleet(redis: &LocalRedis, id: &str) -> Fleet {
    Fleet::builder(&redis.url())
        .namespace("test")
        .instance_id(id)
        .interval(INTERVAL)
        .io_timeout(Duration::from_millis(40))
        .on_log(|_| {})
        .build()
        .unwrap()
}

/// 10% of calls, no floor: only calls earn retries.
fn budget() -> RetryBudget {
    RetryBudget::builder()
        .ratio(0.1)
        .min_per_second(0)
        .window(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn drain(budget: &RetryBudget) -> usize {
    (0..1_000).take_while(|_| budget.try_withdraw()).count()
}

/// Waits until every fleet has synced at least `more` more times than now.
fn syncs(fleets: &[Fleet], more: u64) {
    let start: Vec<u64> = fleets.iter().map(|f| f.status().syncs).collect();
    assert!(eventually(|| fleets
        .iter()
        .zip(&start)
        .all(|(f, s)| f.status().syncs >= s + more)));
}

#[test]
fn one_instances_surplus_is_divided_and_the_fleet_never_overspends() {
    let Some(redis) = redis() else { return };
    let budgets = [budget(), budget(), budget()];
    // Only a makes calls: 100 of them earn the fleet 10 retries.
    for _ in 0..100 {
        budgets[0].deposit();
    }
    assert!(!budgets[1].try_withdraw(), "alone, b has earned nothing");
    let fleets: Vec<Fleet> = ["a", "b", "c"]
        .iter()
        .zip(&budgets)
        .map(|(id, budget)| {
            let fleet = fleet(&redis, id);
            fleet.share_budget("dependency", budget).unwrap();
            fleet
        })
        .collect();
    assert!(eventually(|| fleets.iter().all(|f| f.status().mode
        == Mode::Shared
        && f.status().peers == 2)));
    syncs(&fleets, 2);
    // Rounds: every instance retries all it may, then every one syncs a few times (so each
    // next round decides on what the others really spent).
    let mut granted = [0; 3];
    for _ in 0..4 {
        for (g, budget) in granted.iter_mut().zip(&budgets) {
            *g += drain(budget);
        }
        syncs(&fleets, 3);
    }
    let total: usize = granted.iter().sum();
    eprintln!("granted per instance: {granted:?}");
    assert!(total <= 10, "the fleet's budget is 10 retries: {granted:?}");
    assert!(total >= 9, "all but rounding is spent: {granted:?}");
    assert!(
        granted[1] >= 2 && granted[2] >= 2,
        "b and c retry on a's calls: {granted:?}"
    );

    // The published value: `1:{at_ms}:{units}`, a's own balance.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut con = client.get_connection().unwrap();
    let value: String = redis::cmd("HGET")
        .arg("tailguard:test:budget:dependency")
        .arg("a")
        .query(&mut con)
        .unwrap();
    let parts: Vec<&str> = value.split(':').collect();
    assert_eq!(parts.len(), 3, "{value}");
    assert_eq!(parts[0], "1");
    assert_eq!(
        parts[2].parse::<i64>().unwrap(),
        10_000 - 1_000 * granted[0] as i64
    );
    let ttl: i64 = redis::cmd("PTTL")
        .arg("tailguard:test:budget:dependency")
        .query(&mut con)
        .unwrap();
    assert!(ttl > 0, "the key expires: {ttl}");
}

#[test]
fn redis_down_means_each_budget_alone_and_back_means_shared_again() {
    let Some(mut redis) = redis() else { return };
    let (a, b) = (budget(), budget());
    for _ in 0..100 {
        a.deposit();
    }
    let fleets = [fleet(&redis, "a"), fleet(&redis, "b")];
    fleets[0].share_budget("dependency", &a).unwrap();
    fleets[1].share_budget("dependency", &b).unwrap();
    // b may spend half of a's 10 retries.
    assert!(eventually(|| b.available_at(Instant::now()) == 5));
    assert_eq!(b.remote_balance(), 5_000);

    redis.stop();
    // After stale_after (3 intervals) without a sync, each budget is alone: b has earned
    // nothing, a has its own 10.
    assert!(eventually(
        || b.remote_balance() == 0 && a.remote_balance() == 0
    ));
    assert!(fleets.iter().all(|f| f.status().mode == Mode::Local));
    assert!(!b.try_withdraw());
    assert_eq!(drain(&a), 10);

    redis.restart().unwrap();
    // a spent its 10 alone; b's calls now earn 5 retries: shared again, 2.5 each.
    for _ in 0..50 {
        b.deposit();
    }
    assert!(eventually(|| fleets
        .iter()
        .all(|f| f.status().mode == Mode::Shared)));
    syncs(&fleets, 2);
    assert_eq!((a.remote_balance(), b.remote_balance()), (2_500, -2_500));
    assert_eq!(drain(&b), 2);
}

#[test]
fn dropping_the_fleet_leaves_the_budget_alone() {
    let Some(redis) = redis() else { return };
    let (a, b) = (budget(), budget());
    for _ in 0..100 {
        a.deposit();
    }
    let fleet_a = fleet(&redis, "a");
    let fleet_b = fleet(&redis, "b");
    fleet_a.share_budget("dependency", &a).unwrap();
    fleet_b.share_budget("dependency", &b).unwrap();
    assert_eq!(
        fleet_b.share_budget("dependency", &b).unwrap_err().field(),
        "name"
    );
    assert_eq!(fleet_b.share_budget("", &b).unwrap_err().field(), "name");
    assert!(eventually(|| b.remote_balance() == 5_000));
    drop(fleet_b);
    assert_eq!(b.remote_balance(), 0);
    // a sees b leave (its field removed at once) and has its 10 retries again.
    assert!(eventually(|| a.remote_balance() == 0));
    assert_eq!(fleet_a.status().budgets, 1);
}

#[test]
fn a_value_that_is_not_text_is_removed_and_does_not_stop_the_sync() {
    let Some(redis) = redis() else { return };
    let client = redis::Client::open(redis.url()).unwrap();
    let mut con = client.get_connection().unwrap();
    let key = "tailguard:test:budget:dependency";
    // Another writer's value that is not UTF-8.
    redis::cmd("HSET")
        .arg(key)
        .arg("junk")
        .arg(&b"1:\xff\xfe:1"[..])
        .query::<()>(&mut con)
        .unwrap();
    let b = budget();
    let fleet = fleet(&redis, "a");
    fleet.share_budget("dependency", &b).unwrap();
    let gone = || {
        !redis::cmd("HEXISTS")
            .arg(key)
            .arg("junk")
            .query::<bool>(&mut client.get_connection().unwrap())
            .unwrap()
    };
    assert!(eventually(gone), "the unreadable field is removed");
    syncs(std::slice::from_ref(&fleet), 2);
    let status = fleet.status();
    assert_eq!((status.mode, status.syncs_failed), (Mode::Shared, 0));
}
