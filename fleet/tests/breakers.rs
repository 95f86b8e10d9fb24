//! The fleet against a real `redis-server` (started on 127.0.0.1 on a free port, killed at
//! the end). Real time with generous bounds: these judge shapes (who opened, which mode), not
//! how fast. Without a redis-server they are skipped with a message, unless
//! `TAILGUARD_REQUIRE_REDIS=1` (as `scripts/test` sets once it has installed one).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tailguard::breaker::{CircuitBreaker, State};
use tailguard::time::DefaultTimer;
use tailguard_fleet::local::LocalRedis;
use tailguard_fleet::{Fleet, Mode};

mod common;
use common::{eventually, redis};

const INTERVAL: Duration = Duration::from_millis(50);

type Lines = Arc<Mutex<Vec<String>>>;

fn fleet(redis: &LocalRedis, id: &str, lines: &Lines) -> Fleet {
    let lines = Arc::clone(lines);
    Fleet::builder(&redis.url())
        .namespace("test")
        .instance_id(id)
        .interval(INTERVAL)
        .io_timeout(Duration::from_millis(40))
        .on_log(move |line| lines.lock().unwrap().push(line.to_owned()))
        .build()
        .unwrap()
}

fn breaker() -> CircuitBreaker<DefaultTimer> {
    CircuitBreaker::builder()
        .name("dependency")
        .count_window(20)
        .minimum_calls(10)
        .failure_rate(0.5)
        .open_duration(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn calls(breaker: &CircuitBreaker<DefaultTimer>, failures: usize, successes: usize) {
    for _ in 0..failures {
        breaker.try_acquire().unwrap().failure();
    }
    for _ in 0..successes {
        breaker.try_acquire().unwrap().success();
    }
}

fn shared(fleets: &[&Fleet]) -> bool {
    fleets
        .iter()
        .all(|f| f.status().mode == Mode::Shared && f.status().syncs >= 1)
}

#[test]
fn one_instance_opening_opens_the_other_two() {
    let Some(redis) = redis() else { return };
    let lines = Lines::default();
    let (a, b, c) = (breaker(), breaker(), breaker());
    let fleets = [
        fleet(&redis, "a", &lines),
        fleet(&redis, "b", &lines),
        fleet(&redis, "c", &lines),
    ];
    for (fleet, breaker) in fleets.iter().zip([&a, &b, &c]) {
        fleet.share(breaker).unwrap();
    }
    assert!(eventually(|| shared(&fleets.iter().collect::<Vec<_>>())));
    calls(&b, 0, 10);
    calls(&c, 0, 10);
    calls(&a, 10, 0);
    assert_eq!(a.state(), State::Open);
    let opened = Instant::now();
    assert!(
        eventually(|| b.state() == State::Open && c.state() == State::Open),
        "b: {}, c: {}",
        b.state(),
        c.state()
    );
    eprintln!(
        "the other two opened {:?} after the first",
        opened.elapsed()
    );
    assert_eq!(fleets[0].status().fleet_trips, 0, "a opened on its own");
    assert_eq!(fleets[1].status().fleet_trips, 1);
    assert_eq!(fleets[2].status().fleet_trips, 1);
    assert!(lines
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("opened by the fleet")));
}

#[test]
fn the_fleets_failure_rate_opens_breakers_no_instance_would_open_alone() {
    let Some(redis) = redis() else { return };
    let lines = Lines::default();
    let breakers = [breaker(), breaker(), breaker()];
    let fleets: Vec<Fleet> = ["a", "b", "c"]
        .iter()
        .zip(&breakers)
        .map(|(id, breaker)| {
            let fleet = fleet(&redis, id, &lines);
            fleet.share(breaker).unwrap();
            fleet
        })
        .collect();
    assert!(eventually(|| shared(&fleets.iter().collect::<Vec<_>>())));
    // Each sees 8 successes then 4 failures: 4 in 12, a third, so each stays closed alone. The
    // fleet's window is the last 20 calls across the fleet, the newest 7 of each instance: 21
    // calls, 12 failures, over the threshold. (Summing whole windows, 12 in 36, would not be.)
    for breaker in &breakers {
        calls(breaker, 0, 8);
        calls(breaker, 4, 0);
        assert_eq!(breaker.state(), State::Closed);
    }
    assert!(eventually(|| breakers
        .iter()
        .all(|b| b.state() == State::Open)));
}

#[test]
fn redis_down_means_local_decisions_and_redis_back_means_shared_again() {
    let Some(mut redis) = redis() else { return };
    let lines = Lines::default();
    let (a, b) = (breaker(), breaker());
    let fleets = [fleet(&redis, "a", &lines), fleet(&redis, "b", &lines)];
    fleets[0].share(&a).unwrap();
    fleets[1].share(&b).unwrap();
    assert!(eventually(|| shared(&[&fleets[0], &fleets[1]])));

    redis.stop();
    assert!(eventually(|| fleets.iter().all(|f| f.status().mode
        == Mode::Local
        && f.status().syncs_failed >= 3)));
    // Calls go on, untouched by the outage; decisions are local: a opens alone.
    calls(&b, 0, 100);
    calls(&a, 10, 0);
    assert_eq!(a.state(), State::Open);
    std::thread::sleep(INTERVAL * 6);
    assert_eq!(b.state(), State::Closed, "no fleet while Redis is down");
    let outage_lines = |lines: &Lines| {
        lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("unreachable"))
            .count()
    };
    assert_eq!(outage_lines(&lines), 2, "one line per fleet per outage");

    redis.restart().unwrap();
    assert!(eventually(|| shared(&[&fleets[0], &fleets[1]])));
    // Shared again: a's opening reaches b.
    assert!(eventually(|| b.state() == State::Open));
    let lines = lines.lock().unwrap();
    assert_eq!(lines.iter().filter(|l| l.contains("is back")).count(), 2);
    assert_eq!(
        lines.iter().filter(|l| l.contains("unreachable")).count(),
        2
    );
}

