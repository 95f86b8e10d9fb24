//! The backends' request queue and tied requests over real sockets on 127.0.0.1: a cancel
//! removes a queued request, a tied pair does the work once when one queue is busy, a cancel
//! that overtakes its request refuses it, and malformed headers are a 400.
//!
//! Real-time tests with generous bounds: they judge what happened (counters, statuses), not
//! how long it took.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use tailguard_demo::backend::{
    BackendConfig, Backends, LatencyDist, Profile, ReplicaStats, REQUEST_ID, TIED_TO,
};
use tailguard_demo::client::{ClientConfig, ClientError, Limits, Pool, Reply};
use tailguard_demo::gateway::{Gateway, GatewayConfig, HedgeMode};
use tailguard_demo::rt::Runtime;

fn runtime() -> Runtime {
    Runtime::new(2.try_into().unwrap())
}

/// Replicas with one worker each and a fixed service time.
fn one_worker(replicas: usize, ms: u64) -> BackendConfig {
    let profile = Profile {
        latency: LatencyDist::Fixed(Duration::from_millis(ms)),
        workers: Some(1),
        ..Profile::default()
    };
    BackendConfig::uniform(replicas, profile)
}

/// Polls `condition` every 5 ms until it holds; panics with `what` after 5 s.
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

const LIMITS: Limits = Limits {
    pool_wait: Duration::from_secs(2),
    total: Duration::from_secs(5),
};

fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(*name, HeaderValue::from_str(value).unwrap());
    }
    map
}

/// Sends `method path` with `headers` to replica `replica` on a fresh pool, in a task.
fn send(
    rt: &Runtime,
    backends: &Backends,
    replica: usize,
    method: Method,
    path: &'static str,
    headers: HeaderMap,
) -> smol::Task<Result<Reply, ClientError>> {
    let pool = Pool::new(
        backends.addrs()[replica],
        ClientConfig::default(),
        rt.executor().clone(),
    );
    rt.spawn(async move {
        pool.send_headed_within(LIMITS, method, path, Bytes::new(), Some(&headers))
            .await
    })
}

/// The gateway of the backup tests: tied requests, the second copy `delay` after the first, and
/// timeouts long enough that only the tying decides when a key answers.
fn tied_gateway(rt: &Runtime, backends: &Backends, delay: Duration) -> Gateway {
    let config = GatewayConfig {
        hedge: HedgeMode::Tied(delay),
        call_timeout: Duration::from_secs(10),
        fanout_deadline: Duration::from_secs(10),
        ..GatewayConfig::new(backends.addrs().to_vec())
    };
    Gateway::new(config, rt.executor().clone()).unwrap()
}

fn stats(backends: &Backends, replica: usize) -> ReplicaStats {
    backends.stats()[replica]
}

#[test]
fn a_cancel_removes_a_queued_request() {
    let rt = runtime();
    let backends = rt
        .block_on(Backends::start(one_worker(1, 400), rt.executor()))
        .unwrap();
    // The one worker is busy with an untagged request; request 5 waits in the queue.
    let busy = send(&rt, &backends, 0, Method::GET, "/key/1", HeaderMap::new());
    wait_until("the first request starts", || {
        stats(&backends, 0).started == 1
    });
    let queued = send(
        &rt,
        &backends,
        0,
        Method::GET,
        "/key/2",
        headers(&[(REQUEST_ID, "5".into())]),
    );
    wait_until("request 5 is queued", || stats(&backends, 0).queued == 2);

    let cancel = rt
        .block_on(send(
            &rt,
            &backends,
            0,
            Method::POST,
            "/cancel/5",
            HeaderMap::new(),
        ))
        .unwrap();
    assert_eq!(cancel.status, 200);
    assert_eq!(cancel.headers["tailguard-cancel"], "in-queue");
    let cancelled = rt.block_on(queued).unwrap();
    assert_eq!(cancelled.status, 409, "{:?}", cancelled.body);
    assert_eq!(rt.block_on(busy).unwrap().status, 200);

    // Again: gone, and remembered as cancelled.
    let again = rt
        .block_on(send(
            &rt,
            &backends,
            0,
            Method::POST,
            "/cancel/5",
            HeaderMap::new(),
        ))
        .unwrap();
    assert_eq!(again.headers["tailguard-cancel"], "not-here");
    let s = stats(&backends, 0);
    assert_eq!(
        (s.queued, s.started, s.cancelled_in_queue),
        (2, 1, 1),
        "{s:?}"
    );
    assert_eq!(s.cancels_received, 2);
    // Refused forms of the cancel endpoint.
    let wrong_method = rt
        .block_on(send(
            &rt,
            &backends,
            0,
            Method::GET,
            "/cancel/5",
            HeaderMap::new(),
        ))
        .unwrap();
    assert_eq!(wrong_method.status, 405);
    let bad_id = rt
        .block_on(send(
            &rt,
            &backends,
            0,
            Method::POST,
            "/cancel/five",
            HeaderMap::new(),
        ))
        .unwrap();
    assert_eq!(bad_id.status, 400);
    // The counters are on /metrics too.
    let metrics = rt
        .block_on(send(
            &rt,
            &backends,
            0,
            Method::GET,
            "/metrics",
            HeaderMap::new(),
        ))
        .unwrap();
    let text = String::from_utf8_lossy(&metrics.body).into_owned();
    assert!(
        text.contains("tailguard_backend_cancelled_in_queue_total 1\n"),
        "{text}"
    );
    assert!(
        text.contains("tailguard_backend_started_total 1\n"),
        "{text}"
    );
    rt.block_on(backends.stop());
}

