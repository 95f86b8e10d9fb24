//! The herd, live: clients retrying against a backend that comes back from an outage with
//! limited capacity, over real sockets on 127.0.0.1.
//!
//! One backend replica serves each call in `service` and at most `capacity` calls at once;
//! more are answered `503` at once. It is down (connections refused, like a crashed process)
//! from `warmup` to `warmup + outage`. Meanwhile user requests arrive at a steady `rate` (open
//! loop: a slow backend does not slow the users down), each one a call under a
//! [`Retry`] policy of up to `max_attempts` attempts with exponential
//! backoff from `base_delay` to `max_delay`, within `max_elapsed`. Two [`HerdMode`]s are
//! compared:
//!
//! - [`HerdMode::NoJitter`]: every failed call is retried after exactly the backoff's delay,
//!   and nothing limits retries. Every request that arrived during the outage is still
//!   retrying when the backend comes back, so it meets several times its capacity at once;
//!   the calls turned away come back together on the same schedule.
//! - [`HerdMode::JitterBudget`]: full jitter (a delay drawn uniformly between zero and the
//!   backoff's) spreads the retries out, and a [`RetryBudget`] shared by all clients caps
//!   retries at `budget_ratio` of first tries (plus a small floor): during the outage most
//!   requests fail fast instead of piling up.
//!
//! Measured, per mode: **wasted calls** (calls that got `503`, were refused, or failed
//! otherwise: load that did nothing useful), the requests that succeeded and failed, the
//! **recovery time**: from the backend coming back to the start of the first `window` from
//! which, until the end of the run, at least `high` of the calls in every window succeed; and
//! the latency of the requests that arrived after the backend came back (from their due
//! time, retries included): what the herd costs the users who come after it.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use tailguard::backoff::{Backoff, Jitter};
use tailguard::latency::LatencyHistogram;
use tailguard::retry::{GaveUp, Retry, RetryBudget};
use tailguard::time::AsyncIoTimer;
use tailguard::timeout::timeout;
use tailguard::ConfigError;

use crate::backend::{BackendConfig, Backends, LatencyDist, Outage, OutageMode, Profile};
use crate::client::{ClientConfig, Pool};
use crate::experiment::ExperimentError;
use crate::load::open_loop::open_loop;
use crate::percentile;
use crate::rt::Exec;

/// The retry behaviours compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum HerdMode {
    /// Exponential backoff without jitter, no retry budget.
    NoJitter,
    /// Exponential backoff with full jitter, and a shared retry budget.
    JitterBudget,
}

impl HerdMode {
    /// Both modes, in report order.
    pub const ALL: [HerdMode; 2] = [HerdMode::NoJitter, HerdMode::JitterBudget];

    /// The mode's key in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            HerdMode::NoJitter => "no_jitter",
            HerdMode::JitterBudget => "jitter_budget",
        }
    }

    /// What the mode does, in a few words.
    pub fn describe(self, config: &LiveHerdConfig) -> String {
        match self {
            HerdMode::NoJitter => "no jitter, no budget".to_string(),
            HerdMode::JitterBudget => format!(
                "full jitter + {}% budget",
                (config.budget_ratio * 100.0).round()
            ),
        }
    }
}

/// Everything that defines a live herd run. `Default` is what `tailguard-demo herd` runs.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveHerdConfig {
    /// User requests per second, arriving steadily whatever happens.
    pub rate: f64,
    /// The backend's service time per call.
    pub service: Duration,
    /// The most calls the backend serves at once; more get `503` at once.
    pub capacity: usize,
    /// Healthy time before the outage.
    pub warmup: Duration,
    /// How long the backend is down (refusing connections).
    pub outage: Duration,
    /// How long requests keep arriving after the backend is back.
    pub after: Duration,
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// The first retry's backoff; it doubles up to `max_delay`.
    pub base_delay: Duration,
    /// The longest backoff.
    pub max_delay: Duration,
    /// The longest a request may take, retries included.
    pub max_elapsed: Duration,
    /// Longest wait for one call.
    pub call_timeout: Duration,
    /// The budget of [`HerdMode::JitterBudget`]: retries ≤ ratio × first tries.
    pub budget_ratio: f64,
    /// ... plus this many retries per second.
    pub budget_min_per_second: u32,
    /// The width of a window of the success-rate timeline.
    pub window: Duration,
    /// The success rate that counts as recovered, in (0, 1].
    pub high: f64,
    /// Seeds the jitter.
    pub seed: u64,
}

