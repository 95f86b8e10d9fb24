//! The simulated backends and the pooled client over real sockets on 127.0.0.1: latency,
//! errors, stalls, outages (refused and 503), the control endpoint, connection reuse.
//!
//! Real-time tests with generous bounds.

use std::time::{Duration, Instant};

use tailguard::shutdown::Shutdown;
use tailguard_demo::backend::{BackendConfig, Backends, LatencyDist, OutageMode, Profile, Stalls};
use tailguard_demo::client::{ClientConfig, ClientError, Pool};
use tailguard_demo::rt::Runtime;
use tailguard_demo::server::{Server, ServerConfig};

fn runtime() -> Runtime {
    Runtime::new(2.try_into().unwrap())
}

fn fixed(ms: u64) -> Profile {
    Profile {
        latency: LatencyDist::Fixed(Duration::from_millis(ms)),
        ..Profile::default()
    }
}

fn start(rt: &Runtime, config: BackendConfig) -> Backends {
    rt.block_on(Backends::start(config, rt.executor()))
        .expect("backends start")
}

/// Polls `condition` every 10 ms until it holds; panics with `what` after 5 s.
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn pool(rt: &Runtime, backends: &Backends, replica: usize) -> Pool {
    Pool::new(
        backends.addrs()[replica],
        ClientConfig::default(),
        rt.executor().clone(),
    )
}

#[test]
fn replicas_answer_after_their_latency_and_reuse_connections() {
    let rt = runtime();
    let backends = start(&rt, BackendConfig::uniform(3, fixed(20)));
    assert_eq!(backends.addrs().len(), 3);
    for replica in 0..3 {
        let pool = pool(&rt, &backends, replica);
        for _ in 0..3 {
            let started = Instant::now();
            let reply = rt.block_on(pool.get("/key/7")).expect("a reply");
            let took = started.elapsed();
            assert_eq!(reply.status, 200);
            assert_eq!(reply.body, format!("/key/7 from replica {replica}"));
            assert_eq!(reply.headers["x-replica"], replica.to_string().as_str());
            assert!(took >= Duration::from_millis(20), "{took:?}");
            assert!(took < Duration::from_secs(2), "{took:?}");
        }
        let stats = pool.stats();
        assert_eq!((stats.connects, stats.reuses), (1, 2), "{stats:?}");
        assert_eq!(stats.open, 1);
        assert_eq!(stats.idle, 1);
    }
    let stats = backends.stats();
    assert!(stats
        .iter()
        .all(|s| s.requests == 3 && s.ok == 3 && s.connections == 1));
    rt.block_on(backends.stop());
}

#[test]
fn the_error_rate_answers_500() {
    let rt = runtime();
    let mut profile = fixed(1);
    profile.error_rate = 1.0;
    let backends = start(&rt, BackendConfig::uniform(1, profile));
    let pool = pool(&rt, &backends, 0);
    let reply = rt.block_on(pool.get("/x")).unwrap();
    assert_eq!(reply.status, 500);
    backends
        .set_profile(
            0,
            Profile {
                error_rate: 0.5,
                ..fixed(1)
            },
        )
        .unwrap();
    let errors = (0..200)
        .filter(|_| rt.block_on(pool.get("/x")).unwrap().status == 500)
        .count();
    assert!(
        (60..=140).contains(&errors),
        "{errors} of 200 at a 50% error rate"
    );
    assert_eq!(backends.stats()[0].errors, errors as u64 + 1);
}

#[test]
fn stalls_hold_requests() {
    let rt = runtime();
    let profile = Profile {
        stalls: Some(Stalls {
            every: Duration::from_millis(60),
            length: Duration::from_millis(20),
        }),
        ..fixed(1)
    };
    let backends = start(&rt, BackendConfig::uniform(1, profile));
    let pool = pool(&rt, &backends, 0);
    let mut slow = 0;
    let started = Instant::now();
    for _ in 0..100 {
        // Arrivals every ~5 ms: a third of them land in a stall, or in service when one starts.
        std::thread::sleep(Duration::from_millis(4));
        let t = Instant::now();
        assert_eq!(rt.block_on(pool.get("/x")).unwrap().status, 200);
        if t.elapsed() >= Duration::from_millis(5) {
            slow += 1;
        }
    }
    assert!(
        slow >= 10,
        "{slow} of 100 requests were held, over {:?}",
        started.elapsed()
    );
    assert!(backends.stats()[0].stalled >= 10);
}