#[test]
fn a_tied_pair_does_the_work_once_when_one_queue_is_busy() {
    let rt = runtime();
    let backends = rt
        .block_on(Backends::start(one_worker(2, 300), rt.executor()))
        .unwrap();
    let [a, b] = [backends.addrs()[0], backends.addrs()[1]];
    // Replica 0's worker is busy: its copy of the pair waits in its queue.
    let busy = send(&rt, &backends, 0, Method::GET, "/key/0", HeaderMap::new());
    wait_until("replica 0 is busy", || stats(&backends, 0).started == 1);
    let first = send(
        &rt,
        &backends,
        0,
        Method::GET,
        "/key/7",
        headers(&[(REQUEST_ID, "70".into()), (TIED_TO, format!("{b}/71"))]),
    );
    wait_until("copy 70 is queued on replica 0", || {
        stats(&backends, 0).queued == 2
    });
    let second = send(
        &rt,
        &backends,
        1,
        Method::GET,
        "/key/7",
        headers(&[(REQUEST_ID, "71".into()), (TIED_TO, format!("{a}/70"))]),
    );
    // Replica 1 starts copy 71 at once and cancels copy 70 in replica 0's queue, over HTTP.
    let won = rt.block_on(second).unwrap();
    assert_eq!(won.status, 200);
    assert_eq!(won.body, "/key/7 from replica 1");
    let lost = rt.block_on(first).unwrap();
    assert_eq!(lost.status, 409, "{:?}", lost.body);
    assert_eq!(rt.block_on(busy).unwrap().status, 200);
    wait_until("the cancel is acknowledged", || {
        stats(&backends, 1).cancels_sent == 1
    });
    let (s0, s1) = (stats(&backends, 0), stats(&backends, 1));
    // The key's work was done once: only the blocker and copy 71 started.
    assert_eq!(s0.started + s1.started, 2, "{s0:?} {s1:?}");
    assert_eq!((s0.cancelled_in_queue, s0.cancels_received), (1, 1));
    assert_eq!((s1.cancels_sent, s1.cancel_failures), (1, 0));
    rt.block_on(backends.stop());
}

#[test]
fn a_cancel_that_overtakes_its_copy_refuses_it_and_a_late_one_lets_both_run() {
    let rt = runtime();
    let backends = rt
        .block_on(Backends::start(one_worker(1, 50), rt.executor()))
        .unwrap();
    let early = rt
        .block_on(send(
            &rt,
            &backends,
            0,
            Method::POST,
            "/cancel/9",
            HeaderMap::new(),
        ))
        .unwrap();
    assert_eq!(early.headers["tailguard-cancel"], "not-here");
    let refused = rt
        .block_on(send(
            &rt,
            &backends,
            0,
            Method::GET,
            "/key/9",
            headers(&[(REQUEST_ID, "9".into())]),
        ))
        .unwrap();
    assert_eq!(refused.status, 409);
    // A copy that started is not stopped: the cancel is too late, and counted.
    let running = send(
        &rt,
        &backends,
        0,
        Method::GET,
        "/key/10",
        headers(&[(REQUEST_ID, "10".into())]),
    );
    wait_until("copy 10 starts", || stats(&backends, 0).started == 1);
    let late = rt
        .block_on(send(
            &rt,
            &backends,
            0,
            Method::POST,
            "/cancel/10",
            HeaderMap::new(),
        ))
        .unwrap();
    assert_eq!(late.headers["tailguard-cancel"], "too-late");
    assert_eq!(rt.block_on(running).unwrap().status, 200);
    let s = stats(&backends, 0);
    assert_eq!(
        (s.cancels_early, s.refused_cancelled, s.cancels_too_late),
        (1, 1, 1)
    );
    rt.block_on(backends.stop());
}