#[test]
fn a_slow_redis_means_local_decisions_not_slow_calls() {
    let Some(redis) = redis() else { return };
    let lines = Lines::default();
    let (a, b) = (breaker(), breaker());
    let fleets = [fleet(&redis, "a", &lines), fleet(&redis, "b", &lines)];
    fleets[0].share(&a).unwrap();
    fleets[1].share(&b).unwrap();
    assert!(eventually(|| shared(&[&fleets[0], &fleets[1]])));

    // Redis hangs: every sync times out after io_timeout (40 ms), in the fleets' threads.
    redis.freeze().unwrap();
    assert!(eventually(|| fleets.iter().all(|f| f.status().mode
        == Mode::Local
        && f.status().syncs_failed >= 2)));
    // Calls go on meanwhile, and decisions are local.
    calls(&b, 0, 1_000);
    calls(&a, 10, 0);
    assert_eq!(a.state(), State::Open);
    std::thread::sleep(INTERVAL * 4);
    assert_eq!(b.state(), State::Closed);

    redis.thaw().unwrap();
    assert!(eventually(|| shared(&[&fleets[0], &fleets[1]])
        && fleets.iter().all(|f| f.status().mode == Mode::Shared)));
    assert!(eventually(|| b.state() == State::Open));
    let lines = lines.lock().unwrap();
    assert_eq!(
        lines.iter().filter(|l| l.contains("unreachable")).count(),
        2
    );
}

fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

