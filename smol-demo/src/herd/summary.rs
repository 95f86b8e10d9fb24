//! The herd's conclusions, drawn from its tables: for each measure, which clients did best and
//! whether the simpler ones did as well (see [`verdict`](crate::verdict)).

use super::live::{HerdRun, LiveHerdConfig, LiveHerdReport};
use super::{HerdReport, Strategy};
use crate::verdict::{judge, sentence, Candidate, Metric, Noise, Verdict};

/// Live runs on a shared machine: counts within 10 % or 5, times within 10 % or 20 ms, count as
/// the same.
const COUNTS: Noise = Noise {
    relative: 0.10,
    absolute: 5.0,
};
const TIMES: Noise = Noise {
    relative: 0.10,
    absolute: 20.0,
};
/// The virtual-time studies are deterministic means over trials: within 5 %.
const SIM: Noise = Noise {
    relative: 0.05,
    absolute: 0.0,
};

/// One measure over modes listed simplest first: judged, then written as a sentence.
fn judged(
    name: &str,
    unit: &str,
    decimals: usize,
    noise: Noise,
    tie: &str,
    modes: Vec<Candidate>,
) -> String {
    let values: Vec<Option<f64>> = modes.iter().map(|c| c.value).collect();
    let verdict = if values.iter().all(Option::is_none) {
        Verdict::NoData
    } else {
        judge(&values, |i, j| {
            noise.tied(values[i].unwrap_or(0.0), values[j].unwrap_or(0.0))
        })
    };
    let metric = Metric {
        name,
        unit,
        decimals,
        tie,
    };
    sentence(&metric, &modes, verdict)
}

fn candidate(name: String, value: Option<f64>, note: String) -> Candidate {
    Candidate {
        name,
        value,
        note,
        cost: None,
    }
}

/// The live herd's sentences: recovery, wasted calls, failed requests, and the latency after
/// the return at each percentile its samples support.
pub fn live_sentences(report: &LiveHerdReport, config: &LiveHerdConfig) -> Vec<String> {
    let after_ms = crate::ms::of(config.after);
    let per_run = |f: &dyn Fn(&HerdRun) -> (Option<f64>, String)| -> Vec<Candidate> {
        report
            .runs
            .iter()
            .map(|run| {
                let (value, note) = f(run);
                candidate(run.mode.describe(config), value, note)
            })
            .collect()
    };
    let mut out = vec![
        judged(
            "Recovery",
            " ms",
            0,
            TIMES,
            "within noise",
            per_run(&|run| match run.recovery_ms {
                Some(ms) => (Some(ms), String::new()),
                // Not recovered by the end: at least the whole watch.
                None => (Some(after_ms), " or more (not recovered by the end)".into()),
            }),
        ),
        judged(
            "Wasted calls",
            "",
            0,
            COUNTS,
            "within noise",
            per_run(&|run| (Some(run.wasted_calls as f64), String::new())),
        ),
        judged(
            "Requests failed",
            "",
            0,
            COUNTS,
            "within noise",
            per_run(&|run| (Some(run.requests_failed as f64), String::new())),
        ),
    ];
    let mut unsupported = Vec::new();
    for (label, q, get) in [
        (
            "p50",
            0.5,
            (|r: &HerdRun| r.after_p50_ms) as fn(&HerdRun) -> Option<f64>,
        ),
        ("p90", 0.9, |r: &HerdRun| r.after_p90_ms),
        ("p99", 0.99, |r: &HerdRun| r.after_p99_ms),
    ] {
        if report.runs.iter().all(|r| get(r).is_none()) {
            unsupported.push(q);
            continue;
        }
        out.push(judged(
            &format!("{label} after the return"),
            " ms",
            0,
            TIMES,
            "within noise",
            per_run(&|run| (get(run), String::new())),
        ));
    }
    let fewest = report
        .runs
        .iter()
        .map(|r| r.after_samples)
        .min()
        .unwrap_or(0);
    if let Some(text) = crate::tail_at_scale::measured::unsupported_sentence(
        &unsupported,
        fewest,
        "after the return",
    ) {
        out.push(text);
    }
    out
}

