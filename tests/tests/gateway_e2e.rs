//! The gateway end to end over real sockets on 127.0.0.1: simulated replicas, the server with
//! `GET /fanout` and `GET /metrics`, and the pooled client driving it.
//!
//! - a replica goes down: its breaker opens, fan-outs still succeed through the others; it
//!   comes back: the breaker closes and traffic returns;
//! - a stalled replica: hedges win; a slow one: the deadline answers partially;
//! - `/metrics` parses as Prometheus text and its values are sane;
//! - shutdown under load loses no accepted request.
//!
//! Real-time tests: short limits, generous bounds.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tailguard::breaker::State;
use tailguard_demo::backend::BackendConfig;
use tailguard_demo::client::{ClientConfig, Pool};
use tailguard_demo::gateway::{BreakerSettings, HedgeMode};
use tailguard_demo::load::{self, LoadConfig};

mod gateway_support;

use gateway_support::{fixed, n, Stack};

#[test]
fn a_replica_outage_opens_its_breaker_and_closing_brings_traffic_back() {
    let stack = Stack::start(BackendConfig::uniform(3, fixed(2)), |c| {
        c.breaker = BreakerSettings {
            failure_rate: 0.5,
            window: 10,
            minimum_calls: 5,
            open_duration: Duration::from_millis(300),
            half_open_calls: 2,
        };
        c.hedge = HedgeMode::Off;
    });
    let keys = 6; // two per replica
    for _ in 0..5 {
        let report = stack.fanout(keys);
        assert_eq!(n(&report["ok"]), keys as u64, "{report}");
        assert_eq!(n(&report["served_by"]["1"]), 2, "{report}");
    }
    let breaker = |i| stack.gateway.breaker(i).unwrap().state();
    assert_eq!(breaker(1), State::Closed);

    // Down: failures trip replica 1's breaker; every fan-out is still answered in full.
    stack.backends.set_down(1, true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while breaker(1) != State::Open {
        assert!(Instant::now() < deadline, "the breaker never opened");
        let report = stack.fanout(keys);
        assert_eq!(n(&report["ok"]), keys as u64, "{report}");
    }
    let report = stack.fanout(keys);
    assert_eq!(n(&report["ok"]), keys as u64, "{report}");
    assert_eq!(
        n(&report["served_by"]["1"]),
        0,
        "traffic moved away: {report}"
    );
    assert!(n(&report["breaker_rejections"]) >= 2, "{report}");
    assert_eq!(report["partial"], false);
    // The other breakers stayed closed.
    assert_eq!((breaker(0), breaker(2)), (State::Closed, State::Closed));

    // Back: after the open duration, probes succeed and the breaker closes.
    stack.backends.set_down(1, false).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let report = stack.fanout(keys);
        assert_eq!(n(&report["ok"]), keys as u64, "{report}");
        if breaker(1) == State::Closed && n(&report["served_by"]["1"]) == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the breaker never closed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let replica = &stack.gateway.stats().replicas[1];
    assert!(
        replica.transitions(State::Closed, State::Open) >= 1,
        "{replica:?}"
    );
    assert!(
        replica.transitions(State::Open, State::HalfOpen) >= 1,
        "{replica:?}"
    );
    assert!(
        replica.transitions(State::HalfOpen, State::Closed) >= 1,
        "{replica:?}"
    );
    assert!(replica.rejected >= 2 && replica.failed >= 1, "{replica:?}");
    assert!(stack.shutdown().drained());
}

#[test]
fn hedges_win_against_a_stalled_replica_and_the_deadline_answers_partially() {
    let mut backends = BackendConfig::uniform(3, fixed(2));
    backends.profiles[2] = fixed(600);
    // Hedging after 20 ms: replica 2's keys are answered by replica 0 in about 22 ms.
    let hedged = Stack::start(backends.clone(), |c| {
        c.hedge = HedgeMode::Fixed(Duration::from_millis(20));
        c.hedge_budget_ratio = 1.0;
        c.call_timeout = Duration::from_secs(2);
        c.fanout_deadline = Duration::from_secs(2);
    });
    let started = Instant::now();
    let report = hedged.fanout(6);
    let took = started.elapsed();
    assert_eq!(n(&report["ok"]), 6, "{report}");
    assert_eq!(n(&report["hedges_won"]), 2, "{report}");
    assert!(n(&report["hedges_sent"]) >= 2, "{report}");
    assert_eq!(n(&report["served_by"]["2"]), 0, "{report}");
    assert!(
        took < Duration::from_millis(500),
        "hedging did not help: {took:?}"
    );
    assert_eq!(hedged.gateway.stats().hedge.hedges_won, 2);
    hedged.shutdown();

    // No hedging, a 150 ms deadline: replica 2's keys are missing, the rest is answered.
    // Replica 2 is silent here (it accepts, never answers): a replica as slow as the one above
    // would now refuse at once, told by the tailguard-timeout header that the fan-out has
    // 150 ms for its 600 ms (see `a_replica_refuses_at_once_what_the_fanout_cannot_wait_for`).
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let partial = Stack::start(backends, |c| {
        c.replicas[2] = silent_addr;
        c.hedge = HedgeMode::Off;
        c.call_timeout = Duration::from_secs(2);
        c.fanout_deadline = Duration::from_millis(150);
    });
    let started = Instant::now();
    let report = partial.fanout(6);
    let took = started.elapsed();
    assert_eq!(n(&report["ok"]), 4, "{report}");
    assert_eq!(n(&report["timed_out"]), 2, "{report}");
    assert_eq!(report["partial"], true);
    assert_eq!(report["values"][2], serde_json::Value::Null);
    assert_eq!(report["values"][0], "/key/0 from replica 0");
    assert!(
        took >= Duration::from_millis(150) && took < Duration::from_millis(500),
        "{took:?}"
    );
    partial.shutdown();
    drop(silent);
}

#[test]
fn a_replica_refuses_at_once_what_the_fanout_cannot_wait_for() {
    // Replica 2 takes 600 ms; the fan-out has 150 ms. Each call tells its replica the time it
    // has left (tailguard-timeout): replica 2 answers 504 at once, doing nothing, and the key's
    // retry reads it from the next replica well before the deadline.
    let mut backends = BackendConfig::uniform(3, fixed(2));
    backends.profiles[2] = fixed(600);
    let stack = Stack::start(backends, |c| {
        c.hedge = HedgeMode::Off;
        c.call_timeout = Duration::from_secs(2);
        c.fanout_deadline = Duration::from_millis(150);
    });
    let started = Instant::now();
    let report = stack.fanout(6);
    let took = started.elapsed();
    assert_eq!(n(&report["ok"]), 6, "{report}");
    assert_eq!(n(&report["retries"]), 2, "{report}");
    assert_eq!(n(&report["served_by"]["2"]), 0, "{report}");
    assert!(took < Duration::from_millis(150), "{took:?} {report}");
    let replica = stack.backends.stats()[2];
    assert_eq!(
        (replica.deadline_refused, replica.ok),
        (2, 0),
        "{replica:?}"
    );
    stack.shutdown();
}

/// A parsed `/metrics` document: samples by name and sorted labels.
struct Metrics {
    samples: HashMap<(String, Vec<(String, String)>), f64>,
}

impl Metrics {
    /// Parses the Prometheus text format strictly enough to catch mistakes: every sample's
    /// family has `# HELP` and `# TYPE` before it, names and labels are well formed, values
    /// are numbers, and no series appears twice.
    fn parse(text: &str) -> Metrics {
        let mut samples = HashMap::new();
        let mut typed: HashMap<String, String> = HashMap::new();
        let mut helped = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                helped.push(rest.split(' ').next().unwrap().to_string());
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
                assert!(["counter", "gauge", "summary"].contains(&kind), "{line}");
                assert!(
                    helped.last().map(String::as_str) == Some(name),
                    "TYPE before HELP: {line}"
                );
                typed.insert(name.to_string(), kind.to_string());
                continue;
            }
            assert!(
                !line.starts_with('#') && !line.is_empty(),
                "stray line {line:?}"
            );
            let (series, value) = line.rsplit_once(' ').expect("series value");
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
            };
            let (name, labels) = match series.split_once('{') {
                None => (series, Vec::new()),
                Some((name, rest)) => {
                    let body = rest.strip_suffix('}').expect("closing brace");
                    let mut labels: Vec<(String, String)> = body
                        .split("\",")
                        .map(|pair| {
                            let (k, v) = pair.split_once("=\"").expect("label=\"value\"");
                            (k.to_string(), v.trim_end_matches('"').to_string())
                        })
                        .collect();
                    labels.sort();
                    (name, labels)
                }
            };
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                "bad name {name}"
            );
            let family = name
                .strip_suffix("_sum")
                .or_else(|| name.strip_suffix("_count"))
                .filter(|base| typed.get(*base).map(String::as_str) == Some("summary"))
                .unwrap_or(name);
            assert!(typed.contains_key(family), "no TYPE for {name}");
            let fresh = samples.insert((name.to_string(), labels), value).is_none();
            assert!(fresh, "duplicate series {series}");
        }
        Metrics { samples }
    }

    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut key: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        key.sort();
        *self
            .samples
            .get(&(name.to_string(), key))
            .unwrap_or_else(|| panic!("no series {name}{labels:?}"))
    }
}

