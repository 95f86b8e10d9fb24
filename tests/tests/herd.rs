//! The herd study's findings, asserted: deterministic, virtual time, a second or two in debug.

use tailguard_demo::herd::{run, HerdConfig, HerdReport, Strategy};

fn report(clients: u32, seed: u64) -> HerdReport {
    run(&HerdConfig::new(clients, seed))
}

fn assert_study_orderings(report: &HerdReport, clients: u32) {
    let [none, exponential, full, equal, decorrelated] = Strategy::ALL.map(|s| *report.get(s));
    let n = f64::from(clients);
    for (strategy, result) in &report.contention {
        // Every client writes at least once; a client fails only when another succeeded since
        // its read, so at most n - 1 times.
        assert!(
            result.calls >= n && result.calls <= n * n,
            "{strategy:?}: {result:?}"
        );
        assert!(result.completion_ms > 0.0);
    }
    // Exponential backoff without jitter is slowest, by far: clients that collided keep
    // colliding, round after round, with ever longer waits.
    let others = [none, full, equal, decorrelated]
        .iter()
        .map(|r| r.completion_ms)
        .fold(0.0, f64::max);
    assert!(
        exponential.completion_ms > 5.0 * others,
        "exponential {exponential:?} vs slowest other {others}"
    );
    // Full and equal jitter do far less work than no jitter at all.
    for jittered in [full, equal] {
        assert!(
            jittered.calls < 0.6 * exponential.calls,
            "{jittered:?} vs {exponential:?}"
        );
        assert!(
            jittered.calls < 0.6 * none.calls,
            "{jittered:?} vs {none:?}"
        );
    }
    // Decorrelated jitter is in between on calls.
    assert!(
        decorrelated.calls > full.calls.max(equal.calls),
        "{decorrelated:?}"
    );
    assert!(
        decorrelated.calls < exponential.calls.min(none.calls),
        "{decorrelated:?}"
    );
    // And of the jittered strategies, equal jitter takes longest (the study's "loser").
    assert!(equal.completion_ms > full.completion_ms.max(decorrelated.completion_ms));
}

#[test]
fn the_jitter_study_orderings_hold() {
    assert_study_orderings(&report(100, 1), 100);
}

#[test]
fn the_orderings_do_not_depend_on_the_seed() {
    assert_study_orderings(&report(100, 42), 100);
}

#[test]
fn the_same_seed_gives_the_same_numbers() {
    let a = report(30, 7);
    let b = report(30, 7);
    assert_eq!(a.to_json(), b.to_json());
    let c = report(30, 8);
    assert_ne!(a.to_json(), c.to_json());
}

#[test]
fn a_budget_per_layer_stops_the_retry_storm() {
    let storm = report(10, 1).storm;
    // Three attempts at each of five layers: 3^5 = 243 backend calls per request.
    assert_eq!(storm.worst_case_amplification, 243.0);
    assert_eq!(storm.without_budget.amplification, 243.0);
    assert_eq!(
        storm.without_budget.backend_calls,
        243 * u64::from(storm.requests)
    );
    // With 10% per layer: about 1.1^5 ≈ 1.61, plus the small floors.
    assert!(storm.with_budget.amplification > 1.0);
    assert!(
        storm.with_budget.amplification < 1.1f64.powi(5) + 0.1,
        "{:?}",
        storm.with_budget
    );
}

#[test]
fn the_json_is_keyed_by_strategy() {
    let json = report(10, 1).to_json();
    for strategy in Strategy::ALL {
        let entry = &json[strategy.name()];
        assert!(entry["calls"].as_f64().unwrap() >= 10.0);
        assert!(entry["completion_ms"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(json["storm"]["without_budget"]["amplification"], 243.0);
}

#[test]
fn the_conclusions_are_drawn_from_the_tables() {
    let config = HerdConfig::new(100, 1);
    let report = run(&config);
    let text = report.to_table(&config);
    // The budget wins the storm, by the ratio the table shows.
    let storm = &report.storm;
    let ratio = storm.without_budget.backend_calls as f64 / storm.with_budget.backend_calls as f64;
    assert!(
        text.contains(&format!(
            "Retry storm, backend calls: 10% budget per layer was best, {}; {ratio:.0}x lower \
             than no budget ({})",
            storm.with_budget.backend_calls, storm.without_budget.backend_calls
        )),
        "{text}"
    );
    // Exponential backoff without jitter is never named best for completion time.
    assert!(text.contains("Contention, completion: "), "{text}");
    assert!(
        !text.contains("Contention, completion: exponential was"),
        "{text}"
    );
}