#[test]
fn a_down_replica_refuses_connections_and_comes_back_on_the_same_port() {
    let rt = runtime();
    let backends = start(&rt, BackendConfig::uniform(2, fixed(1)));
    let pool = pool(&rt, &backends, 1);
    assert_eq!(rt.block_on(pool.get("/x")).unwrap().status, 200);
    backends.set_down(1, true).unwrap();
    assert!(backends.is_down(1).unwrap());
    // The idle kept-alive connection is dropped and new ones are refused.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match rt.block_on(pool.get("/x")) {
            Err(ClientError::Connect(_)) => break,
            other => assert!(
                Instant::now() < deadline,
                "still answering while down: {other:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Replica 0 is unaffected.
    assert_eq!(
        rt.block_on(self::pool(&rt, &backends, 0).get("/x"))
            .unwrap()
            .status,
        200
    );
    backends.set_down(1, false).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match rt.block_on(pool.get("/x")) {
            Ok(reply) => {
                assert_eq!(reply.status, 200);
                break;
            }
            Err(error) => assert!(Instant::now() < deadline, "not back: {error}"),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(backends.set_down(2, true).is_err());
}

#[test]
fn connections_the_server_closed_are_discarded() {
    let rt = runtime();
    let server = rt
        .block_on(Server::bind(ServerConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            keep_alive_idle: Duration::from_millis(100),
            ..ServerConfig::default()
        }))
        .unwrap();
    let pool = Pool::new(
        server.local_addr().unwrap(),
        ClientConfig::default(),
        rt.executor().clone(),
    );
    let stop = Shutdown::new();
    let serving = rt.spawn(server.serve(rt.executor().clone(), stop.signal()));
    assert_eq!(rt.block_on(pool.get("/a")).unwrap().status, 200);
    assert_eq!(rt.block_on(pool.get("/b")).unwrap().status, 200);
    // The server closes the idle connection after 100 ms (the pool sees its task end); the
    // next call finds it closed, discards it and gets a fresh one.
    wait_until("the server never closed the idle connection", || {
        pool.stats().open == 0
    });
    assert_eq!(rt.block_on(pool.get("/c")).unwrap().status, 200);
    let stats = pool.stats();
    assert_eq!(
        (stats.connects, stats.reuses, stats.discarded),
        (2, 1, 1),
        "{stats:?}"
    );
    stop.trigger();
    assert!(rt.block_on(serving).drained());
}

#[test]
fn the_pool_keeps_at_most_max_idle_connections() {
    let rt = runtime();
    let backends = start(&rt, BackendConfig::uniform(1, fixed(50)));
    let pool = Pool::new(
        backends.addrs()[0],
        ClientConfig {
            max_idle: 2,
            ..ClientConfig::default()
        },
        rt.executor().clone(),
    );
    let calls: Vec<_> = (0..5)
        .map(|_| {
            let pool = pool.clone();
            rt.spawn(async move { pool.get("/x").await.map(|r| r.status.as_u16()) })
        })
        .collect();
    for call in calls {
        assert_eq!(rt.block_on(call).unwrap(), 200);
    }
    assert_eq!(pool.stats().connects, 5);
    assert_eq!(pool.stats().idle, 2);
    // The three connections not kept are closed.
    wait_until("the connections not kept stayed open", || {
        pool.stats().open <= 2
    });
    // A call cancelled midway closes its connection instead of returning it.
    let cancelled = rt.block_on(tailguard::timeout::timeout(
        Duration::from_millis(10),
        pool.get("/x"),
    ));
    assert!(cancelled.is_err());
    assert_eq!(pool.stats().idle, 1, "{:?}", pool.stats());
    pool.close_idle();
    wait_until("closed idle connections stayed open", || {
        pool.stats().open == 0
    });
}

#[test]
fn unavailable_mode_answers_503_and_outages_are_scheduled() {
    let rt = runtime();
    let mut config = BackendConfig::uniform(2, fixed(1));
    config.outage_mode = OutageMode::Unavailable;
    config.outages = vec!["0@300ms..1300ms".parse().unwrap()];
    let backends = start(&rt, config);
    let since_start = || backends.origin().elapsed();
    let pool = pool(&rt, &backends, 0);
    // Each answer is only judged if it surely came from the phase in question (a loaded
    // machine may be late for one); the outage is scheduled by the backends, not by the test.
    let before = rt.block_on(pool.get("/x")).unwrap().status;
    if since_start() < Duration::from_millis(300) {
        assert_eq!(before, 200);
    }
    wait_until("the scheduled outage never began", || {
        backends.is_down(0).unwrap()
    });
    let during = rt.block_on(pool.get("/x")).unwrap().status;
    if since_start() < Duration::from_millis(1300) {
        assert_eq!(during, 503);
    }
    wait_until("the scheduled outage never ended", || {
        !backends.is_down(0).unwrap()
    });
    assert!(since_start() >= Duration::from_millis(1300));
    assert_eq!(rt.block_on(pool.get("/x")).unwrap().status, 200);
    assert!(backends.stats()[0].unavailable >= 1);
    // One connection throughout: a 503 outage keeps connections open.
    assert_eq!(pool.stats().connects, 1);
}

#[test]
fn capacity_sheds_load_with_503() {
    let rt = runtime();
    let profile = Profile {
        capacity: Some(2),
        ..fixed(200)
    };
    let backends = start(&rt, BackendConfig::uniform(1, profile));
    let pool = pool(&rt, &backends, 0);
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let pool = pool.clone();
            rt.spawn(async move { pool.get("/x").await.map(|r| r.status.as_u16()) })
        })
        .collect();
    let mut statuses: Vec<u16> = calls.into_iter().map(|c| rt.block_on(c).unwrap()).collect();
    statuses.sort();
    assert_eq!(statuses, [200, 200, 503, 503, 503, 503]);
}

#[test]
fn the_control_endpoint_takes_replicas_down_and_up() {
    let rt = runtime();
    let backends = start(&rt, BackendConfig::uniform(2, fixed(1)));
    let control = Pool::new(
        backends.control_addr().expect("a control endpoint"),
        ClientConfig::default(),
        rt.executor().clone(),
    );
    let post = |path: &str| {
        rt.block_on(control.send(http::Method::POST, path, bytes::Bytes::new()))
            .unwrap()
    };
    let reply = post("/replicas/1/down");
    assert_eq!(reply.status, 200);
    assert!(backends.is_down(1).unwrap());
    let listing = rt.block_on(control.get("/replicas")).unwrap();
    let text = String::from_utf8_lossy(&listing.body).to_string();
    assert!(text.contains(r#""replica":1,"down":true"#), "{text}");
    assert_eq!(post("/replicas/1/up").status, 200);
    assert!(!backends.is_down(1).unwrap());
    assert_eq!(post("/replicas/9/up").status, 404);
    assert_eq!(post("/replicas/x/sideways").status, 404);
}
