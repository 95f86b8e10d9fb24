//! The live herd over real sockets: clients without jitter or budget against clients with full
//! jitter and a retry budget, both against a backend coming back from an outage with limited
//! capacity.
//!
//! What is asserted is robust on a loaded machine: the budget caps retries, so the second kind
//! of client wastes far fewer calls (the first wastes several calls per request that arrived
//! during the outage, by construction of its retry schedule); the first kind meets a backlog
//! when the backend returns and takes longer to recover. Exact times are not asserted.

use tailguard_demo::herd::live::{self, HerdMode, LiveHerdConfig};
use tailguard_demo::rt::Runtime;

#[test]
fn jitter_and_a_budget_waste_fewer_calls_and_recover_sooner() {
    let config = LiveHerdConfig::short();
    let rt = Runtime::new(2.try_into().unwrap());
    let report = rt
        .block_on(live::run(rt.executor(), &config, |_| {}))
        .expect("the experiment runs");
    let text = report.to_table(&config);
    eprintln!("{text}");
    // The conclusions come from the table, one per measure, and percentiles need samples:
    // 375 requests after the return support p90, not p99.
    for measure in [
        "Recovery: ",
        "Wasted calls: ",
        "Requests failed: ",
        "p90 after the return: ",
    ] {
        assert!(text.contains(measure), "{measure}: {text}");
    }
    assert!(text.contains("p99: n/a"), "{text}");
    let json = report.to_json();
    for mode in ["no_jitter", "jitter_budget"] {
        assert!(json[mode]["after_p99_ms"].is_null(), "{json}");
        assert!(json[mode]["after_p90_ms"].is_f64(), "{json}");
    }
    let herd = report.get(HerdMode::NoJitter).unwrap();
    let calm = report.get(HerdMode::JitterBudget).unwrap();
    let expected =
        (config.rate * (config.warmup + config.outage + config.after).as_secs_f64()) as u64;
    for run in [herd, calm] {
        assert_eq!(run.requests, expected, "{run:?}");
        assert_eq!(
            run.requests_ok + run.requests_failed + run.requests_cut,
            run.requests
        );
        assert!(run.calls >= run.requests - run.requests_cut, "{run:?}");
        assert_eq!(run.calls, run.calls_ok + run.wasted_calls);
        assert_eq!(
            run.wasted_calls,
            run.rejected + run.refused + run.other_errors
        );
        // The outage was seen: connections were refused.
        assert!(run.refused > 0, "{run:?}");
        assert_eq!(run.timeline.len(), 15);
    }
    // Without a budget nothing is refused by it, and retrying long enough serves almost all
    // the requests that finished. (Not of all requests: on a loaded machine the herd's backlog
    // can still be retrying when the run ends, and those requests are cut, not failed.)
    assert_eq!(herd.budget_refusals, 0);
    assert!(
        herd.requests_ok * 100 >= (herd.requests - herd.requests_cut) * 90,
        "{herd:?}"
    );
    // With one, requests during the outage gave up on the budget.
    assert!(calm.budget_refusals > 0, "{calm:?}");
    // The finding.
    assert!(
        calm.wasted_calls * 3 < herd.wasted_calls * 2,
        "wasted: {} with jitter + budget vs {} without",
        calm.wasted_calls,
        herd.wasted_calls
    );
    let herd_recovery = herd.recovery_ms.unwrap_or(f64::INFINITY);
    let calm_recovery = calm
        .recovery_ms
        .expect("jitter + budget recovers within the run");
    assert!(herd_recovery > 0.0, "the herd meets a backlog: {herd:?}");
    assert!(
        calm_recovery <= herd_recovery,
        "{calm_recovery} vs {herd_recovery}"
    );
}
