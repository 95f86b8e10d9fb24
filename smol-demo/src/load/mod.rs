//! An open-loop load generator: a fixed rate, latency from the scheduled send time.
//!
//! A closed-loop generator (N clients, each sending its next request when the last one is
//! answered) slows down with the server it measures: while the server stalls, it sends
//! nothing, so the stall shows up as one slow request instead of the hundreds that a real
//! user population would have sent and waited on. This is *coordinated omission*. Here
//! request `i` is due at `start + i / rate` whatever happened before, and its latency is
//! measured from that due time, not from when it was actually sent, so a slow server (or a
//! slow generator) cannot hide its tail.
//!
//! At most `concurrency` requests are in flight. A request that falls due while the cap is
//! reached is not sent: it is counted as **dropped**, apart from the errors, and the summary
//! says so. (Queueing it instead would hold its due time while it waits, which the latency
//! measurement already accounts for, but would make the generator's memory unbounded.)
//!
//! The run sends at most `rate × duration` requests, then waits for those in flight, each
//! bounded by `timeout`; so it ends by `duration + timeout + 1 s`. The report
//! ([`LoadReport`]) has counts, errors by kind, and latency percentiles (p50, p90, p99, p99.9,
//! max) over every request that got a response (any status) or timed out (counted at its
//! timeout, a lower bound).
//!
//! ```
//! use std::time::Duration;
//! use tailguard_demo::backend::{BackendConfig, Backends, LatencyDist, Profile};
//! use tailguard_demo::load::{self, LoadConfig};
//! use tailguard_demo::rt::Runtime;
//!
//! let rt = Runtime::new(2.try_into().unwrap());
//! // A replica that always takes 10 ms.
//! let profile = Profile { latency: LatencyDist::Fixed(Duration::from_millis(10)), ..Profile::default() };
//! let backends = rt.block_on(Backends::start(BackendConfig::uniform(1, profile), rt.executor()))?;
//! let url = format!("http://{}/item", backends.addrs()[0]);
//!
//! let config = LoadConfig::new(url, 200.0, Duration::from_millis(250));
//! let report = rt.block_on(load::run(rt.executor(), &config))?;
//! assert_eq!((report.sent, report.ok), (50, 50));
//! assert!(report.latency.p50_ms >= 10.0);
//! println!("{report}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod args;

use std::collections::BTreeMap;
use std::fmt;
use std::io::{IsTerminal, Write as _};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{HeaderValue, Uri};
use serde::Serialize;
use tailguard::latency::LatencyHistogram;
use tailguard::shutdown::TaskTracker;
use tailguard::timeout::timeout;
use tailguard::ConfigError;

use crate::client::{ClientConfig, Pool};
use crate::rt::Exec;

/// The highest rate accepted, in requests per second.
pub const MAX_RATE: f64 = 1_000_000.0;
/// The longest run accepted.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
/// The most requests in flight accepted.
pub const MAX_CONCURRENCY: usize = 100_000;

/// What to send, how fast, for how long.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadConfig {
    /// `http://host:port/path?query`; every request is a `GET` of it.
    pub url: String,
    /// Requests per second, in (0, 1e6].
    pub rate: f64,
    /// How long to send for, in (0, 1 h].
    pub duration: Duration,
    /// The most requests in flight, in 1..=100000.
    pub concurrency: usize,
    /// Longest wait for one response (connecting included).
    pub timeout: Duration,
    /// Draw a progress bar on stderr, if it is a terminal.
    pub progress: bool,
}

impl LoadConfig {
    /// `rate` requests per second to `url` for `duration`, at most 256 in flight, a 10 s
    /// timeout, no progress bar.
    pub fn new(url: impl Into<String>, rate: f64, duration: Duration) -> Self {
        LoadConfig {
            url: url.into(),
            rate,
            duration,
            concurrency: 256,
            timeout: Duration::from_secs(10),
            progress: false,
        }
    }

    /// The number of requests the run sends (if none is dropped): `⌊rate × duration⌋`.
    pub fn requests(&self) -> u64 {
        (self.rate * self.duration.as_secs_f64()).floor() as u64
    }