#[test]
fn malformed_tied_headers_are_refused_with_400() {
    let rt = runtime();
    let backends = rt
        .block_on(Backends::start(one_worker(1, 1), rt.executor()))
        .unwrap();
    let cases = [
        vec![(REQUEST_ID, "-1".to_string())],
        vec![(REQUEST_ID, "12x".to_string())],
        vec![(TIED_TO, "127.0.0.1:1/2".to_string())],
        vec![
            (REQUEST_ID, "1".to_string()),
            (TIED_TO, "nowhere/2".to_string()),
        ],
        vec![
            (REQUEST_ID, "1".to_string()),
            (TIED_TO, "127.0.0.1:1".to_string()),
        ],
        vec![
            (REQUEST_ID, "1".to_string()),
            (TIED_TO, "127.0.0.1:1/x".to_string()),
        ],
    ];
    for case in cases {
        let reply = rt
            .block_on(send(
                &rt,
                &backends,
                0,
                Method::GET,
                "/key/1",
                headers(&case),
            ))
            .unwrap();
        assert_eq!(reply.status, 400, "{case:?}: {:?}", reply.body);
    }
    // Not text at all.
    let mut binary = HeaderMap::new();
    binary.insert(REQUEST_ID, HeaderValue::from_bytes(b"\xff\xfe").unwrap());
    let reply = rt
        .block_on(send(&rt, &backends, 0, Method::GET, "/key/1", binary))
        .unwrap();
    assert_eq!(reply.status, 400);
    // Still serving.
    let ok = rt
        .block_on(send(
            &rt,
            &backends,
            0,
            Method::GET,
            "/key/1",
            HeaderMap::new(),
        ))
        .unwrap();
    assert_eq!(ok.status, 200);
    assert_eq!(stats(&backends, 0).started, 1);
    rt.block_on(backends.stop());
}

#[test]
fn the_gateway_backs_up_a_tied_copy_that_started_and_stalls_on_a_third_replica() {
    let rt = runtime();
    let backends = rt
        .block_on(Backends::start(one_worker(3, 1), rt.executor()))
        .unwrap();
    // Key 0's first copy goes to replica 0, which is idle and starts it at once, but takes
    // 3 s over it (a stall that began after it started); its cancel reaches replica 1 long
    // before the second copy, sent 200 ms later and refused there with a 409. That 409 tells
    // the gateway that the copy on replica 0 started: 10 ms later the backup goes to replica
    // 2, which answers in 1 ms.
    let slow = Profile {
        latency: LatencyDist::Fixed(Duration::from_secs(3)),
        workers: Some(1),
        ..Profile::default()
    };
    backends.set_profile(0, slow).unwrap();
    let gateway = tied_gateway(&rt, &backends, Duration::from_millis(200));
    let started = Instant::now();
    let report = rt.block_on(gateway.fanout(1));
    let took = started.elapsed();
    assert_eq!(report.ok, 1, "{report:?}");
    assert_eq!(report.served_by, vec![0, 0, 1], "{report:?}");
    assert!(
        took < Duration::from_secs(2),
        "the stalled copy was not waited for: {took:?}"
    );
    let backup = gateway.tied().unwrap().backup().unwrap().stats();
    assert_eq!((backup.sent, backup.won, backup.refused), (1, 1, 0));
    wait_until("the second copy was refused", || {
        stats(&backends, 1).refused_cancelled == 1
    });
    // The key's copies: the stalled one (runs on), the backup; the second did no work.
    assert_eq!(stats(&backends, 1).started, 0);
    assert_eq!(stats(&backends, 2).started, 1);
    rt.block_on(backends.stop());
}

