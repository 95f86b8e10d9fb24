//! A burst of legal fan-outs against healthy replicas, end to end over real sockets on
//! 127.0.0.1 (issue 10, item 7).
//!
//! Ten concurrent `GET /fanout?keys=1000` once opened every replica's breaker: the gateway
//! opened hundreds of connections per replica, and counted its own overload (calls that waited,
//! connected late or timed out before anything was sent) as the replicas' failures. Now each
//! replica's pool is bounded, a fan-out sends a bounded number of calls at once, and only what
//! a replica did counts against its breaker.
//!
//! Also: `keys` above `--max-keys` is refused with the limit; calls stopped by the gateway's own
//! limits are not held against a replica; a bounded pool never opens more connections than it
//! has slots, and dropped calls give their slots back.
//!
//! Real-time tests: judged by shapes (no 502, breakers closed, bounds on connections), never by
//! times.

use std::time::{Duration, Instant};

use tailguard::breaker::State;
use tailguard_demo::backend::{BackendConfig, Backends, Profile};
use tailguard_demo::client::{ClientConfig, Limits, Pool};
use tailguard_demo::gateway::HedgeMode;
use tailguard_demo::rt::Runtime;

mod gateway_support;

use gateway_support::{fixed, n, Stack};

/// Three replicas of `profile` (the default: about 5 ms, no errors).
fn healthy(profile: Profile) -> BackendConfig {
    BackendConfig::uniform(3, profile)
}

#[test]
fn a_burst_of_large_fanouts_leaves_healthy_replicas_breakers_closed() {
    // The defaults, but a call may take as long as its fan-out: the replicas, the gateway and the
    // ten clients share this machine's two cores, and on a busy machine a 200 ms call timeout
    // also fires when a replica task merely waited for a core (a real timeout, but of the test
    // machine, not of the gateway's limits). Before the pool bound, the breakers opened on
    // refused and reset connections as well as on timeouts (with the defaults, 189-195 failed
    // and 655-723 timed-out calls per replica).
    let stack = Stack::start(healthy(Profile::default()), |c| {
        c.call_timeout = c.fanout_deadline
    });
    let max_keys = stack.gateway.config().max_keys;
    let burst = stack.burst(&format!("/fanout?keys={max_keys}"), 10);

    let stats = stack.gateway.stats();
    let statuses: Vec<u16> = burst.iter().map(|(status, _)| *status).collect();
    let opened: Vec<u64> = stats
        .replicas
        .iter()
        .map(|r| r.transitions(State::Closed, State::Open))
        .collect();
    let connections: Vec<u64> = stack
        .backends
        .stats()
        .iter()
        .map(|s| s.connections)
        .collect();
    let peaks: Vec<u64> = stats.replicas.iter().map(|r| r.connections_peak).collect();
    eprintln!("statuses {statuses:?}, breaker opens {opened:?}, connections accepted {connections:?}, peak open {peaks:?}");
    for r in &stats.replicas {
        eprintln!(
            "  replica {}: ok {} failed {} timed_out {} unsent {} rejected {}",
            r.index, r.ok, r.failed, r.timed_out, r.unsent, r.rejected
        );
    }
    for (status, report) in &burst {
        eprintln!(
            "  {status}: ok {} failed {} timed_out {} errors {}",
            report["ok"], report["failed"], report["timed_out"], report["errors"]
        );
    }

    // Every fan-out is answered 200 (partially, if the deadline came first): none is 502.
    for (status, report) in &burst {
        assert_eq!(*status, 200, "{report}");
        assert!(n(&report["ok"]) > 0, "{report}");
    }
    // The replicas never failed, and their breakers never left the closed state: keys the
    // gateway could not send in time are its own doing (`unsent`), not theirs.
    for replica in &stats.replicas {
        assert_eq!(replica.state, State::Closed, "{replica:?}");
        assert!(replica.transitions.is_empty(), "{replica:?}");
    }
    for backend in stack.backends.stats() {
        assert_eq!(backend.errors + backend.unavailable, 0, "{backend:?}");
    }
    // Each replica's connections stayed within its pool.
    let pool = stack.gateway.config().pool_size as u64;
    for (replica, peak) in stats.replicas.iter().zip(&peaks) {
        assert!(*peak <= pool, "{peak} connections to {replica:?}");
        assert!(replica.connections_open <= pool, "{replica:?}");
    }

    // Right after, small fan-outs are answered in full.
    for (status, report) in stack.burst("/fanout?keys=16", 5) {
        assert_eq!(status, 200, "{report}");
        assert_eq!(n(&report["ok"]), 16, "{report}");
    }
    assert!(stack.shutdown().drained());
}

#[test]
fn keys_above_the_cap_are_refused_with_the_limit() {
    let stack = Stack::start(healthy(Profile::default()), |c| c.max_keys = 50);
    let (status, body) = stack.burst("/fanout?keys=51", 1).remove(0);
    assert_eq!(status, 400);
    let message = body.as_str().expect("a text answer");
    assert!(message.contains("from 1 to 50"), "{message}");
    let (status, report) = stack.burst("/fanout?keys=50", 1).remove(0);
    assert_eq!(status, 200, "{report}");
    assert_eq!(n(&report["ok"]), 50, "{report}");
    stack.shutdown();
}

