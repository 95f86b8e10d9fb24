//! The gateway's per-replica overload control over real sockets: an adaptive concurrency limit
//! that shrinks in front of a slow replica and sheds its calls to the others, client-side
//! throttling of a replica that answers 503, and both in `/metrics` (with the policies' own
//! series, from an installed `PolicyMetrics`, as `tailguard-demo serve` installs it).

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use tailguard_demo::backend::{BackendConfig, Profile};
use tailguard_demo::client::Limits;
use tailguard_demo::gateway::{BreakerSettings, GatewayConfig, HedgeMode, ReplicaLimit};
use tailguard_demo::metrics::PolicyMetrics;

mod gateway_support;

use gateway_support::{fixed, n, Stack};

/// Three replicas, the one in the middle `middle`, the others answering in 2 ms.
fn replicas(middle: Profile) -> BackendConfig {
    let mut config = BackendConfig::uniform(3, fixed(2));
    config.profiles[1] = middle;
    config
}

/// Breakers that never open within a test: what moves calls away is the overload control.
fn patient_breakers(config: &mut GatewayConfig) {
    config.breaker = BreakerSettings {
        failure_rate: 1.0,
        window: 1000,
        minimum_calls: 1000,
        ..BreakerSettings::default()
    };
    config.hedge = HedgeMode::Off;
}

/// `GET /fanout?keys=N` with a `tailguard-criticality` header: the report.
fn fanout_as(stack: &Stack, keys: usize, class: &'static str) -> serde_json::Value {
    let mut headers = HeaderMap::new();
    headers.insert("tailguard-criticality", HeaderValue::from_static(class));
    let limits = Limits {
        pool_wait: Duration::from_secs(5),
        total: Duration::from_secs(5),
    };
    let path = format!("/fanout?keys={keys}");
    let reply = stack
        .rt
        .block_on(stack.client.send_headed_within(
            limits,
            Method::GET,
            &path,
            Bytes::new(),
            Some(&headers),
        ))
        .expect("GET /fanout");
    serde_json::from_slice(&reply.body).expect("JSON")
}

/// `/metrics` as text.
fn metrics(stack: &Stack) -> String {
    let (status, text) = stack.get("/metrics");
    assert_eq!(status, 200);
    text
}

/// The value of the sample `series` (name and labels, exactly as written), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.parse().expect("a number"))
}

/// Every family is declared once (a second `# TYPE` for a name is invalid exposition).
fn assert_families_unique(text: &str) {
    let mut seen = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = line.split_whitespace().nth(2).unwrap();
        *seen.entry(name).or_insert(0) += 1;
    }
    let repeated: Vec<_> = seen.iter().filter(|(_, &count)| count > 1).collect();
    assert!(repeated.is_empty(), "families declared twice: {repeated:?}");
}

