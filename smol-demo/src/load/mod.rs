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

pub mod command;
mod config;
pub(crate) mod open_loop;
mod progress;
mod report;

use std::collections::BTreeMap;
use std::future::Future;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_lite::future;
use http::HeaderValue;
use tailguard::latency::LatencyHistogram;
use tailguard::shutdown::TaskTracker;
use tailguard::timeout::timeout;
use tailguard::ConfigError;

use self::config::parse_url;
pub use self::config::{LoadConfig, MAX_CONCURRENCY, MAX_DURATION, MAX_RATE};
use self::progress::{Counts, Progress};
pub use self::report::{round_floats, tidy, LatencySummary, LoadReport};
use crate::client::{ClientConfig, Pool};
use crate::metrics::Counter;
use crate::rt::Exec;

struct Shared {
    latency: Arc<LatencyHistogram>,
    ok: Counter,
    errors: Counter,
    answered: Counter,
    in_flight: AtomicU64,
    error_kinds: Mutex<BTreeMap<String, u64>>,
}

impl Shared {
    fn error(&self, kind: String) {
        self.errors.bump();
        *self
            .error_kinds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(kind)
            .or_default() += 1;
    }
}

/// How long an interrupted run waits for the answers in flight before it reports.
pub const DRAIN_ON_INTERRUPT: Duration = Duration::from_secs(1);

/// Runs the load described by `config`, spawning requests on `ex`, and reports.
pub async fn run(ex: &Exec, config: &LoadConfig) -> Result<LoadReport, ConfigError> {
    run_until(ex, config, std::future::pending()).await
}

/// Runs the load described by `config` until it is done or `stop` ends, whichever is first.
/// When `stop` ends first, no more requests are sent; the run waits at most
/// [`DRAIN_ON_INTERRUPT`] for those in flight and reports what was measured so far, with
/// [`LoadReport::interrupted`] set (what was still in flight is counted in
/// [`LoadReport::unanswered`]).
pub async fn run_until(
    ex: &Exec,
    config: &LoadConfig,
    stop: impl Future<Output = ()>,
) -> Result<LoadReport, ConfigError> {
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
        ok: Counter::default(),
        errors: Counter::default(),
        answered: Counter::default(),
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
    let sending = async {
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
            progress.draw(
                next,
                total,
                Counts {
                    ok: shared.ok.get(),
                    errors: shared.errors.get(),
                    dropped,
                    in_flight: shared.in_flight.load(Relaxed),
                },
            );
            if next < total {
                smol::Timer::at(due(next)).await;
            }
        }
        false
    };
    let interrupted = future::or(sending, async {
        stop.await;
        true
    })
    .await;
    // Every request ends within its timeout; the margin covers scheduling. Interrupted, the
    // run waits only briefly: whoever interrupted wants the numbers now.
    let drain = if interrupted {
        DRAIN_ON_INTERRUPT.min(config.timeout + Duration::from_secs(1))
    } else {
        config.timeout + Duration::from_secs(1)
    };
    let _ = tracker.graceful(drain).await;
    let elapsed = start.elapsed();
    progress.clear();

    let answered = shared.answered.get();
    let (ok, errors) = (shared.ok.get(), shared.errors.get());
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
        scheduled: next,
        sent,
        dropped,
        ok,
        errors,
        unanswered: sent.saturating_sub(ok + errors),
        interrupted,
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
            shared.answered.bump();
            if reply.status.is_success() {
                shared.ok.bump();
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
