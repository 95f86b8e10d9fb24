//! Metrics in the Prometheus text format, and the server's per-route request metrics.
//!
//! [`PromText`] writes the [text exposition format] (version 0.0.4): a `# HELP` and a `# TYPE`
//! line per metric family, then one `name{label="value"} number` line per series. Summaries
//! ([`PromText::summary`]) come from a [`LatencyHistogram`]: the `quantile` series at 0.5,
//! 0.9, 0.99 and 0.999, then `_sum` and `_count`, in seconds.
//!
//! [`HttpMetrics`] counts a server's requests by route and status and keeps a latency
//! histogram per route; recording is a clock read and two relaxed atomic increments.
//!
//! ```
//! use std::time::Duration;
//! use tailguard_demo::metrics::{HttpMetrics, PromText, Route};
//!
//! let metrics = HttpMetrics::new();
//! metrics.record(Route::Hello, 200, Duration::from_millis(3));
//! let mut out = PromText::new();
//! metrics.write(&mut out);
//! let text = out.finish();
//! assert!(text.contains("tailguard_http_requests_total{route=\"hello\",status=\"200\"} 1\n"));
//! ```
//!
//! [text exposition format]: https://prometheus.io/docs/instrumenting/exposition_formats/

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tailguard::latency::LatencyHistogram;

mod policies;
pub use self::policies::PolicyMetrics;
use crate::wire_deadline::DeadlineCounts;

/// The quantiles every summary reports.
pub const QUANTILES: [f64; 4] = [0.5, 0.9, 0.99, 0.999];

/// A Prometheus text-format document being written.
#[derive(Debug, Default)]
pub struct PromText {
    out: String,
}

/// The kind of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (resets on restart).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Quantiles, a sum and a count.
    Summary,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Summary => "summary",
        }
    }
}

impl PromText {
    /// An empty document.
    pub fn new() -> Self {
        PromText::default()
    }

    /// Starts a metric family: its `# HELP` and `# TYPE` lines.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let help = help.replace('\\', r"\\").replace('\n', r"\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
    }

    /// One series: `name{labels} value`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Into<f64>) {
        self.out.push_str(name);
        write_labels(&mut self.out, labels, None);
        let _ = writeln!(self.out, " {}", Number(value.into()));
    }

    /// A family with a single unlabelled series.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: impl Into<f64>) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// The series of one summary (call [`family`](PromText::family) with [`Kind::Summary`]
    /// first): a `quantile` series per [`QUANTILES`] (omitted while empty), `_sum` and
    /// `_count`, in seconds.
    pub fn summary(&mut self, name: &str, labels: &[(&str, &str)], histogram: &LatencyHistogram) {
        for q in QUANTILES {
            if let Some(value) = histogram.quantile(q) {
                self.out.push_str(name);
                write_labels(&mut self.out, labels, Some(q));
                let _ = writeln!(self.out, " {}", Number(value.as_secs_f64()));
            }
        }
        let count = histogram.count();
        let sum = histogram
            .mean()
            .map_or(0.0, |mean| mean.as_secs_f64() * count as f64);
        let _ = write!(self.out, "{name}_sum");
        write_labels(&mut self.out, labels, None);
        let _ = writeln!(self.out, " {}", Number(sum));
        let _ = write!(self.out, "{name}_count");
        write_labels(&mut self.out, labels, None);
        let _ = writeln!(self.out, " {count}");
    }

    /// The document.
    pub fn finish(self) -> String {
        self.out
    }
}

fn write_labels(out: &mut String, labels: &[(&str, &str)], quantile: Option<f64>) {
    if labels.is_empty() && quantile.is_none() {
        return;
    }
    out.push('{');
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{name}=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str(r"\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str(r"\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    if let Some(q) = quantile {
        if !labels.is_empty() {
            out.push(',');
        }
        let _ = write!(out, "quantile=\"{q}\"");
    }
    out.push('}');
}

/// A sample value as Prometheus writes it: integers without a fraction, `+Inf`, `NaN`.
struct Number(f64);

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        if v.is_nan() {
            f.write_str("NaN")
        } else if v.is_infinite() {
            f.write_str(if v > 0.0 { "+Inf" } else { "-Inf" })
        } else if v.fract() == 0.0 && v.abs() < 1e15 {
            write!(f, "{}", v as i64)
        } else {
            write!(f, "{v}")
        }
    }
}