#[test]
fn metrics_expose_the_series_with_sane_values() {
    let stack = Stack::start(BackendConfig::uniform(3, fixed(5)), |c| {
        c.hedge = HedgeMode::Adaptive(0.9);
        c.hedge_min_samples = 10;
    });
    let fanouts = 20;
    for _ in 0..fanouts {
        assert_eq!(n(&stack.fanout(4)["ok"]), 4);
    }
    assert_eq!(stack.get("/gophers").0, 200);
    assert_eq!(stack.get("/fanout?keys=0").0, 400);
    let (status, text) = stack.get("/metrics");
    assert_eq!(status, 200);
    let m = Metrics::parse(&text);

    let requests = |route: &str, status: &str| {
        m.get(
            "tailguard_http_requests_total",
            &[("route", route), ("status", status)],
        )
    };
    assert_eq!(requests("fanout", "200"), fanouts as f64);
    assert_eq!(requests("fanout", "400"), 1.0);
    assert_eq!(requests("hello", "200"), 1.0);
    // Fan-out latency: at least the backend's 5 ms, quantiles in order, count and sum agree.
    let q = |p: &str| {
        m.get(
            "tailguard_http_request_duration_seconds",
            &[("route", "fanout"), ("quantile", p)],
        )
    };
    assert!(q("0.5") >= 0.005 && q("0.5") < 1.0, "p50 {}", q("0.5"));
    assert!(q("0.5") <= q("0.9") && q("0.9") <= q("0.99") && q("0.99") <= q("0.999"));
    let count = m.get(
        "tailguard_http_request_duration_seconds_count",
        &[("route", "fanout")],
    );
    let sum = m.get(
        "tailguard_http_request_duration_seconds_sum",
        &[("route", "fanout")],
    );
    assert_eq!(count, fanouts as f64 + 1.0);
    assert!(sum >= 0.005 * fanouts as f64 && sum < count, "sum {sum}");

    assert_eq!(m.get("tailguard_fanouts_total", &[]), fanouts as f64);
    let keys = |outcome| m.get("tailguard_fanout_keys_total", &[("outcome", outcome)]);
    assert_eq!(keys("ok"), 4.0 * fanouts as f64);
    assert_eq!(keys("failed") + keys("timed_out"), 0.0);
    assert_eq!(m.get("tailguard_retries_total", &[]), 0.0);
    assert_eq!(m.get("tailguard_retry_budget_refusals_total", &[]), 0.0);
    let primaries = m.get("tailguard_hedge_primaries_total", &[]);
    let sent = m.get("tailguard_hedges_sent_total", &[]);
    let won = m.get("tailguard_hedges_won_total", &[]);
    assert_eq!(primaries, 4.0 * fanouts as f64);
    assert!(won <= sent && sent <= primaries, "{won} {sent} {primaries}");
    m.get("tailguard_hedge_budget_refusals_total", &[]);
    let delay = m.get("tailguard_hedge_delay_seconds", &[]);
    assert!((0.001..1.0).contains(&delay), "hedge delay {delay}");

    let mut calls = 0.0;
    for replica in ["0", "1", "2"] {
        let ok = m.get(
            "tailguard_backend_calls_total",
            &[("replica", replica), ("outcome", "ok")],
        );
        assert!(ok >= 10.0, "replica {replica}: {ok} calls");
        calls += ok;
        let states: f64 = ["closed", "open", "half_open", "forced_open", "disabled"]
            .iter()
            .map(|state| {
                m.get(
                    "tailguard_breaker_state",
                    &[("replica", replica), ("state", state)],
                )
            })
            .sum();
        assert_eq!(states, 1.0, "exactly one state per replica");
        assert_eq!(
            m.get(
                "tailguard_breaker_state",
                &[("replica", replica), ("state", "closed")]
            ),
            1.0
        );
        let open = m.get(
            "tailguard_backend_connections_open",
            &[("replica", replica)],
        );
        // At most the pool size, now and ever. Zero is possible: a hedge that lost its race
        // closes its connection, and with one fan-out at a time a replica may have had only
        // that one.
        let pool = stack.gateway.config().pool_size as f64;
        let peak = m.get(
            "tailguard_backend_connections_peak",
            &[("replica", replica)],
        );
        assert!(
            (0.0..=peak).contains(&open) && (1.0..=pool).contains(&peak),
            "{open} connections to {replica}, {peak} at most"
        );
        // Nothing was stopped by the gateway's own limits.
        assert_eq!(
            m.get(
                "tailguard_backend_calls_total",
                &[("replica", replica), ("outcome", "unsent")],
            ),
            0.0
        );
    }
    // Every key was answered by one call; a call that lost a hedge race was cancelled, not
    // counted.
    assert!(
        calls >= keys("ok") && calls <= primaries + sent,
        "{calls} calls"
    );
    // This client's one kept-alive connection.
    assert_eq!(m.get("tailguard_connections_open", &[]), 1.0);
    assert_eq!(m.get("tailguard_connections_accepted_total", &[]), 1.0);
    assert!(!text.contains("tailguard_breaker_transitions_total{"));
    stack.shutdown();
}

