//! What a load run did and saw, as text or JSON.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tailguard::latency::LatencyHistogram;

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct LatencySummary {
    /// The median.
    pub p50_ms: f64,
    /// The 90th percentile.
    pub p90_ms: f64,
    /// The 99th percentile.
    pub p99_ms: f64,
    /// The 99.9th percentile.
    pub p999_ms: f64,
    /// The largest (exact).
    pub max_ms: f64,
    /// The mean.
    pub mean_ms: f64,
    /// How many latencies the percentiles are drawn from (when 0, every value above is 0 and
    /// means nothing: the JSON then has `null`s).
    pub samples: u64,
}

impl LatencySummary {
    /// The summary of `histogram` (all zeros, and `samples` 0, if it is empty).
    pub fn of(histogram: &LatencyHistogram) -> Self {
        let ms = |d: Option<Duration>| d.map_or(0.0, crate::ms::of);
        LatencySummary {
            p50_ms: ms(histogram.quantile(0.5)),
            p90_ms: ms(histogram.quantile(0.9)),
            p99_ms: ms(histogram.quantile(0.99)),
            p999_ms: ms(histogram.quantile(0.999)),
            max_ms: ms(histogram.max()),
            mean_ms: ms(histogram.mean()),
            samples: histogram.count(),
        }
    }
}

/// The percentiles of a [`LatencySummary`], by their JSON names.
const PERCENTILES: [(&str, f64); 4] = [
    ("p50_ms", 0.5),
    ("p90_ms", 0.9),
    ("p99_ms", 0.99),
    ("p999_ms", 0.999),
];

/// What a run did and saw.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// The URL.
    pub url: String,
    /// The rate asked for, per second.
    pub rate: f64,
    /// The sending time asked for, in seconds.
    pub duration_s: f64,
    /// The cap on requests in flight.
    pub concurrency: usize,
    /// Requests that fell due: `⌊rate × duration⌋` (fewer if `interrupted`).
    pub scheduled: u64,
    /// Requests sent.
    pub sent: u64,
    /// Requests not sent because `concurrency` were in flight (not counted in `errors`).
    pub dropped: u64,
    /// Responses with a 2xx status.
    pub ok: u64,
    /// Sent requests that did not get a 2xx: other statuses, timeouts, connection failures.
    pub errors: u64,
    /// Sent requests neither answered nor failed when the report was taken: only after an
    /// interruption, which waits only briefly for them.
    pub unanswered: u64,
    /// The run was stopped (Ctrl-C) before every request fell due: the counts and latencies
    /// cover the part that ran, and `scheduled` the requests that fell due until then.
    pub interrupted: bool,
    /// The errors by kind: `status_503`, `timeout`, `connect`, `connect_timeout`, `request`,
    /// `body`.
    pub error_kinds: BTreeMap<String, u64>,
    /// Wall time from the first due time to the last answer, in seconds.
    pub elapsed_s: f64,
    /// Requests answered (any status) per second of `elapsed_s`.
    pub throughput: f64,
    /// Latency from the due time, over responses of any status and timeouts.
    pub latency: LatencySummary,
    /// Every latency behind `latency`, for finer quantiles or a CDF plot (not in the JSON).
    #[serde(skip)]
    pub histogram: Arc<LatencyHistogram>,
}

impl LoadReport {
    /// The report as a JSON value: numbers rounded to 6 significant digits; the latency figures
    /// `null` when there is no latency to take them from, and each percentile `null` when the
    /// samples do not support it (the [`percentile`](crate::percentile) rule: 10 beyond it).
    pub fn to_json_value(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self)
            .unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }));
        let samples = self.latency.samples;
        if let Some(latency) = value.get_mut("latency").and_then(|l| l.as_object_mut()) {
            for (name, v) in latency.iter_mut() {
                let unsupported = PERCENTILES
                    .iter()
                    .any(|&(key, q)| key == name && !crate::percentile::supported(q, samples));
                if (samples == 0 && name != "samples") || unsupported {
                    *v = serde_json::Value::Null;
                }
            }
        }
        round_floats(&mut value);
        value
    }

    /// The report as one line of JSON (see [`to_json_value`](Self::to_json_value)).
    pub fn to_json(&self) -> String {
        self.to_json_value().to_string()
    }

    /// No request got a 2xx answer: the run measured nothing a user would call a success.
    pub fn total_failure(&self) -> bool {
        self.ok == 0
    }
}