/// A count that only goes up, shared between threads (relaxed: read for reports, never used to
/// synchronise).
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub(crate) fn bump(&self) {
        self.0.fetch_add(1, Relaxed);
    }

    /// The count now.
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// The routes a server's requests are counted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// `GET /{name}`.
    Hello,
    /// `POST /echo`.
    Echo,
    /// `GET /slow`.
    Slow,
    /// `GET /healthz`.
    Healthz,
    /// `GET /fanout`.
    Fanout,
    /// `GET /metrics`.
    Metrics,
    /// Anything else (wrong method, unknown route).
    Other,
}

impl Route {
    /// Every route, in label order.
    pub const ALL: [Route; 7] = [
        Route::Hello,
        Route::Echo,
        Route::Slow,
        Route::Healthz,
        Route::Fanout,
        Route::Metrics,
        Route::Other,
    ];

    /// The `route` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Hello => "hello",
            Route::Echo => "echo",
            Route::Slow => "slow",
            Route::Healthz => "healthz",
            Route::Fanout => "fanout",
            Route::Metrics => "metrics",
            Route::Other => "other",
        }
    }
}

/// The statuses counted one by one; others are counted as `other`.
const STATUSES: [u16; 13] = [
    200, 204, 400, 404, 405, 408, 413, 429, 500, 501, 502, 503, 504,
];
const STATUS_SLOTS: usize = STATUSES.len() + 1;

fn status_slot(status: u16) -> usize {
    STATUSES
        .iter()
        .position(|&s| s == status)
        .unwrap_or(STATUSES.len())
}

/// A server's requests by route and status, and their latency by route.
pub struct HttpMetrics {
    requests: [[AtomicU64; STATUS_SLOTS]; Route::ALL.len()],
    latency: [LatencyHistogram; Route::ALL.len()],
    panics: Counter,
    deadlines: DeadlineCounts,
}

impl HttpMetrics {
    /// No requests yet.
    pub fn new() -> Self {
        HttpMetrics {
            requests: Default::default(),
            latency: std::array::from_fn(|_| LatencyHistogram::new()),
            panics: Counter::default(),
            deadlines: DeadlineCounts::default(),
        }
    }

    /// Counts one request of `route` answered with `status` after `elapsed`.
    pub fn record(&self, route: Route, status: u16, elapsed: Duration) {
        self.requests[route as usize][status_slot(status)].fetch_add(1, Relaxed);
        self.latency[route as usize].record(elapsed);
    }

    /// Requests of `route` answered with `status` (statuses not counted one by one share a
    /// count).
    pub fn requests(&self, route: Route, status: u16) -> u64 {
        self.requests[route as usize][status_slot(status)].load(Relaxed)
    }

    /// Counts one request whose handler panicked (the request itself is counted by
    /// [`record`](HttpMetrics::record) with the 500 it was answered).
    pub fn record_panic(&self) {
        self.panics.bump();
    }

    /// Requests whose handler panicked.
    pub fn panics(&self) -> u64 {
        self.panics.get()
    }

    /// Requests refused, or stopped, for their caller's deadline (the `tailguard-timeout`
    /// header; see [`wire_deadline`](crate::wire_deadline)).
    pub fn deadlines(&self) -> &DeadlineCounts {
        &self.deadlines
    }

    /// The latency histogram of `route`.
    pub fn latency(&self, route: Route) -> &LatencyHistogram {
        &self.latency[route as usize]
    }