#[test]
fn stale_entries_do_not_count_and_age_out_and_leaving_removes_ones_own() {
    let Some(redis) = redis() else { return };
    let lines = Lines::default();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut con = client.get_connection().unwrap();
    let key = "tailguard:test:breaker:dependency";
    // A crashed instance's entry, a second old: all failures, but stale.
    let old = format!("1:{}:100:100:0:0:0", now_ms() - 1_000);
    redis::cmd("HSET")
        .arg(key)
        .arg("ghost")
        .arg(&old)
        .query::<()>(&mut con)
        .unwrap();
    let a = breaker();
    let fleet_a = fleet(&redis, "a", &lines);
    fleet_a.share(&a).unwrap();
    let exists = |con: &mut redis::Connection, field: &str| {
        redis::cmd("HEXISTS")
            .arg(key)
            .arg(field)
            .query::<bool>(con)
            .unwrap()
    };
    assert!(eventually(|| !exists(&mut con, "ghost")), "aged out");
    assert_eq!(a.state(), State::Closed, "a stale entry does not count");

    // The same entry, fresh (rewritten as a live instance would), does.
    assert!(eventually(|| {
        let fresh = format!("1:{}:100:100:0:0:0", now_ms());
        redis::cmd("HSET")
            .arg(key)
            .arg("ghost")
            .arg(&fresh)
            .query::<()>(&mut con)
            .unwrap();
        a.state() == State::Open
    }));

    assert!(exists(&mut con, "a"));
    drop(fleet_a);
    assert!(!exists(&mut con, "a"), "a leaving removes its entries");
    let ttl: i64 = redis::cmd("PTTL").arg(key).query(&mut con).unwrap();
    assert!(ttl > 0, "the key expires: {ttl}");
}

#[test]
fn bad_settings_are_refused_naming_the_field() {
    let field = |builder: tailguard_fleet::FleetBuilder| builder.build().unwrap_err().field();
    let url = "redis://127.0.0.1:1/";
    assert_eq!(field(Fleet::builder("http://nope")), "url");
    assert_eq!(field(Fleet::builder(url).namespace("")), "namespace");
    assert_eq!(field(Fleet::builder(url).instance_id("")), "instance_id");
    assert_eq!(
        field(Fleet::builder(url).interval(Duration::from_millis(1))),
        "interval"
    );
    assert_eq!(
        field(Fleet::builder(url).interval(Duration::from_secs(61))),
        "interval"
    );
    assert_eq!(
        field(Fleet::builder(url).interval(INTERVAL).stale_after(INTERVAL)),
        "stale_after"
    );
    assert_eq!(
        field(
            Fleet::builder(url)
                .interval(INTERVAL)
                .io_timeout(INTERVAL * 2)
        ),
        "io_timeout"
    );
    assert_eq!(
        field(Fleet::builder(url).io_timeout(Duration::ZERO)),
        "io_timeout"
    );
    // A Redis that is down is not a settings error: the fleet starts local.
    let fleet = Fleet::builder(url)
        .interval(INTERVAL)
        .on_log(|_| {})
        .build()
        .unwrap();
    let b = breaker();
    fleet.share(&b).unwrap();
    assert_eq!(fleet.share(&b).unwrap_err().field(), "name");
    assert!(eventually(|| fleet.status().syncs_failed >= 1));
    assert_eq!(fleet.status().mode, Mode::Local);
    assert_eq!(fleet.status().breakers, 1);
}

#[test]
fn time_window_breakers_open_on_the_fleets_failure_rate() {
    let Some(redis) = redis() else { return };
    let lines = Lines::default();
    let timed = || {
        CircuitBreaker::builder()
            .name("timed")
            .time_window(Duration::from_secs(30), 10)
            .minimum_calls(10)
            .failure_rate(0.5)
            .open_duration(Duration::from_secs(60))
            .build()
            .unwrap()
    };
    let breakers = [timed(), timed(), timed()];
    let fleets: Vec<Fleet> = ["a", "b", "c"]
        .iter()
        .zip(&breakers)
        .map(|(id, breaker)| {
            let fleet = fleet(&redis, id, &lines);
            fleet.share(breaker).unwrap();
            fleet
        })
        .collect();
    assert!(eventually(|| shared(&fleets.iter().collect::<Vec<_>>())));
    // Each: 4 failures in 8 calls, under minimum_calls alone; the fleet: 12 in 24.
    for breaker in &breakers {
        calls(breaker, 4, 4);
        assert_eq!(breaker.state(), State::Closed);
    }
    assert!(eventually(|| breakers
        .iter()
        .all(|b| b.state() == State::Open)));
}