/// The virtual-time studies' sentences: the strategies' calls and completion times, and the
/// storm's backend calls with and without a budget.
pub fn sim_sentences(report: &HerdReport) -> Vec<String> {
    let strategies = |f: fn(&super::ContentionResult) -> f64| -> Vec<Candidate> {
        Strategy::ALL
            .iter()
            .map(|&s| candidate(s.name().into(), Some(f(report.get(s))), String::new()))
            .collect()
    };
    let storm = &report.storm;
    vec![
        judged(
            "Contention, calls",
            "",
            1,
            SIM,
            "within 5%",
            strategies(|r| r.calls),
        ),
        judged(
            "Contention, completion",
            " ms",
            1,
            SIM,
            "within 5%",
            strategies(|r| r.completion_ms),
        ),
        judged(
            "Retry storm, backend calls",
            "",
            0,
            SIM,
            "within 5%",
            vec![
                candidate(
                    "no budget".into(),
                    Some(storm.without_budget.backend_calls as f64),
                    String::new(),
                ),
                candidate(
                    format!("{}% budget per layer", storm.budget_ratio * 100.0),
                    Some(storm.with_budget.backend_calls as f64),
                    String::new(),
                ),
            ],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::live::HerdMode;
    use super::*;

    fn run(mode: HerdMode, recovery_ms: Option<f64>, wasted: u64, failed: u64) -> HerdRun {
        HerdRun {
            mode,
            requests: 625,
            requests_ok: 625 - failed,
            requests_failed: failed,
            budget_refusals: 0,
            requests_cut: 0,
            calls: 2000,
            calls_ok: 2000 - wasted,
            rejected: wasted / 2,
            refused: wasted - wasted / 2,
            other_errors: 0,
            wasted_calls: wasted,
            recovery_ms,
            after_samples: 375,
            after_p50_ms: Some(20.0),
            after_p90_ms: Some(if recovery_ms.is_some() { 25.0 } else { 300.0 }),
            after_p99_ms: None,
            timeline: Vec::new(),
        }
    }

    #[test]
    fn the_herd_loses_where_it_loses_and_wins_where_it_wins() {
        let config = LiveHerdConfig::short();
        let report = LiveHerdReport {
            runs: vec![
                run(HerdMode::NoJitter, None, 1214, 0),
                run(HerdMode::JitterBudget, Some(0.0), 428, 253),
            ],
        };
        let s = live_sentences(&report, &config);
        assert_eq!(
            s[0],
            "Recovery: full jitter + 20% budget was best, 0 ms; lower than no jitter, no budget \
             (1500 ms or more (not recovered by the end))."
        );
        assert!(
            s[1].starts_with("Wasted calls: full jitter + 20% budget was best, 428; 2.8x lower"),
            "{s:?}"
        );
        // The budget's price: the simpler clients failed fewer requests.
        assert!(
            s[2].starts_with("Requests failed: no jitter, no budget was best, 0;"),
            "{s:?}"
        );
        // The medians are equal: the simpler clients did as well.
        assert!(
            s[3].starts_with(
                "p50 after the return: no jitter, no budget was best, 20 ms; about the same"
            ),
            "{s:?}"
        );
        assert!(
            s[4].starts_with("p90 after the return: full jitter"),
            "{s:?}"
        );
        assert!(
            s[5].starts_with("p99: n/a, 375 samples after the return are too few"),
            "{s:?}"
        );
    }

    #[test]
    fn a_simpler_client_that_does_as_well_is_named() {
        let config = LiveHerdConfig::short();
        let report = LiveHerdReport {
            runs: vec![
                run(HerdMode::NoJitter, Some(100.0), 400, 0),
                run(HerdMode::JitterBudget, Some(90.0), 390, 10),
            ],
        };
        let s = live_sentences(&report, &config);
        assert!(
            s[0].contains("but the simpler no jitter, no budget did as well within noise"),
            "{s:?}"
        );
        assert!(
            s[1].contains("but the simpler no jitter, no budget did as well within noise"),
            "{s:?}"
        );
    }
}
