//! What a live herd run measured, as a table and as JSON.

use std::fmt::Write as _;

use serde::Serialize;

use super::config::{HerdMode, LiveHerdConfig};

/// One window of the timeline after the backend came back.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Window {
    /// The window's start, in milliseconds after the backend came back.
    pub from_ms: f64,
    /// Calls that ended in it.
    pub calls: u64,
    /// ... of which succeeded.
    pub ok: u64,
}

impl Window {
    /// The share of calls that succeeded (1 without calls).
    pub fn success(&self) -> f64 {
        if self.calls == 0 {
            1.0
        } else {
            self.ok as f64 / self.calls as f64
        }
    }
}

/// What one mode measured.
#[derive(Debug, Clone, Serialize)]
pub struct HerdRun {
    /// The mode.
    pub mode: HerdMode,
    /// User requests sent.
    pub requests: u64,
    /// ... that got an answer in the end.
    pub requests_ok: u64,
    /// ... that gave up (attempts, deadline or budget spent).
    pub requests_failed: u64,
    /// ... of which gave up because the retry budget was spent.
    pub budget_refusals: u64,
    /// ... still retrying when the run ended (cancelled, counted in neither).
    pub requests_cut: u64,
    /// Calls made, retries included.
    pub calls: u64,
    /// Calls that succeeded.
    pub calls_ok: u64,
    /// Calls that got `503` (over capacity).
    pub rejected: u64,
    /// Calls refused (backend down).
    pub refused: u64,
    /// Calls that failed otherwise.
    pub other_errors: u64,
    /// `rejected + refused + other_errors`: calls that did no useful work.
    pub wasted_calls: u64,
    /// From the backend coming back until the success rate stayed high, in milliseconds;
    /// `None` if it never did within the run.
    pub recovery_ms: Option<f64>,
    /// Requests that arrived after the backend came back and ended (their latency samples).
    pub after_samples: u64,
    /// The median latency of those requests, in ms (like every percentile here, `null` without
    /// at least 10 samples beyond it: [the rule](crate::percentile)).
    pub after_p50_ms: Option<f64>,
    /// Their 90th percentile, in ms (needs 100 samples).
    pub after_p90_ms: Option<f64>,
    /// Their 99th percentile, in ms (needs 1,000 samples).
    pub after_p99_ms: Option<f64>,
    /// The success-rate timeline after the backend came back.
    pub timeline: Vec<Window>,
}

/// Both modes, and the setting.
#[derive(Debug, Clone, Serialize)]
pub struct LiveHerdReport {
    /// The runs, in [`HerdMode::ALL`] order.
    pub runs: Vec<HerdRun>,
}

impl LiveHerdReport {
    /// The run of `mode`.
    pub fn get(&self, mode: HerdMode) -> Option<&HerdRun> {
        self.runs.iter().find(|r| r.mode == mode)
    }

    /// One JSON object keyed by mode.
    pub fn to_json(&self) -> serde_json::Value {
        let mut object = serde_json::Map::new();
        for run in &self.runs {
            let mut value = serde_json::to_value(run).expect("plain data serializes");
            if let Some(map) = value.as_object_mut() {
                map.remove("mode");
            }
            object.insert(run.mode.name().to_string(), value);
        }
        serde_json::Value::Object(object)
    }

    /// The table's rows, with their header line.
    pub fn rows(&self, config: &LiveHerdConfig) -> String {
        let mut rows = vec![[
            "clients",
            "recovery",
            "wasted",
            "(503, refused)",
            "req ok",
            "failed",
            "cut",
            "after: n",
            "p50",
            "p90",
            "p99",
        ]
        .map(String::from)
        .to_vec()];
        let ms = |v: Option<f64>| v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.0} ms"));
        for run in &self.runs {
            let recovery = match run.recovery_ms {
                Some(ms) => format!("{ms:.0} ms"),
                None => format!("> {:.1} s", config.after.as_secs_f64()),
            };
            rows.push(vec![
                run.mode.describe(config),
                recovery,
                run.wasted_calls.to_string(),
                format!("({}, {})", run.rejected, run.refused),
                run.requests_ok.to_string(),
                run.requests_failed.to_string(),
                run.requests_cut.to_string(),
                run.after_samples.to_string(),
                ms(run.after_p50_ms),
                ms(run.after_p90_ms),
                ms(run.after_p99_ms),
            ]);
        }
        crate::tail_at_scale::measured::align(&rows)
    }

    /// The table, with a heading that states the setting.
    pub fn to_table(&self, config: &LiveHerdConfig) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "The herd, live: {} requests/s to a backend of {} slots x {:?} ({:.0} calls/s), down \
             {:?} (refusing connections) after {:?}, watched {:?} after it came back",
            config.rate,
            config.capacity,
            config.service,
            config.capacity as f64 / config.service.as_secs_f64(),
            config.outage,
            config.warmup,
            config.after
        );
        let _ = writeln!(
            out,
            "Retries: up to {} attempts within {:?}, backoff {:?} doubling to {:?}; recovery = \
             until every {:?} window has >= {:.0}% of calls ok; cut = still retrying when the \
             run ended; after = latency of the n requests that arrived after the return (n/a: \
             fewer than 10 samples beyond the percentile)",
            config.max_attempts,
            config.max_elapsed,
            config.base_delay,
            config.max_delay,
            config.window,
            config.high * 100.0
        );
        out.push_str(&self.rows(config));
        for line in crate::herd::summary::live_sentences(self, config) {
            let _ = writeln!(out, "{line}");
        }
        out
    }
}