impl Default for LiveHerdConfig {
    /// 250 requests/s against a backend of 10 slots × 20 ms (500 calls/s), down from 0.5 s to
    /// 1.5 s, watched for 2.5 s after; up to 8 attempts within 3 s, backoff 50 ms doubling to
    /// 800 ms; a 20 % budget (+10/s); 100 ms windows, 90 % counts as recovered.
    fn default() -> Self {
        LiveHerdConfig {
            rate: 250.0,
            service: Duration::from_millis(20),
            capacity: 10,
            warmup: Duration::from_millis(500),
            outage: Duration::from_secs(1),
            after: Duration::from_millis(2500),
            max_attempts: 8,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(800),
            max_elapsed: Duration::from_secs(3),
            call_timeout: Duration::from_secs(1),
            budget_ratio: 0.2,
            budget_min_per_second: 10,
            window: Duration::from_millis(100),
            high: 0.9,
            seed: 1,
        }
    }
}

impl LiveHerdConfig {
    /// A shorter run for the tour: 0.3 s healthy, 0.7 s down, 1.5 s after.
    pub fn short() -> Self {
        LiveHerdConfig {
            warmup: Duration::from_millis(300),
            outage: Duration::from_millis(700),
            after: Duration::from_millis(1500),
            ..LiveHerdConfig::default()
        }
    }

    /// Checks every value; the retry policy and budget check theirs when built.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.rate > 0.0 && self.rate <= 10_000.0) {
            return Err(ConfigError::new(
                "rate",
                format!(
                    "must be in (0, 10000] requests per second, got {}",
                    self.rate
                ),
            ));
        }
        if self.capacity == 0 {
            return Err(ConfigError::new("capacity", "must be at least 1, got 0"));
        }
        for (field, value) in [
            ("outage", self.outage),
            ("after", self.after),
            ("window", self.window),
            ("call_timeout", self.call_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::new(field, "must be longer than zero"));
            }
        }
        let total = self.warmup + self.outage + self.after;
        if total > Duration::from_secs(600) {
            return Err(ConfigError::new(
                "after",
                format!("warmup + outage + after must be at most 10 minutes, got {total:?}"),
            ));
        }
        if !(self.high > 0.0 && self.high <= 1.0) {
            return Err(ConfigError::new(
                "high",
                format!("must be in (0, 1], got {}", self.high),
            ));
        }
        self.backend_config().validate()?;
        for mode in HerdMode::ALL {
            self.policy(mode)?;
        }
        Ok(())
    }

    fn backend_config(&self) -> BackendConfig {
        let profile = Profile {
            latency: LatencyDist::Fixed(self.service),
            capacity: Some(self.capacity),
            ..Profile::default()
        };
        BackendConfig {
            outages: vec![Outage {
                replica: 0,
                from: self.warmup,
                to: self.warmup + self.outage,
            }],
            outage_mode: OutageMode::Refuse,
            control: false,
            ..BackendConfig::uniform(1, profile)
        }
    }

    /// The retry policy of `mode`.
    pub fn policy(&self, mode: HerdMode) -> Result<Retry<AsyncIoTimer>, ConfigError> {
        let jitter = match mode {
            HerdMode::NoJitter => Jitter::None,
            HerdMode::JitterBudget => Jitter::Full,
        };
        let backoff = Backoff::exponential(self.base_delay)
            .max_delay(self.max_delay)
            .jitter(jitter)
            .seed(self.seed)
            .build()?;
        let builder = Retry::with_timer(AsyncIoTimer)
            .max_attempts(self.max_attempts)
            .max_elapsed(self.max_elapsed)
            .attempt_timeout(self.call_timeout)
            .backoff(backoff);
        match mode {
            HerdMode::NoJitter => builder.build(),
            HerdMode::JitterBudget => builder
                .budget(
                    RetryBudget::builder()
                        .ratio(self.budget_ratio)
                        .min_per_second(self.budget_min_per_second)
                        .build()?,
                )
                .build(),
        }
    }

    fn requests(&self) -> u64 {
        ((self.warmup + self.outage + self.after).as_secs_f64() * self.rate).floor() as u64
    }
}

/// How one call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallOutcome {
    Ok,
    /// `503`: over capacity.
    Rejected,
    /// Connection refused: the backend was down.
    Refused,
    /// Anything else: another status, a broken connection, a timeout.
    Other,
}

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
        for line in super::summary::live_sentences(self, config) {
            let _ = writeln!(out, "{line}");
        }
        out
    }
}

