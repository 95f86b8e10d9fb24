//! The deadline experiment live: the real pipeline, real HTTP calls to a demo backend replica
//! on 127.0.0.1.
//!
//! For each mode, a fresh replica ([`Backends`], seeded, serving in a time drawn from the
//! scenario's `latency`) and callers arriving at `rate` per second for `duration` (open loop:
//! each caller at its due time, whatever the others do). Each caller runs one call through the
//! mode's pipeline: blind, the attempts are plain `GET`s (no `tailguard-timeout`) cut by the
//! attempt timeout; aware, the call is bounded by the caller's deadline and each attempt sends
//! its remaining time, which the replica honours (refusing at once work that would pass it).
//! An attempt cut by the client closes its connection, which stops the replica's work.
//!
//! The backend's work for an attempt is measured from the client: from sending to the answer
//! (or to the cut), and nothing for a refusal. Real timing on a shared machine is noisy: the
//! shape is robust, the exact numbers are not.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Method;
use tailguard::pipeline::Attempt;
use tailguard::time::DefaultTimer;
use tailguard::timeout::Deadline;
use tailguard::ConfigError;

use super::{Ledger, Mode, ModeReport, Scenario};
use crate::backend::{BackendConfig, Backends, Profile};
use crate::client::{ClientConfig, ClientError, Limits, Pool};
use crate::experiment::ExperimentError;
use crate::rt::Exec;
use crate::wire_deadline::is_deadline_504;

/// Everything that defines one live run. `Default` is what `deadline` runs.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveConfig {
    /// The callers, the backend, the pipeline.
    pub scenario: Scenario,
    /// Calls per second, in each mode.
    pub rate: f64,
    /// How long callers arrive, in each mode.
    pub duration: Duration,
    /// Seed for the replica's service times and the backoff jitter.
    pub seed: u64,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            scenario: Scenario::default(),
            rate: 100.0,
            duration: Duration::from_secs(3),
            seed: 1,
        }
    }
}

impl LiveConfig {
    /// Checks every setting, naming the one refused.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.rate.is_finite() && self.rate > 0.0 && self.rate <= 10_000.0) {
            return Err(ConfigError::new(
                "rate",
                format!("must be in (0, 10000] calls per second, got {}", self.rate),
            ));
        }
        if self.scenario.timeout_kind != super::TimeoutKind::Fixed {
            return Err(ConfigError::new(
                "attempt_timeout",
                "the adaptive attempt timeout is measured with --sim only (live, the client's \
                 own limits are the fixed timeout's)",
            ));
        }
        if self.duration.is_zero() || self.duration > Duration::from_secs(600) {
            return Err(ConfigError::new(
                "duration",
                format!("must be in (0, 600 s], got {:?}", self.duration),
            ));
        }
        self.scenario.validate()
    }
}

/// Why an attempt got no answer.
#[derive(Debug)]
pub enum AttemptError {
    /// The replica refused it for its deadline (504, `tailguard-refused`).
    Refused,
    /// Another status.
    Status(u16),
    /// No response.
    Client(ClientError),
}

/// Runs one mode: a fresh replica, the callers, the report.
pub async fn run_mode(
    ex: &Exec,
    config: &LiveConfig,
    mode: Mode,
) -> Result<ModeReport, ExperimentError> {
    config.validate().map_err(ExperimentError::Config)?;
    let scenario = &config.scenario;
    let backends = Backends::start(
        BackendConfig {
            seed: config.seed,
            control: false,
            ..BackendConfig::uniform(
                1,
                Profile {
                    latency: scenario.latency,
                    ..Profile::default()
                },
            )
        },
        ex,
    )
    .await
    .map_err(ExperimentError::Io)?;
    let pool = Pool::new(backends.addrs()[0], ClientConfig::default(), ex.clone());
    let pipeline = scenario
        .pipeline(DefaultTimer::default(), mode, config.seed)
        .map_err(ExperimentError::Config)?;
    let ledger = Arc::new(Ledger::default());
    let started = Instant::now();
    let calls = (config.rate * config.duration.as_secs_f64())
        .round()
        .max(1.0) as u64;
    let mut tasks = Vec::with_capacity(calls as usize);
    let mut spread = fastrand::Rng::with_seed(config.seed);
    for call in 0..calls {
        let due = started + Duration::from_secs_f64(call as f64 / config.rate);
        smol::Timer::at(due).await;
        let (pool, pipeline, ledger) = (pool.clone(), pipeline.clone(), ledger.clone());
        let deadline_after = scenario.caller_deadline(spread.f64());
        let attempt_timeout = scenario.attempt_timeout;
        tasks.push(ex.spawn(async move {
            let start = Instant::now();
            let deadline = start + deadline_after;
            let id = ledger.begin_call(start, deadline);
            let op = |attempt: Attempt| {
                let (pool, ledger) = (pool.clone(), ledger.clone());
                let told = match mode {
                    Mode::Blind => None,
                    Mode::Aware => attempt.deadline(),
                };
                async move {
                    let index = ledger.begin_attempt(id);
                    let mut watch = Watch {
                        ledger: &ledger,
                        index,
                        sent: Instant::now(),
                        armed: true,
                    };
                    let reply = match told {
                        None => pool.get("/work").await,
                        Some(until) => {
                            let limits = Limits {
                                pool_wait: attempt_timeout,
                                total: attempt_timeout,
                            };
                            pool.send_until(
                                Deadline::at(until),
                                limits,
                                Method::GET,
                                "/work",
                                bytes::Bytes::new(),
                            )
                            .await
                        }
                    };
                    watch.armed = false;
                    let now = Instant::now();
                    match reply {
                        Ok(reply) if reply.status.is_success() => {
                            ledger.finish(index, now, now - watch.sent);
                            Ok(index)
                        }
                        Ok(reply) if is_deadline_504(reply.status, &reply.headers) => {
                            ledger.finish(index, now, Duration::ZERO);
                            Err(AttemptError::Refused)
                        }
                        Ok(reply) => {
                            ledger.finish(index, now, now - watch.sent);
                            Err(AttemptError::Status(reply.status.as_u16()))
                        }
                        Err(error) => {
                            ledger.cut(index, now - watch.sent);
                            Err(AttemptError::Client(error))
                        }
                    }
                }
            };
            let result = match mode {
                Mode::Blind => pipeline.call(op).await,
                Mode::Aware => pipeline.call_until(deadline, op).await,
            };
            ledger.end_call(id, Instant::now(), result.ok());
        }));
    }
    for task in tasks {
        task.await;
    }
    backends.stop().await;
    Ok(ledger.report(mode.name(), scenario.attempt_timeout))
}

/// Records an attempt cut by the pipeline (dropped while waiting): the replica worked until now.
struct Watch<'a> {
    ledger: &'a Ledger,
    index: usize,
    sent: Instant,
    armed: bool,
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.ledger.cut(self.index, self.sent.elapsed());
        }
    }
}