#[test]
fn a_backup_that_loses_is_cancelled_in_its_replicas_queue() {
    let rt = runtime();
    let backends = rt
        .block_on(Backends::start(one_worker(3, 1), rt.executor()))
        .unwrap();
    // Replica 0 starts key 0's first copy at once and answers in 1 s; the second copy is
    // refused by replica 1 (409), so the backup goes to replica 2 after 10 ms, where it
    // waits behind a 3 s request. When replica 0 answers, the gateway cancels the backup.
    let slow = |ms| Profile {
        latency: LatencyDist::Fixed(Duration::from_millis(ms)),
        workers: Some(1),
        ..Profile::default()
    };
    backends.set_profile(0, slow(1000)).unwrap();
    // (Within the 5 s that `send` gives the blocker: a replica refuses work longer than the
    // caller's time left.)
    backends.set_profile(2, slow(3000)).unwrap();
    let blocker = send(&rt, &backends, 2, Method::GET, "/key/9", HeaderMap::new());
    wait_until("replica 2 is busy", || stats(&backends, 2).started == 1);
    let gateway = tied_gateway(&rt, &backends, Duration::from_millis(100));
    let report = rt.block_on(gateway.fanout(1));
    assert_eq!(report.ok, 1, "{report:?}");
    assert_eq!(report.served_by, vec![1, 0, 0], "{report:?}");
    let backup = gateway.tied().unwrap().backup().unwrap().stats();
    assert_eq!((backup.sent, backup.won), (1, 0));
    wait_until(
        "the losing backup is cancelled in replica 2's queue",
        || stats(&backends, 2).cancelled_in_queue == 1,
    );
    // Only the blocker started there: the backup did no work.
    assert_eq!(stats(&backends, 2).started, 1);
    drop(blocker);
    rt.block_on(backends.stop());
}

#[test]
fn the_gateway_backs_up_a_key_neither_of_whose_copies_starts_and_cancels_both() {
    let rt = runtime();
    let backends = rt
        .block_on(Backends::start(one_worker(3, 1), rt.executor()))
        .unwrap();
    // Replicas 0 and 1 are busy for 2 s each (their one worker serves a blocker), as if both
    // were stalled: key 0's tied copies wait in both queues, neither starts, so no 409 ever
    // says that one runs. 10 ms after the second copy went (100 ms after the first), the
    // gateway backs the key up on replica 2, which answers in 1 ms, and cancels both copies
    // in their queues.
    let busy = Profile {
        latency: LatencyDist::Fixed(Duration::from_secs(2)),
        workers: Some(1),
        ..Profile::default()
    };
    let mut blockers = Vec::new();
    for replica in [0, 1] {
        backends.set_profile(replica, busy.clone()).unwrap();
        blockers.push(send(
            &rt,
            &backends,
            replica,
            Method::GET,
            "/key/9",
            HeaderMap::new(),
        ));
        wait_until("the replica is busy", || {
            stats(&backends, replica).started == 1
        });
    }
    let gateway = tied_gateway(&rt, &backends, Duration::from_millis(100));
    let started = Instant::now();
    let report = rt.block_on(gateway.fanout(1));
    let took = started.elapsed();
    assert_eq!(report.ok, 1, "{report:?}");
    assert_eq!(report.served_by, vec![0, 0, 1], "{report:?}");
    assert!(
        took < Duration::from_millis(1500),
        "the stalled replicas were not waited for: {took:?}"
    );
    let backup = gateway.tied().unwrap().backup().unwrap().stats();
    assert_eq!(
        (
            backup.sent,
            backup.won,
            backup.sent_unstarted,
            backup.won_unstarted
        ),
        (1, 1, 1, 1)
    );
    for replica in [0, 1] {
        wait_until("the tied copy is cancelled in its queue", || {
            stats(&backends, replica).cancelled_in_queue == 1
        });
    }
    for blocker in blockers {
        assert!(rt.block_on(blocker).unwrap().status.is_success());
    }
    // Only the blockers started on replicas 0 and 1: the tied copies did no work.
    assert_eq!(stats(&backends, 0).started, 1);
    assert_eq!(stats(&backends, 1).started, 1);
    assert_eq!(stats(&backends, 2).started, 1);
    rt.block_on(backends.stop());
}