#[test]
fn shutdown_during_load_loses_no_accepted_request() {
    // 100 ms fan-outs at 200 per second: about 20 in flight when the shutdown comes, and 80
    // calls (40 on replica 0, which has two of the four keys), more on a loaded machine where
    // calls take longer: far more than the default pools carry (16 per replica). Every
    // fan-out must be answered 200, so the pools get room to spare.
    // The fan-out deadline and call timeout are generous too: on a starved machine a fan-out's
    // time left can fall below the replicas' 100 ms of work, which they then refuse at once (a
    // 502 here), and this test is about shutdown, not deadlines.
    let stack = Stack::start(BackendConfig::uniform(3, fixed(100)), |c| {
        c.pool_size = 256;
        c.fanout_deadline = Duration::from_secs(4);
        c.call_timeout = Duration::from_secs(4);
    });
    let url = format!("http://{}/fanout?keys=4", stack.addr);
    let config = LoadConfig {
        concurrency: 64,
        timeout: Duration::from_secs(5),
        ..LoadConfig::new(url, 200.0, Duration::from_millis(1500))
    };
    let ex = stack.rt.executor().clone();
    let load = stack.rt.spawn(async move { load::run(&ex, &config).await });
    std::thread::sleep(Duration::from_millis(700));
    let stopping = Instant::now();
    let Stack {
        rt,
        stop,
        serving,
        one_at_a_time: _one_at_a_time,
        ..
    } = stack;
    stop.trigger();
    let served = rt.block_on(serving.unwrap());
    let stopped_in = stopping.elapsed();
    let report = rt.block_on(load).expect("load config");

    assert!(served.drained(), "{served}");
    assert!(
        stopped_in < Duration::from_secs(2),
        "shutdown took {stopped_in:?}"
    );
    // Every request the server answered reached the client as a 200, and nothing else did.
    assert_eq!(report.ok, served.requests, "{report}\n{served}");
    assert!(report.ok >= 50, "{report}");
    assert_eq!(report.sent, report.ok + report.errors, "{report}");
    assert_eq!(report.dropped, 0, "{report}");
    // The rest were refused: sent after the listener closed, never accepted.
    for kind in report.error_kinds.keys() {
        assert!(kind == "connect" || kind == "request", "{report}");
    }
    assert!(
        report.errors > 0,
        "the load went on after the shutdown: {report}"
    );
}