#[test]
fn calls_stopped_by_the_gateways_own_limits_are_not_held_against_a_replica() {
    // One connection per replica, 250 ms calls, 20 ms of waiting for it: of each replica's
    // three keys, one is read and two give up waiting, unsent.
    let stack = Stack::start(healthy(fixed(250)), |c| {
        c.pool_size = 1;
        c.pool_timeout = Duration::from_millis(20);
        c.call_timeout = Duration::from_secs(1);
        c.fanout_deadline = Duration::from_secs(2);
        c.hedge = HedgeMode::Off;
    });
    let (status, report) = stack.burst("/fanout?keys=9", 1).remove(0);
    assert_eq!(status, 200, "{report}");
    assert_eq!(n(&report["ok"]), 3, "{report}");
    assert_eq!(n(&report["failed"]), 6, "{report}");
    assert_eq!(n(&report["errors"]["pool_exhausted"]), 6, "{report}");
    // Not retried: another call would only add to the gateway's own overload.
    assert_eq!(n(&report["retries"]), 0, "{report}");
    for (i, replica) in stack.gateway.stats().replicas.iter().enumerate() {
        assert_eq!((replica.ok, replica.unsent), (1, 2), "{replica:?}");
        assert_eq!(replica.failed + replica.timed_out, 0, "{replica:?}");
        // The breaker saw the one call that was sent, and nothing else.
        let metrics = stack.gateway.breaker(i).unwrap().metrics();
        assert_eq!((metrics.calls, metrics.failures), (1, 0), "{metrics:?}");
    }
    stack.shutdown();
}

#[test]
fn a_backup_call_goes_out_only_on_a_spare_connection() {
    // One connection per replica. Key 1 lives on a slow replica (400 ms) and is hedged at
    // 10 ms to replica 0, whose only connection is busy with key 0 for 100 ms: the backup is
    // not sent (it would have waited, then made replica 0 do the work twice), and key 1 is
    // answered by its own replica.
    let stack = Stack::start(healthy(fixed(100)), |c| {
        c.replicas.truncate(2);
        c.pool_size = 1;
        c.pool_timeout = Duration::from_millis(500);
        c.call_timeout = Duration::from_secs(1);
        c.fanout_deadline = Duration::from_secs(2);
        c.hedge = HedgeMode::Fixed(Duration::from_millis(10));
        c.hedge_budget_ratio = 1.0;
    });
    stack.backends.set_profile(1, fixed(400)).unwrap();
    let (status, report) = stack.burst("/fanout?keys=2", 1).remove(0);
    assert_eq!(status, 200, "{report}");
    assert_eq!(n(&report["ok"]), 2, "{report}");
    assert_eq!(n(&report["hedges_won"]), 0, "{report}");
    assert_eq!(
        report["served_by"],
        serde_json::json!({"0": 1, "1": 1}),
        "{report}"
    );
    let requests: Vec<u64> = stack.backends.stats().iter().map(|s| s.requests).collect();
    assert_eq!(
        &requests[..2],
        [1, 1],
        "each replica did its own key's work only"
    );
    stack.shutdown();
}

#[test]
fn a_bounded_pool_keeps_to_its_slots_and_dropped_calls_give_theirs_back() {
    let rt = Runtime::new(2.try_into().unwrap());
    let backends = rt
        .block_on(Backends::start(
            BackendConfig::uniform(1, fixed(250)),
            rt.executor(),
        ))
        .expect("backends start");
    let pool = Pool::bounded(
        backends.addrs()[0],
        ClientConfig::default(),
        2.try_into().unwrap(),
        rt.executor().clone(),
    );
    let call = |path: &'static str| {
        let pool = pool.clone();
        rt.spawn(async move { pool.get(path).await })
    };

    // Ten calls at once over two connections: all answered, never a third connection.
    let calls: Vec<_> = (0..10).map(|_| call("/key/1")).collect();
    for call in calls {
        assert_eq!(rt.block_on(call).expect("answered").status, 200);
    }
    assert_eq!(pool.stats().peak_open, 2, "{:?}", pool.stats());
    assert_eq!(backends.stats()[0].connections, 2);

    // Two calls running, five waiting; drop them all, mid-request and mid-wait.
    let calls: Vec<_> = (0..7).map(|_| call("/key/2")).collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while backends.stats()[0].in_flight < 2 {
        assert!(Instant::now() < deadline, "the calls never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(calls);
    // The two cut mid-request close their connections, and their slots come back with them;
    // the waiters give up their places (one may have been handed a slot and started a connect,
    // which then goes to the pool, idle). Once no connection is busy, both slots are free: two
    // calls get one each without waiting out a 250 ms call (a lost slot would make one wait).
    let deadline = Instant::now() + Duration::from_secs(5);
    while pool.stats().open > pool.stats().idle {
        assert!(Instant::now() < deadline, "{:?}", pool.stats());
        std::thread::sleep(Duration::from_millis(5));
    }
    let limits = Limits {
        pool_wait: Duration::from_millis(150),
        total: Duration::from_secs(2),
    };
    let both: Vec<_> = (0..2)
        .map(|_| {
            let pool = pool.clone();
            rt.spawn(async move { pool.get_within("/key/3", limits).await })
        })
        .collect();
    for call in both {
        let reply = rt.block_on(call).expect("a slot was free");
        assert_eq!(reply.status, 200);
    }
    assert!(pool.stats().peak_open <= 2, "{:?}", pool.stats());
}