/// Runs both modes in turn on `ex`. `on_mode` is called before each mode starts.
pub async fn run(
    ex: &Exec,
    config: &LiveHerdConfig,
    mut on_mode: impl FnMut(HerdMode),
) -> Result<LiveHerdReport, ExperimentError> {
    config.validate()?;
    let mut runs = Vec::with_capacity(HerdMode::ALL.len());
    for mode in HerdMode::ALL {
        on_mode(mode);
        runs.push(run_mode(ex, config, mode).await?);
    }
    Ok(LiveHerdReport { runs })
}

/// How one request ended, and when it was due and done (since the origin).
struct RequestOutcome {
    result: Result<(), GaveUp>,
    due: Duration,
    done: Duration,
}

/// Runs one mode: a fresh backend, the requests, the measurements.
pub async fn run_mode(
    ex: &Exec,
    config: &LiveHerdConfig,
    mode: HerdMode,
) -> Result<HerdRun, ExperimentError> {
    let policy = config.policy(mode)?;
    let backends = Backends::start(config.backend_config(), ex).await?;
    let origin = backends.origin();
    let pool = Pool::new(
        backends.addrs()[0],
        ClientConfig {
            connect_timeout: config.call_timeout,
            max_idle: 4 * config.capacity,
        },
        ex.clone(),
    );
    let calls: Mutex<Vec<(Duration, CallOutcome)>> = Mutex::new(Vec::new());
    let record = |outcome: CallOutcome| {
        let at = origin.elapsed();
        calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((at, outcome));
    };
    let one_request = || {
        policy.run(|| async {
            let outcome = match timeout(config.call_timeout, pool.get("/herd")).await {
                Ok(Ok(reply)) if reply.status.is_success() => CallOutcome::Ok,
                Ok(Ok(reply)) if reply.status.as_u16() == 503 => CallOutcome::Rejected,
                Ok(Err(error)) if error.is_connect() => CallOutcome::Refused,
                _ => CallOutcome::Other,
            };
            record(outcome);
            match outcome {
                CallOutcome::Ok => Ok(()),
                failed => Err(failed),
            }
        })
    };

    // Open loop: request i is due at origin + i / rate, whatever happened before. A short
    // grace for the last requests; whatever still retries then is cut (cancelled).
    let grace = config.service * 2 + Duration::from_millis(100);
    let finished = open_loop(origin, config.rate, config.requests(), Some(grace), |i| {
        let due = Duration::from_secs_f64(i as f64 / config.rate);
        let request = one_request();
        async move {
            let result = request.await.map_err(|e| e.reason());
            RequestOutcome {
                result,
                due,
                done: origin.elapsed(),
            }
        }
    })
    .await;
    backends.stop().await;

    let calls = calls.into_inner().unwrap_or_else(|e| e.into_inner());
    Ok(summarize(
        config,
        mode,
        config.requests(),
        finished.cut,
        &finished.outputs,
        &calls,
    ))
}

fn summarize(
    config: &LiveHerdConfig,
    mode: HerdMode,
    requests: u64,
    cut: u64,
    outcomes: &[RequestOutcome],
    calls: &[(Duration, CallOutcome)],
) -> HerdRun {
    let count = |want: CallOutcome| calls.iter().filter(|(_, o)| *o == want).count() as u64;
    let (calls_ok, rejected, refused, other_errors) = (
        count(CallOutcome::Ok),
        count(CallOutcome::Rejected),
        count(CallOutcome::Refused),
        count(CallOutcome::Other),
    );
    let requests_ok = outcomes.iter().filter(|o| o.result.is_ok()).count() as u64;
    let budget_refusals = outcomes
        .iter()
        .filter(|o| o.result == Err(GaveUp::BudgetExhausted))
        .count() as u64;
    let timeline = timeline(config, calls);
    let back = config.warmup + config.outage;
    let after = LatencyHistogram::new();
    for o in outcomes.iter().filter(|o| o.due >= back) {
        after.record(o.done.saturating_sub(o.due));
    }
    let after_ms = |q: f64| percentile::of_ms(&after, q).map(|v| (v * 1000.0).round() / 1000.0);
    HerdRun {
        mode,
        requests,
        requests_ok,
        requests_failed: outcomes.len() as u64 - requests_ok,
        budget_refusals,
        requests_cut: cut,
        calls: calls.len() as u64,
        calls_ok,
        rejected,
        refused,
        other_errors,
        wasted_calls: rejected + refused + other_errors,
        recovery_ms: recovery(config, &timeline),
        after_samples: after.count(),
        after_p50_ms: after_ms(0.5),
        after_p90_ms: after_ms(0.9),
        after_p99_ms: after_ms(0.99),
        timeline,
    }
}