#[test]
fn a_forced_shutdown_cancels_fanouts_in_flight_and_releases_everything() {
    // Calls take 2 s; the shutdown waits 300 ms, then drops the fan-out.
    let deadline = Duration::from_millis(300);
    let stack = Stack::start_with(BackendConfig::uniform(2, fixed(2000)), deadline, |c| {
        c.hedge = HedgeMode::Off;
        c.call_timeout = Duration::from_secs(5);
        c.fanout_deadline = Duration::from_secs(5);
    });
    let Stack {
        rt,
        backends,
        gateway,
        addr,
        stop,
        serving,
        one_at_a_time: _one_at_a_time,
        ..
    } = stack;
    let client = Pool::new(addr, ClientConfig::default(), rt.executor().clone());
    let pending = rt.spawn(async move { client.get("/fanout?keys=4").await });
    let deadline = Instant::now() + Duration::from_secs(5);
    while backends.stats().iter().map(|s| s.in_flight).sum::<u64>() < 4 {
        assert!(Instant::now() < deadline, "the calls never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let stopping = Instant::now();
    stop.trigger();
    let served = rt.block_on(serving.unwrap());
    assert_eq!(served.forced, 1, "{served}");
    assert!(
        stopping.elapsed() < Duration::from_secs(2),
        "{:?}",
        stopping.elapsed()
    );
    assert!(
        rt.block_on(pending).is_err(),
        "the forced request got no answer"
    );

    // The dropped fan-out cancelled its calls: their connections closed, their breaker permits
    // were released uncounted, and the replicas saw the clients go.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stats = gateway.stats();
        let open: u64 = stats.replicas.iter().map(|r| r.connections_open).sum();
        let backend_busy: u64 = backends.stats().iter().map(|s| s.in_flight).sum();
        if open == 0 && backend_busy == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{open} connections, {backend_busy} calls left"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    for i in 0..2 {
        let metrics = gateway.breaker(i).unwrap().metrics();
        assert_eq!((metrics.calls, metrics.failures), (0, 0), "{metrics:?}");
        assert_eq!(metrics.state, State::Closed);
    }
    let stats = gateway.stats();
    assert_eq!(stats.fanouts, 0, "the fan-out never finished");
    assert!(stats
        .replicas
        .iter()
        .all(|r| r.ok + r.failed + r.timed_out == 0));
}