    /// Writes `tailguard_http_requests_total{route,status}` and
    /// `tailguard_http_request_duration_seconds{route}` (a summary), skipping empty series,
    /// `tailguard_http_handler_panics_total`, the deadline refusals
    /// ([`DeadlineCounts::write`]), and the policies' counters if a [`PolicyMetrics`] is
    /// installed.
    pub fn write(&self, out: &mut PromText) {
        if let Some(policies) = PolicyMetrics::installed() {
            policies.write(out);
        }
        self.deadlines.write(out);
        out.single(
            "tailguard_http_handler_panics_total",
            Kind::Counter,
            "Requests whose handler panicked; each was answered 500 and the server kept serving.",
            self.panics.get() as f64,
        );
        out.family(
            "tailguard_http_requests_total",
            Kind::Counter,
            "Requests answered, by route and status.",
        );
        for route in Route::ALL {
            for (slot, count) in self.requests[route as usize].iter().enumerate() {
                let count = count.load(Relaxed);
                if count == 0 {
                    continue;
                }
                let status = STATUSES
                    .get(slot)
                    .map_or_else(|| "other".to_string(), u16::to_string);
                out.sample(
                    "tailguard_http_requests_total",
                    &[("route", route.as_str()), ("status", &status)],
                    count as f64,
                );
            }
        }
        out.family(
            "tailguard_http_request_duration_seconds",
            Kind::Summary,
            "Time from routing a request to its response, by route.",
        );
        for route in Route::ALL {
            let histogram = &self.latency[route as usize];
            if !histogram.is_empty() {
                out.summary(
                    "tailguard_http_request_duration_seconds",
                    &[("route", route.as_str())],
                    histogram,
                );
            }
        }
    }
}

impl Default for HttpMetrics {
    fn default() -> Self {
        HttpMetrics::new()
    }
}

impl fmt::Debug for HttpMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpMetrics").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_numbers_formatted() {
        let mut out = PromText::new();
        out.family("x_total", Kind::Counter, "Help with a\nnewline.");
        out.sample("x_total", &[("a", "q\"uo\\te\n")], 3.0);
        out.sample("x_total", &[], 0.25);
        out.sample("x_total", &[("a", "b")], f64::INFINITY);
        assert_eq!(
            out.finish(),
            "# HELP x_total Help with a\\nnewline.\n# TYPE x_total counter\n\
             x_total{a=\"q\\\"uo\\\\te\\n\"} 3\nx_total 0.25\nx_total{a=\"b\"} +Inf\n"
        );
    }

    #[test]
    fn summaries_have_quantiles_sum_and_count() {
        let histogram = LatencyHistogram::new();
        for ms in 1..=100 {
            histogram.record(Duration::from_millis(ms));
        }
        let mut out = PromText::new();
        out.family("lat_seconds", Kind::Summary, "Latency.");
        out.summary("lat_seconds", &[("route", "r")], &histogram);
        let text = out.finish();
        assert!(
            text.contains("lat_seconds{route=\"r\",quantile=\"0.5\"} 0.05"),
            "{text}"
        );
        assert!(
            text.contains("lat_seconds{route=\"r\",quantile=\"0.999\"} 0.1"),
            "{text}"
        );
        assert!(
            text.contains("lat_seconds_count{route=\"r\"} 100\n"),
            "{text}"
        );
        let sum: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("lat_seconds_sum{route=\"r\"} "))
            .unwrap()
            .parse()
            .unwrap();
        assert!((sum - 5.05).abs() < 0.05, "{sum}");
    }

    #[test]
    fn requests_are_counted_by_route_and_status() {
        let metrics = HttpMetrics::new();
        metrics.record(Route::Fanout, 200, Duration::from_millis(1));
        metrics.record(Route::Fanout, 200, Duration::from_millis(2));
        metrics.record(Route::Fanout, 418, Duration::from_millis(2));
        assert_eq!(metrics.requests(Route::Fanout, 200), 2);
        assert_eq!(metrics.requests(Route::Hello, 200), 0);
        assert_eq!(metrics.latency(Route::Fanout).count(), 3);
        let mut out = PromText::new();
        metrics.write(&mut out);
        let text = out.finish();
        assert!(
            text.contains("{route=\"fanout\",status=\"other\"} 1\n"),
            "{text}"
        );
        assert!(!text.contains("route=\"hello\""), "{text}");
        assert!(
            text.contains("tailguard_http_handler_panics_total 0\n"),
            "{text}"
        );
        metrics.record_panic();
        assert_eq!(metrics.panics(), 1);
    }
}