/// The windows from the backend's return to the end of the arrivals.
fn timeline(config: &LiveHerdConfig, calls: &[(Duration, CallOutcome)]) -> Vec<Window> {
    let back = config.warmup + config.outage;
    let n = (config.after.as_nanos() / config.window.as_nanos().max(1)) as usize;
    let mut windows: Vec<Window> = (0..n)
        .map(|k| Window {
            from_ms: (config.window * k as u32).as_secs_f64() * 1e3,
            calls: 0,
            ok: 0,
        })
        .collect();
    for (at, outcome) in calls {
        let Some(since) = at.checked_sub(back) else {
            continue;
        };
        let k = (since.as_nanos() / config.window.as_nanos().max(1)) as usize;
        if let Some(w) = windows.get_mut(k) {
            w.calls += 1;
            if *outcome == CallOutcome::Ok {
                w.ok += 1;
            }
        }
    }
    windows
}

/// The start of the first window from which every window stays at or above `high`.
fn recovery(config: &LiveHerdConfig, timeline: &[Window]) -> Option<f64> {
    let last_low = timeline.iter().rposition(|w| w.success() < config.high);
    let first_good = last_low.map_or(0, |k| k + 1);
    timeline.get(first_good).map(|w| w.from_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(calls: u64, ok: u64) -> Window {
        Window {
            from_ms: 0.0,
            calls,
            ok,
        }
    }

    #[test]
    fn recovery_is_the_start_of_the_last_good_stretch() {
        let config = LiveHerdConfig::default();
        let mut timeline: Vec<Window> = [
            window(10, 1),
            window(10, 10),
            window(10, 5),
            window(0, 0),
            window(10, 9),
            window(20, 20),
        ]
        .into_iter()
        .collect();
        for (k, w) in timeline.iter_mut().enumerate() {
            w.from_ms = 100.0 * k as f64;
        }
        assert_eq!(recovery(&config, &timeline), Some(300.0));
        assert_eq!(recovery(&config, &timeline[3..]), Some(300.0));
        timeline.push(window(10, 0));
        assert_eq!(recovery(&config, &timeline), None);
        assert_eq!(recovery(&config, &[]), None);
    }

    #[test]
    fn calls_land_in_windows_after_the_return() {
        let config = LiveHerdConfig::default();
        let back = config.warmup + config.outage;
        let calls = [
            (back - Duration::from_millis(1), CallOutcome::Refused),
            (back, CallOutcome::Rejected),
            (back + Duration::from_millis(150), CallOutcome::Ok),
            (
                back + config.after + Duration::from_millis(1),
                CallOutcome::Ok,
            ),
        ];
        let t = timeline(&config, &calls);
        assert_eq!(t.len(), 25);
        assert_eq!((t[0].calls, t[0].ok), (1, 0));
        assert_eq!((t[1].calls, t[1].ok), (1, 1));
        assert_eq!(t.iter().map(|w| w.calls).sum::<u64>(), 2);
    }

    #[test]
    fn settings_are_validated_by_field() {
        assert!(LiveHerdConfig::default().validate().is_ok());
        assert!(LiveHerdConfig::short().validate().is_ok());
        for (config, field) in [
            (
                LiveHerdConfig {
                    rate: f64::NAN,
                    ..LiveHerdConfig::default()
                },
                "rate",
            ),
            (
                LiveHerdConfig {
                    capacity: 0,
                    ..LiveHerdConfig::default()
                },
                "capacity",
            ),
            (
                LiveHerdConfig {
                    high: 1.5,
                    ..LiveHerdConfig::default()
                },
                "high",
            ),
            (
                LiveHerdConfig {
                    outage: Duration::ZERO,
                    ..LiveHerdConfig::default()
                },
                "outage",
            ),
            (
                LiveHerdConfig {
                    max_attempts: 0,
                    ..LiveHerdConfig::default()
                },
                "max_attempts",
            ),
        ] {
            assert_eq!(config.validate().unwrap_err().field(), field, "{config:?}");
        }
    }
}