    /// Checks every value (not the URL's host, which is resolved when the run starts).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.rate > 0.0 && self.rate <= MAX_RATE) {
            return Err(ConfigError::new(
                "rate",
                format!(
                    "must be in (0, {MAX_RATE}] requests per second, got {}",
                    self.rate
                ),
            ));
        }
        if self.duration.is_zero() || self.duration > MAX_DURATION {
            return Err(ConfigError::new(
                "duration",
                format!("must be in (0, {MAX_DURATION:?}], got {:?}", self.duration),
            ));
        }
        if self.requests() == 0 {
            return Err(ConfigError::new(
                "duration",
                format!(
                    "rate × duration must make at least one request, got {} × {:?}",
                    self.rate, self.duration
                ),
            ));
        }
        if !(1..=MAX_CONCURRENCY).contains(&self.concurrency) {
            return Err(ConfigError::new(
                "concurrency",
                format!("must be in 1..={MAX_CONCURRENCY}, got {}", self.concurrency),
            ));
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::new("timeout", "must be longer than zero"));
        }
        parse_url(&self.url)?;
        Ok(())
    }
}

/// The parts of an `http://` URL: host, port, path and query.
fn parse_url(url: &str) -> Result<(String, u16, String), ConfigError> {
    let bad = |why: &str| {
        ConfigError::new(
            "url",
            format!("{why}, got `{url}`: write http://host:port/path"),
        )
    };
    let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(_) => return Err(bad("only http:// is supported")),
        None => return Err(bad("the URL needs http://")),
    }
    let host = uri.host().ok_or_else(|| bad("the URL has no host"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let path = uri
        .path_and_query()
        .map_or_else(|| "/".to_string(), |p| p.as_str().to_string());
    let path = if path.is_empty() {
        "/".to_string()
    } else {
        path
    };
    Ok((host, uri.port_u16().unwrap_or(80), path))
}

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

struct Shared {
    latency: Arc<LatencyHistogram>,
    ok: AtomicU64,
    errors: AtomicU64,
    answered: AtomicU64,
    in_flight: AtomicU64,
    error_kinds: Mutex<BTreeMap<String, u64>>,
}

impl Shared {
    fn error(&self, kind: String) {
        self.errors.fetch_add(1, Relaxed);
        *self
            .error_kinds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(kind)
            .or_default() += 1;
    }
}

/// Runs the load described by `config`, spawning requests on `ex`, and reports.
pub async fn run(ex: &Exec, config: &LoadConfig) -> Result<LoadReport, ConfigError> {
    config.validate()?;
    let (host, port, path) = parse_url(&config.url)?;
    let addr: SocketAddr = smol::net::resolve((host.as_str(), port))
        .await
        .ok()
        .and_then(|addrs| addrs.into_iter().next())
        .ok_or_else(|| ConfigError::new("url", format!("cannot resolve the host `{host}`")))?;
    let authority = if port == 80 {
        host.clone()
    } else if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let host_header = HeaderValue::from_str(&authority)
        .map_err(|_| ConfigError::new("url", format!("`{authority}` is not a valid host")))?;
    let pool = Pool::with_host(
        addr,
        host_header,
        ClientConfig {
            connect_timeout: config.timeout,
            max_idle: config.concurrency,
        },
        ex.clone(),
    );
    let path: Arc<str> = path.into();
    let shared = Arc::new(Shared {
        latency: Arc::new(LatencyHistogram::new()),
        ok: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        answered: AtomicU64::new(0),
        in_flight: AtomicU64::new(0),
        error_kinds: Mutex::new(BTreeMap::new()),
    });
    let mut progress = Progress::new(config.progress && std::io::stderr().is_terminal());
    let tracker = TaskTracker::new();
    let total = config.requests();
    let cap = config.concurrency as u64;
    let (mut sent, mut dropped) = (0u64, 0u64);
    let start = Instant::now();
    let due = |i: u64| start + Duration::from_secs_f64(i as f64 / config.rate);

    let mut next = 0u64;
    while next < total {
        let now = Instant::now();
        // Send everything due by now: at high rates, several per wake-up.
        while next < total && due(next) <= now {
            let scheduled = due(next);
            next += 1;
            if shared.in_flight.load(Relaxed) >= cap {
                dropped += 1;
                continue;
            }
            shared.in_flight.fetch_add(1, Relaxed);
            sent += 1;
            let request = one_request(
                pool.clone(),
                path.clone(),
                shared.clone(),
                scheduled,
                config.timeout,
            );
            ex.spawn(tracker.track_future(request)).detach();
        }
        progress.draw(next, total, &shared, dropped);
        if next < total {
            smol::Timer::at(due(next)).await;
        }
    }
    // Every request ends within its timeout; the margin covers scheduling.
    let _ = tracker
        .graceful(config.timeout + Duration::from_secs(1))
        .await;
    let elapsed = start.elapsed();
    progress.clear();

    let answered = shared.answered.load(Relaxed);
    let error_kinds = shared
        .error_kinds
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    Ok(LoadReport {
        url: config.url.clone(),
        rate: config.rate,
        duration_s: config.duration.as_secs_f64(),
        concurrency: config.concurrency,
        scheduled: total,
        sent,
        dropped,
        ok: shared.ok.load(Relaxed),
        errors: shared.errors.load(Relaxed),
        error_kinds,
        elapsed_s: elapsed.as_secs_f64(),
        throughput: answered as f64 / elapsed.as_secs_f64().max(1e-9),
        latency: LatencySummary::of(&shared.latency),
        histogram: shared.latency.clone(),
    })
}

/// Counts a request in flight until dropped.
struct InFlight(Arc<Shared>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

async fn one_request(
    pool: Pool,
    path: Arc<str>,
    shared: Arc<Shared>,
    scheduled: Instant,
    limit: Duration,
) {
    let _in_flight = InFlight(shared.clone());
    match timeout(limit, pool.get(&path)).await {
        Ok(Ok(reply)) => {
            shared.latency.record(scheduled.elapsed());
            shared.answered.fetch_add(1, Relaxed);
            if reply.status.is_success() {
                shared.ok.fetch_add(1, Relaxed);
            } else {
                shared.error(format!("status_{}", reply.status.as_u16()));
            }
        }
        Ok(Err(error)) => shared.error(error.kind().to_string()),
        Err(_) => {
            shared.latency.record(scheduled.elapsed());
            shared.error("timeout".to_string());
        }
    }
}

/// A one-line progress bar on stderr, redrawn at most every 200 ms.
struct Progress {
    enabled: bool,
    last: Option<Instant>,
}

impl Progress {
    fn new(enabled: bool) -> Self {
        Progress {
            enabled,
            last: None,
        }
    }

    fn draw(&mut self, due: u64, total: u64, shared: &Shared, dropped: u64) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now - last < Duration::from_millis(200))
            && due < total
        {
            return;
        }
        self.last = Some(now);
        const WIDTH: u64 = 30;
        let filled = (due * WIDTH / total.max(1)) as usize;
        let mut stderr = std::io::stderr().lock();
        let _ = write!(
            stderr,
            "\r[{}{}] {:>3}%  ok {}  errors {}  dropped {}  in flight {}   ",
            "#".repeat(filled),
            " ".repeat(WIDTH as usize - filled),
            due * 100 / total.max(1),
            shared.ok.load(Relaxed),
            shared.errors.load(Relaxed),
            dropped,
            shared.in_flight.load(Relaxed),
        );
        let _ = stderr.flush();
    }

    fn clear(&mut self) {
        if self.enabled {
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "\r{}\r", " ".repeat(90));
            let _ = stderr.flush();
        }
    }
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
    fn urls_parse() {
        assert_eq!(
            parse_url("http://127.0.0.1:8080/fanout?keys=8").unwrap(),
            ("127.0.0.1".into(), 8080, "/fanout?keys=8".into())
        );
        assert_eq!(
            parse_url("http://localhost").unwrap(),
            ("localhost".into(), 80, "/".into())
        );
        assert_eq!(parse_url("http://[::1]:9/x").unwrap().0, "::1");
        assert!(parse_url("https://x/")
            .unwrap_err()
            .to_string()
            .contains("only http"));
        assert!(parse_url("127.0.0.1:80/x").is_err());
    }

    #[test]
    fn configs_are_validated_by_field() {
        let ok = LoadConfig::new("http://127.0.0.1:1/", 100.0, Duration::from_secs(1));
        assert!(ok.validate().is_ok());
        assert_eq!(ok.requests(), 100);
        for (config, field) in [
            (
                LoadConfig {
                    rate: 0.0,
                    ..ok.clone()
                },
                "rate",
            ),
            (
                LoadConfig {
                    rate: f64::NAN,
                    ..ok.clone()
                },
                "rate",
            ),
            (
                LoadConfig {
                    rate: 2e6,
                    ..ok.clone()
                },
                "rate",
            ),
            (
                LoadConfig {
                    duration: Duration::ZERO,
                    ..ok.clone()
                },
                "duration",
            ),
            (
                LoadConfig {
                    rate: 0.5,
                    ..ok.clone()
                },
                "duration",
            ),
            (
                LoadConfig {
                    concurrency: 0,
                    ..ok.clone()
                },
                "concurrency",
            ),
            (
                LoadConfig {
                    timeout: Duration::ZERO,
                    ..ok.clone()
                },
                "timeout",
            ),
            (
                LoadConfig {
                    url: "ftp://x".into(),
                    ..ok.clone()
                },
                "url",
            ),
        ] {
            assert_eq!(config.validate().unwrap_err().field(), field, "{config:?}");
        }
    }

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