#[test]
fn a_slow_replicas_limit_shrinks_and_its_calls_go_to_the_others() {
    PolicyMetrics::install().expect("the only recorder");
    // Replica 1 answers after 300 ms, past the 200 ms call timeout: every call to it is a
    // drop for its AIMD limit.
    let stack = Stack::start(replicas(fixed(300)), |config| {
        patient_breakers(config);
        config.replica_limit = ReplicaLimit::Aimd;
        config.replica_limit_initial = 8;
    });
    let initial = stack.gateway.limiter(1).unwrap().limit();
    // Ten keys of each fan-out are replica 1's first: those it admits time out (and are read
    // from the next replica on a retry), and its limit comes down.
    let mut last = serde_json::Value::Null;
    for _ in 0..8 {
        last = fanout_as(&stack, 30, "critical");
    }
    let limit = stack.gateway.limiter(1).unwrap().limit();
    assert!(limit < initial, "limit {limit}, from {initial}");
    // Once it is down, replica 1 refuses most of its keys at once and they go to the next
    // replica: the fan-out reads (nearly) everything.
    let refused = n(&last["limit_rejections"]);
    assert!(refused >= 5, "replica 1 refused {refused} calls: {last}");
    assert!(n(&last["ok"]) >= 27, "{last}");
    assert!(
        n(&last["served_by"]["2"]) > n(&last["served_by"]["0"]),
        "{last}"
    );
    // The healthy replicas kept their limits.
    for healthy in [0, 2] {
        let limit = stack.gateway.limiter(healthy).unwrap().limit();
        assert!(limit >= initial, "replica {healthy}: limit {limit}");
    }
    // The breaker never heard of the refusals: it only counted calls that were sent.
    let view = &stack.gateway.stats().replicas[1];
    assert_eq!(view.rejected, 0);

    let text = metrics(&stack);
    assert_families_unique(&text);
    assert_eq!(
        sample(&text, r#"tailguard_replica_limit{replica="1"}"#),
        Some(f64::from(stack.gateway.limiter(1).unwrap().limit())),
        "{text}"
    );
    assert!(sample(&text, r#"tailguard_replica_limit_in_flight{replica="0"}"#).is_some());
    let critical = sample(
        &text,
        r#"tailguard_replica_rejections_total{replica="1",reason="limit",class="critical"}"#,
    )
    .expect("refusals by reason and class");
    assert!(
        critical > 0.0,
        "refusals counted in the caller's class: {text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"tailguard_replica_rejections_total{replica="1",reason="limit",class="sheddable"}"#
        ),
        Some(0.0)
    );
    // The policies' own series, named: the breakers per replica, the hedging policy.
    assert!(
        text.contains(r#"tailguard_breaker_state{name="replica-1",host="",state="closed"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"tailguard_hedge_primaries_total{name="gateway"}"#),
        "{text}"
    );
}

#[test]
fn a_replica_answering_503_is_throttled_locally() {
    PolicyMetrics::install().expect("the only recorder");
    // Replica 1 serves one request at a time and answers 503 to the rest.
    let overloaded = Profile {
        capacity: Some(1),
        ..fixed(20)
    };
    let stack = Stack::start(replicas(overloaded), |config| {
        patient_breakers(config);
        config.throttle_k = Some(2.0);
    });
    let mut ok = 0;
    for _ in 0..10 {
        ok += n(&stack.fanout(30)["ok"]);
    }
    assert!(ok >= 10 * 30 * 9 / 10, "{ok} keys read of {}", 10 * 30);
    let throttle = stack.gateway.throttle(1).unwrap();
    let now = std::time::Instant::now();
    assert!(
        throttle.rejection_probability_at(now) > 0.0,
        "replica 1 rejects most calls: the throttle refuses some locally"
    );
    for healthy in [0, 2] {
        let probability = stack
            .gateway
            .throttle(healthy)
            .unwrap()
            .rejection_probability_at(now);
        assert_eq!(probability, 0.0, "replica {healthy} accepts everything");
    }
    let text = metrics(&stack);
    assert_families_unique(&text);
    let refused = sample(
        &text,
        r#"tailguard_replica_rejections_total{replica="1",reason="throttle",class="default"}"#,
    )
    .expect("the throttle's refusals");
    assert!(refused > 0.0, "{text}");
    assert_eq!(
        sample(
            &text,
            r#"tailguard_replica_rejections_total{replica="0",reason="throttle",class="default"}"#
        ),
        Some(0.0)
    );
    let probability = sample(
        &text,
        r#"tailguard_replica_throttle_probability{replica="1"}"#,
    )
    .expect("the probability");
    assert!(probability > 0.0, "{text}");
    // Only the throttle is on: no limit series.
    assert!(!text.contains("tailguard_replica_limit{"), "{text}");
}

#[test]
fn a_criticality_that_is_not_a_class_is_refused_naming_the_header() {
    let stack = Stack::start(replicas(fixed(2)), |_| {});
    let mut headers = HeaderMap::new();
    headers.insert("tailguard-criticality", HeaderValue::from_static("urgent"));
    let limits = Limits {
        pool_wait: Duration::from_secs(5),
        total: Duration::from_secs(5),
    };
    let reply = stack
        .rt
        .block_on(stack.client.send_headed_within(
            limits,
            Method::GET,
            "/fanout?keys=3",
            Bytes::new(),
            Some(&headers),
        ))
        .expect("GET /fanout");
    assert_eq!(reply.status, 400);
    assert!(String::from_utf8_lossy(&reply.body).contains("tailguard-criticality"));
    // Nothing was read for it.
    assert_eq!(stack.gateway.stats().fanouts, 0);
    // A class is taken, and the keys are read.
    assert_eq!(n(&fanout_as(&stack, 3, "sheddable")["ok"]), 3);
}

#[test]
fn gradient2_brings_a_replicas_limit_down_when_it_slows() {
    let stack = Stack::start(replicas(fixed(2)), |config| {
        patient_breakers(config);
        config.replica_limit = ReplicaLimit::Gradient2;
        // At most the ten keys each replica gets at once: a limit learns only from samples
        // taken while at least half of it is in use.
        config.replica_limit_initial = 6;
        config.replica_limit_max = 10;
    });
    // Every replica at 2 ms: the limits learn the no-load latency.
    for _ in 0..10 {
        fanout_as(&stack, 30, "critical");
    }
    let before = stack.gateway.limiter(1).unwrap().limit();
    // Replica 1 now takes 30 times as long (still within the call timeout).
    stack.backends.set_profile(1, fixed(60)).unwrap();
    let mut moved = 0;
    for _ in 0..10 {
        moved += n(&fanout_as(&stack, 30, "critical")["limit_rejections"]);
    }
    let slow = stack.gateway.limiter(1).unwrap().limit();
    assert!(slow < before, "replica 1's limit {slow}, before {before}");
    // Below the ten keys it is offered, it refuses some, which the others read.
    assert!(moved > 0, "no call moved off replica 1");
}

#[test]
fn with_every_replica_at_its_limit_a_key_fails_locally_and_nothing_more_is_sent() {
    // One call in flight per replica, and every replica 20 ms: three keys at a time get in.
    let stack = Stack::start(BackendConfig::uniform(3, fixed(20)), |config| {
        patient_breakers(config);
        config.replica_limit = ReplicaLimit::Aimd;
        config.replica_limit_initial = 1;
        config.replica_limit_max = 1;
    });
    let report = fanout_as(&stack, 12, "critical");
    let ok = n(&report["ok"]);
    let refused = n(&report["errors"]["replica_limit"]);
    assert!(refused > 0, "{report}");
    assert_eq!(ok + refused, 12, "{report}");
    // Refused keys are not retried, and what was refused reached no replica and no breaker.
    assert_eq!(n(&report["retries"]), 0, "{report}");
    let sent: u64 = stack.backends.stats().iter().map(|r| r.requests).sum();
    assert_eq!(sent, ok, "{report}");
    for view in stack.gateway.stats().replicas {
        assert_eq!(
            (view.failed, view.rejected, view.unsent),
            (0, 0, 0),
            "{view:?}"
        );
        assert_eq!(
            stack.gateway.breaker(view.index).unwrap().metrics().calls,
            view.ok,
            "only the calls sent are in the breaker's window"
        );
    }
}
