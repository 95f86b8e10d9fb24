//! The open-loop load generator against simulated replicas of known latency, over real sockets
//! on 127.0.0.1: counts, percentiles, the concurrency cap, and a tail it cannot hide.
//!
//! Real-time tests with generous bounds.

use std::time::Duration;

use tailguard_demo::backend::{BackendConfig, Backends, LatencyDist, Profile, Stalls};
use tailguard_demo::load::{self, LoadConfig, LoadReport};
use tailguard_demo::rt::Runtime;

fn run(profile: Profile, config: impl FnOnce(String) -> LoadConfig) -> LoadReport {
    let rt = Runtime::new(2.try_into().unwrap());
    let backends = rt
        .block_on(Backends::start(
            BackendConfig::uniform(1, profile),
            rt.executor(),
        ))
        .expect("backends start");
    let url = format!("http://{}/item", backends.addrs()[0]);
    let config = config(url);
    let report = rt
        .block_on(load::run(rt.executor(), &config))
        .expect("a valid load");
    let served = backends.stats()[0];
    // The backend saw exactly what the generator sent.
    assert_eq!(served.requests, report.sent, "{report}");
    rt.block_on(backends.stop());
    report
}

fn fixed(ms: u64) -> Profile {
    Profile {
        latency: LatencyDist::Fixed(Duration::from_millis(ms)),
        ..Profile::default()
    }
}

#[test]
fn counts_and_percentiles_match_a_backend_of_known_latency() {
    let report = run(fixed(20), |url| LoadConfig {
        concurrency: 64,
        ..LoadConfig::new(url, 100.0, Duration::from_secs(2))
    });
    assert_eq!(report.scheduled, 200, "{report}");
    assert_eq!(report.sent, 200, "{report}");
    assert_eq!(report.ok, 200, "{report}");
    assert_eq!((report.errors, report.dropped), (0, 0), "{report}");
    let l = report.latency;
    assert!((20.0..40.0).contains(&l.p50_ms), "{report}");
    assert!(l.p50_ms <= l.p90_ms && l.p90_ms <= l.p99_ms && l.p99_ms <= l.p999_ms);
    assert!(l.p999_ms <= l.max_ms * 1.01 && l.max_ms < 500.0, "{report}");
    assert!((1.9..3.0).contains(&report.elapsed_s), "{report}");
    assert!((70.0..=110.0).contains(&report.throughput), "{report}");
}

#[test]
fn requests_over_the_concurrency_cap_are_dropped_and_counted() {
    // 100 per second for 1 s, each taking 200 ms, at most 5 at once: about 5 per 200 ms get
    // through.
    let report = run(fixed(200), |url| LoadConfig {
        concurrency: 5,
        ..LoadConfig::new(url, 100.0, Duration::from_secs(1))
    });
    assert_eq!(report.scheduled, 100);
    assert_eq!(report.sent + report.dropped, 100, "{report}");
    assert!((15..=40).contains(&report.sent), "{report}");
    assert_eq!(report.ok, report.sent, "{report}");
    assert_eq!(
        report.errors, 0,
        "dropped requests are not errors: {report}"
    );
    assert!(report.latency.p50_ms >= 200.0, "{report}");
}

#[test]
fn stalls_show_in_the_tail() {
    // A 1 ms backend that pauses about every 500 ms for about 150 ms: a third of the arrivals
    // wait for a pause to end. Sent on schedule, they all count.
    let profile = Profile {
        stalls: Some(Stalls {
            every: Duration::from_millis(500),
            length: Duration::from_millis(150),
        }),
        ..fixed(1)
    };
    let report = run(profile, |url| LoadConfig {
        concurrency: 512,
        ..LoadConfig::new(url, 400.0, Duration::from_millis(1500))
    });
    assert_eq!(report.ok, 600, "{report}");
    let l = report.latency;
    assert!(l.p50_ms < 60.0, "{report}");
    assert!(l.p90_ms >= 40.0, "the stalls are hidden: {report}");
    assert!(l.max_ms >= 70.0, "{report}");
}

#[test]
fn errors_are_counted_by_kind() {
    let report = run(
        Profile {
            error_rate: 1.0,
            ..fixed(1)
        },
        |url| LoadConfig::new(url, 50.0, Duration::from_millis(400)),
    );
    assert_eq!(report.sent, 20);
    assert_eq!(report.ok, 0);
    assert_eq!(report.errors, 20);
    assert_eq!(report.error_kinds.get("status_500"), Some(&20), "{report}");

    let rt = Runtime::new(1.try_into().unwrap());
    // Nothing listens on a port just released.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = LoadConfig::new(format!("http://{addr}/"), 50.0, Duration::from_millis(200));
    let report = rt.block_on(load::run(rt.executor(), &config)).unwrap();
    assert_eq!(report.error_kinds.get("connect"), Some(&10), "{report}");
    assert_eq!(
        report.latency.max_ms, 0.0,
        "refused calls have no latency: {report}"
    );
}

#[test]
fn an_interrupted_run_reports_what_fell_due_and_waits_only_briefly() {
    for (latency_ms, answered) in [(5, true), (10_000, false)] {
        let rt = Runtime::new(2.try_into().unwrap());
        let backends = rt
            .block_on(Backends::start(
                BackendConfig::uniform(1, fixed(latency_ms)),
                rt.executor(),
            ))
            .expect("backends start");
        let url = format!("http://{}/item", backends.addrs()[0]);
        // 20 s asked for, stopped after 300 ms.
        let config = LoadConfig::new(url, 200.0, Duration::from_secs(20));
        let started = std::time::Instant::now();
        let stop = async {
            smol::Timer::after(Duration::from_millis(300)).await;
        };
        let report = rt
            .block_on(load::run_until(rt.executor(), &config, stop))
            .expect("a valid load");
        let took = started.elapsed();
        assert!(report.interrupted, "{report}");
        assert!(
            took < load::DRAIN_ON_INTERRUPT + Duration::from_secs(4),
            "{took:?}: {report}"
        );
        assert!((10..4000).contains(&report.scheduled), "{report}");
        assert_eq!(
            report.sent,
            report.ok + report.errors + report.unanswered,
            "{report}"
        );
        if answered {
            assert!(report.ok > 0 && report.unanswered == 0, "{report}");
        } else {
            // Requests stuck in a 10 s call are cut after the drain, and counted.
            assert!(report.unanswered > 0 && report.ok == 0, "{report}");
            assert!(report.to_string().contains("unanswered when interrupted"));
        }
        assert!(report.to_string().contains("INTERRUPTED"), "{report}");
        drop(backends);
    }
}
