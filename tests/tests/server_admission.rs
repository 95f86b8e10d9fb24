//! Admission control in the real server: an adaptive concurrency limit with priority from the
//! `tailguard-criticality` header sheds with 503 and Retry-After, lower classes first, and
//! `/metrics` shows the limit, the requests in flight and the refusals by reason and class.

mod server_support;

use std::thread;
use std::time::{Duration, Instant};

use server_support::{exchange, get, quick_config, TestServer};
use tailguard_demo::server::admission::AdmissionConfig;
use tailguard_demo::server::ServerConfig;

fn request(path: &str, class: Option<&str>) -> Vec<u8> {
    let header = class.map_or(String::new(), |c| format!("tailguard-criticality: {c}\r\n"));
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n{header}Connection: close\r\n\r\n").into_bytes()
}

fn metrics(server: &TestServer) -> String {
    exchange(server, &request("/metrics", None)).unwrap().body
}

/// The clients of the `/slow` requests.
type Clients = Vec<thread::JoinHandle<Option<(u16, String)>>>;

/// A server whose limit is 4 (so: sheddable calls may fill 2, default 3, critical 4) with
/// three default `/slow` requests in flight.
fn busy_server(monitor_only: bool) -> (TestServer, Clients) {
    let config = ServerConfig {
        admission: Some(AdmissionConfig {
            initial_limit: 4,
            max_limit: 4,
            monitor_only,
        }),
        ..quick_config()
    };
    let server = TestServer::start(config);
    let slow: Vec<_> = (0..3)
        .map(|_| {
            let mut c = server.connect();
            thread::spawn(move || get(&mut c, "/slow?ms=1500"))
        })
        .collect();
    let started = Instant::now();
    while !metrics(&server).contains("tailguard_admission_in_flight 3") {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{}",
            metrics(&server)
        );
        thread::sleep(Duration::from_millis(20));
    }
    (server, slow)
}

#[test]
fn sheds_lower_classes_first_with_503_and_retry_after() {
    let (server, slow) = busy_server(false);
    for class in [Some("sheddable"), None, Some("default")] {
        let answer = exchange(&server, &request("/gophers", class)).unwrap();
        assert_eq!(answer.status, 503, "{class:?}: {answer:?}");
        assert_eq!(answer.field("retry-after"), Some("1"));
        assert!(answer.body.contains("shed"), "{}", answer.body);
    }
    let critical = exchange(&server, &request("/gophers", Some("critical"))).unwrap();
    assert_eq!(critical.status, 200, "{critical:?}");
    let bad = exchange(&server, &request("/gophers", Some("urgent"))).unwrap();
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("tailguard-criticality"), "{}", bad.body);
    // Health and metrics are never shed.
    assert_eq!(
        exchange(&server, &request("/healthz", Some("sheddable")))
            .unwrap()
            .status,
        200
    );
    let text = metrics(&server);
    assert!(text.contains("tailguard_admission_limit 4"), "{text}");
    assert!(
        text.contains(r#"tailguard_admission_rejected_total{reason="shed",class="sheddable"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"tailguard_admission_rejected_total{reason="shed",class="default"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"tailguard_admission_rejected_total{reason="limit",class="critical"} 0"#)
    );
    for client in slow {
        assert_eq!(client.join().unwrap().map(|a| a.0), Some(200));
    }
    assert!(server.shutdown().drained());
}

#[test]
fn monitor_only_admits_and_counts() {
    let (server, slow) = busy_server(true);
    let answer = exchange(&server, &request("/gophers", Some("sheddable"))).unwrap();
    assert_eq!(answer.status, 200);
    let text = metrics(&server);
    assert!(
        text.contains("tailguard_admission_monitor_only 1"),
        "{text}"
    );
    assert!(
        text.contains(r#"tailguard_admission_rejected_total{reason="shed",class="sheddable"} 1"#),
        "{text}"
    );
    for client in slow {
        assert_eq!(client.join().unwrap().map(|a| a.0), Some(200));
    }
    assert!(server.shutdown().drained());
}

#[test]
fn a_bad_admission_limit_is_refused_naming_the_field() {
    let config = ServerConfig {
        admission: Some(AdmissionConfig {
            initial_limit: 50,
            max_limit: 10,
            monitor_only: false,
        }),
        ..quick_config()
    };
    assert_eq!(config.validate().unwrap_err().field(), "initial_limit");
}