/// Rounds every floating-point number in `value` to 6 significant digits, so that JSON says
/// `12.9766` rather than `12.976602999999999`: measured times are not more precise than that.
///
/// ```
/// use tailguard_demo::load::round_floats;
///
/// let mut value = serde_json::json!({"p50_ms": 12.976602999999999, "n": [3, 0.1234567891]});
/// round_floats(&mut value);
/// assert_eq!(value.to_string(), r#"{"n":[3,0.123457],"p50_ms":12.9766}"#);
/// ```
pub fn round_floats(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Number(n) if n.is_f64() => {
            if let Some(rounded) = n
                .as_f64()
                .and_then(|x| format!("{x:.5e}").parse::<f64>().ok())
                .and_then(serde_json::Number::from_f64)
            {
                *n = rounded;
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(round_floats),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(round_floats),
        _ => {}
    }
}

/// `value` with its numbers rounded for printing (see [`round_floats`]).
pub fn tidy(mut value: serde_json::Value) -> serde_json::Value {
    crate::load::round_floats(&mut value);
    value
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} at {} req/s for {:.1} s (at most {} in flight)",
            self.url, self.rate, self.duration_s, self.concurrency
        )?;
        if self.interrupted {
            writeln!(
                f,
                "  INTERRUPTED after {:.2} s: what follows covers only the requests due until then",
                self.elapsed_s
            )?;
        }
        write!(
            f,
            "  requests   {} due, {} sent, {} ok, {} errors",
            self.scheduled, self.sent, self.ok, self.errors
        )?;
        if self.unanswered > 0 {
            write!(f, ", {} unanswered when interrupted", self.unanswered)?;
        }
        if self.dropped == 0 {
            writeln!(f, ", none dropped")?;
        } else {
            writeln!(
                f,
                ", {} dropped (not sent because the cap of {} in flight was reached)",
                self.dropped, self.concurrency
            )?;
        }
        if !self.error_kinds.is_empty() {
            let kinds: Vec<String> = self
                .error_kinds
                .iter()
                .map(|(kind, n)| format!("{kind} {n}"))
                .collect();
            writeln!(f, "  errors     {}", kinds.join(", "))?;
        }
        writeln!(
            f,
            "  throughput {:.1} answers/s over {:.2} s",
            self.throughput, self.elapsed_s
        )?;
        let l = &self.latency;
        if l.samples == 0 {
            return write!(
                f,
                "  latency    no samples: no request got an answer (nor timed out)"
            );
        }
        let cell = |value: f64, q: f64| {
            if crate::percentile::supported(q, l.samples) {
                format!("{value:.2} ms")
            } else {
                crate::percentile::not_available(l.samples)
            }
        };
        write!(
            f,
            "  latency    p50 {}  p90 {}  p99 {}  p99.9 {}  max {:.2} ms  (from the scheduled send time)",
            cell(l.p50_ms, 0.5),
            cell(l.p90_ms, 0.9),
            cell(l.p99_ms, 0.99),
            cell(l.p999_ms, 0.999),
            l.max_ms
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_says_what_dropped_means() {
        let report = LoadReport {
            url: "http://x/".into(),
            rate: 10.0,
            duration_s: 1.0,
            concurrency: 2,
            scheduled: 10,
            sent: 8,
            dropped: 2,
            ok: 7,
            errors: 1,
            unanswered: 0,
            interrupted: false,
            error_kinds: [("status_503".to_string(), 1)].into(),
            elapsed_s: 1.0,
            throughput: 8.0,
            latency: LatencySummary::default(),
            histogram: Arc::new(LatencyHistogram::new()),
        };
        let text = report.to_string();
        assert!(
            text.contains("2 dropped (not sent because the cap of 2 in flight was reached)"),
            "{text}"
        );
        assert!(
            text.contains("latency    no samples"),
            "an empty histogram is not 0 ms: {text}"
        );
        let json = report.to_json_value();
        assert!(json["latency"]["p50_ms"].is_null(), "{json}");
        assert_eq!(json["latency"]["samples"], 0, "{json}");
        let none_dropped = LoadReport {
            dropped: 0,
            ..report.clone()
        };
        assert!(none_dropped.to_string().contains("none dropped"));
        assert!(text.contains("status_503 1"), "{text}");
        assert!(report.to_json().contains("\"dropped\":2"));
    }

    #[test]
    fn percentiles_the_samples_cannot_support_are_not_reported() {
        let histogram = LatencyHistogram::new();
        for ms in 1..=150u64 {
            histogram.record(std::time::Duration::from_millis(ms));
        }
        let report = LoadReport {
            url: "http://x/".into(),
            rate: 150.0,
            duration_s: 1.0,
            concurrency: 256,
            scheduled: 150,
            sent: 150,
            dropped: 0,
            ok: 150,
            errors: 0,
            unanswered: 0,
            interrupted: false,
            error_kinds: BTreeMap::new(),
            elapsed_s: 1.0,
            throughput: 150.0,
            latency: LatencySummary::of(&histogram),
            histogram: Arc::new(histogram),
        };
        // 150 samples support p50 (needs 20) and p90 (100), not p99 (1,000) nor p99.9 (10,000).
        let json = report.to_json_value();
        let latency = &json["latency"];
        assert!(latency["p50_ms"].as_f64().unwrap() > 0.0, "{json}");
        assert!(latency["p90_ms"].as_f64().unwrap() > 0.0, "{json}");
        assert!(latency["p99_ms"].is_null(), "{json}");
        assert!(latency["p999_ms"].is_null(), "{json}");
        assert_eq!(latency["samples"], 150, "{json}");
        assert!(latency["max_ms"].as_f64().unwrap() > 0.0, "{json}");
        let text = report.to_string();
        assert!(
            text.contains("p99 n/a (150 samples)  p99.9 n/a (150 samples)"),
            "{text}"
        );
        assert!(!text.contains("p90 n/a"), "{text}");
    }
}
