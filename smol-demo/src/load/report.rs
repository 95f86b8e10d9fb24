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
}

impl LatencySummary {
    /// The summary of `histogram` (all zeros if it is empty).
    pub fn of(histogram: &LatencyHistogram) -> Self {
        let ms = |d: Option<Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1e3);
        LatencySummary {
            p50_ms: ms(histogram.quantile(0.5)),
            p90_ms: ms(histogram.quantile(0.9)),
            p99_ms: ms(histogram.quantile(0.99)),
            p999_ms: ms(histogram.quantile(0.999)),
            max_ms: ms(histogram.max()),
            mean_ms: ms(histogram.mean()),
        }
    }
}

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
    /// Requests that fell due: `⌊rate × duration⌋`.
    pub scheduled: u64,
    /// Requests sent.
    pub sent: u64,
    /// Requests not sent because `concurrency` were in flight (not counted in `errors`).
    pub dropped: u64,
    /// Responses with a 2xx status.
    pub ok: u64,
    /// Sent requests that did not get a 2xx: other statuses, timeouts, connection failures.
    pub errors: u64,
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
    /// The report as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} at {} req/s for {:.1} s (at most {} in flight)",
            self.url, self.rate, self.duration_s, self.concurrency
        )?;
        writeln!(
            f,
            "  requests   {} due, {} sent, {} ok, {} errors, {} dropped (not sent: {} already in flight)",
            self.scheduled, self.sent, self.ok, self.errors, self.dropped, self.concurrency
        )?;
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
        write!(
            f,
            "  latency    p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms  (from the scheduled send time)",
            l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms
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
            error_kinds: [("status_503".to_string(), 1)].into(),
            elapsed_s: 1.0,
            throughput: 8.0,
            latency: LatencySummary::default(),
            histogram: Arc::new(LatencyHistogram::new()),
        };
        let text = report.to_string();
        assert!(
            text.contains("2 dropped (not sent: 2 already in flight)"),
            "{text}"
        );
        assert!(text.contains("status_503 1"), "{text}");
        assert!(report.to_json().contains("\"dropped\":2"));
    }
}
