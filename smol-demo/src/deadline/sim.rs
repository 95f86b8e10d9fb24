//! The deadline experiment in virtual time: the real [`Pipeline`](tailguard::pipeline::Pipeline)
//! on a [`ManualTimer`], a simulated backend, seeded randomness.
//!
//! The model, per call: a caller arrives (a Poisson process at `rate` per second) and waits
//! `deadline` for an answer. Each attempt the pipeline makes crosses a network of `network`
//! each way and is served in a time drawn from `latency` (attempt `n` of call `c` draws the same
//! service time in both modes: the modes meet the same backend); the backend has no queue (its
//! capacity is not the point). An attempt the client cuts (a lost hedge, a timeout, the
//! deadline) stops the backend's work when it is cut. In the aware mode each attempt carries its
//! remaining time, and the backend answers at once, without working, when the service time
//! drawn is longer (as the demo's replicas do with `tailguard-timeout`); the blind mode's
//! backend is told nothing.
//!
//! An attempt cut by its own attempt timeout is checked against what it would have done: if its
//! answer would have reached the caller by the caller's deadline, the timeout was false. The
//! fate is given to the ledger and, with the adaptive timeout, to the timeout itself
//! ([`AdaptiveTimeout::record_late`]).

use std::cell::RefCell;
use std::future::Future;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use tailguard::adaptive_timeout::AdaptiveTimeout;
use tailguard::time::{ManualTimer, Timer};
use tailguard::ConfigError;

use super::{Ledger, Mode, ModeReport, Scenario, TimeoutChoice, TimeoutKind};

/// Everything that defines one simulation. `Default` is what `deadline --sim` runs.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// The callers, the backend, the pipeline.
    pub scenario: Scenario,
    /// Calls per mode.
    pub calls: usize,
    /// Calls per second (Poisson arrivals).
    pub rate: f64,
    /// One-way network time of every request and response.
    pub network: Duration,
    /// Seed for arrivals, service times and backoff jitter.
    pub seed: u64,
    /// The attempt timeouts to run each mode with: fixed (the default), adaptive, or both.
    pub timeouts: TimeoutChoice,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            scenario: Scenario::default(),
            calls: 20_000,
            rate: 200.0,
            network: Duration::from_micros(500),
            seed: 1,
            timeouts: TimeoutChoice::Fixed,
        }
    }
}

impl SimConfig {
    /// Checks every setting, naming the one refused.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.calls == 0 {
            return Err(ConfigError::new("calls", "must be at least 1, got 0"));
        }
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return Err(ConfigError::new(
                "rate",
                format!(
                    "must be a positive number of calls per second, got {}",
                    self.rate
                ),
            ));
        }
        self.scenario.validate()
    }
}

/// Why an attempt got no answer: the backend refused it for its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused;

/// Runs both modes, blind first, with each attempt timeout of `config.timeouts` (fixed first).
pub fn run(config: &SimConfig) -> Result<Vec<ModeReport>, ConfigError> {
    config.validate()?;
    let mut reports = Vec::new();
    for &kind in config.timeouts.kinds() {
        for mode in Mode::ALL {
            reports.push(run_mode(config, mode, kind)?);
        }
    }
    Ok(reports)
}

/// Runs one mode with one kind of attempt timeout on a fresh virtual clock.
pub fn run_mode(
    config: &SimConfig,
    mode: Mode,
    kind: TimeoutKind,
) -> Result<ModeReport, ConfigError> {
    let timer = ManualTimer::new();
    let scenario = &Scenario {
        timeout_kind: kind,
        ..config.scenario.clone()
    };
    let pipeline = scenario.pipeline(timer.clone(), mode, config.seed)?;
    let adaptive = pipeline.attempt_timeout_adaptive();
    let ledger = Ledger::observing_timeouts();
    let origin = timer.now();
    let mut arrivals = fastrand::Rng::with_seed(config.seed);
    let mut at = Duration::ZERO;
    let calls = FuturesUnordered::new();
    for call in 0..config.calls {
        // Exponential gaps: 1 - f64() is in (0, 1], so the log is finite.
        at += Duration::from_secs_f64(-(1.0 - arrivals.f64()).ln() / config.rate);
        let start = origin + at;
        let wait = scenario.caller_deadline(arrivals.f64());
        let (timer, pipeline, ledger) = (&timer, &pipeline, &ledger);
        calls.push(async move {
            timer.sleep_until(start).await;
            let deadline = start + wait;
            let id = ledger.begin_call(start, deadline);
            // The service times of this call's attempts, the same in both modes.
            let draws = RefCell::new(fastrand::Rng::with_seed(
                config.seed ^ (call as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            ));
            let op = |attempt: tailguard::pipeline::Attempt| {
                let work = scenario.latency.sample(&mut draws.borrow_mut());
                let (told, limit) = match mode {
                    Mode::Blind => (None, attempt.deadline()),
                    // The call's deadline cuts an attempt too, but that is not its timeout.
                    Mode::Aware => (
                        attempt.deadline(),
                        attempt.deadline().filter(|&at| at != deadline),
                    ),
                };
                let attempt = SimAttempt {
                    call: id,
                    work,
                    told,
                    limit,
                    caller_deadline: deadline,
                    network: config.network,
                };
                attempt_future(timer, ledger, adaptive, attempt)
            };
            let result = match mode {
                Mode::Blind => pipeline.call(op).await,
                Mode::Aware => pipeline.call_until(deadline, op).await,
            };
            ledger.end_call(id, timer.now(), result.ok());
        });
    }
    timer.block_on(calls.collect::<Vec<()>>());
    let limit = match adaptive {
        Some(adaptive) => adaptive.timeout_at(timer.now()),
        None => scenario.attempt_timeout,
    };
    Ok(ledger.report(kind.label(mode), limit))
}

/// One attempt of the simulation, as its call makes it.
struct SimAttempt {
    call: usize,
    /// The service time drawn for it.
    work: Duration,
    /// The deadline the backend is told (aware mode).
    told: Option<Instant>,
    /// When its own attempt timeout cuts it.
    limit: Option<Instant>,
    caller_deadline: Instant,
    network: Duration,
}

/// One attempt: `work` of service after `network`, and `network` back; refused at once by the
/// backend when it was `told` a deadline that `work` would pass. Cut (dropped) by the client,
/// it stops the backend's work there; cut by its own timeout, its fate is told to the ledger and
/// to the `adaptive` timeout.
fn attempt_future<'a>(
    timer: &'a ManualTimer,
    ledger: &'a Ledger,
    adaptive: Option<&'a AdaptiveTimeout>,
    attempt: SimAttempt,
) -> impl Future<Output = Result<usize, Refused>> + 'a {
    let SimAttempt {
        call,
        work,
        told,
        limit,
        caller_deadline,
        network,
    } = attempt;
    let sent = timer.now();
    let index = ledger.begin_attempt(call);
    // The backend reads the header's remaining time on arrival, as the time it has: nothing
    // left, it answers at once. It cannot foresee how long its work will take, so otherwise it
    // works, and stops when the time is up; the client has cut the attempt by then.
    let refused = told.is_some_and(|deadline| deadline <= sent);
    let done = sent + network * 2 + if refused { Duration::ZERO } else { work };
    let sleep = timer.sleep_until(done);
    let cut = Cut {
        timer,
        ledger,
        adaptive,
        index,
        from: sent + network,
        work: if refused { Duration::ZERO } else { work },
        limit,
        in_time: !refused && done <= caller_deadline,
        armed: true,
    };
    async move {
        sleep.await;
        ledger.finish(index, timer.now(), cut.disarm());
        if refused {
            Err(Refused)
        } else {
            Ok(index)
        }
    }
}

/// Records an attempt cut by the client: the backend worked from `from` until now, at most
/// `work`. Cut at its `limit`, it was its own timeout: a false one if it would have answered
/// its caller `in_time`.
struct Cut<'a> {
    timer: &'a ManualTimer,
    ledger: &'a Ledger,
    adaptive: Option<&'a AdaptiveTimeout>,
    index: usize,
    from: Instant,
    work: Duration,
    limit: Option<Instant>,
    in_time: bool,
    armed: bool,
}

impl Cut<'_> {
    /// The attempt ended on its own: nothing to record at the drop. Its work.
    fn disarm(mut self) -> Duration {
        self.armed = false;
        self.work
    }
}

impl Drop for Cut<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let now = self.timer.now();
        let worked = now.saturating_duration_since(self.from).min(self.work);
        if self.limit.is_some_and(|limit| now >= limit) {
            self.ledger.timed_out(self.index, worked, self.in_time);
            if let Some(adaptive) = self.adaptive {
                adaptive.record_late(self.in_time);
            }
        } else {
            self.ledger.cut(self.index, worked);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> SimConfig {
        SimConfig {
            calls: 2_000,
            ..SimConfig::default()
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_numbers() {
        let config = small();
        assert_eq!(run(&config).unwrap(), run(&config).unwrap());
        let other = SimConfig { seed: 2, ..small() };
        assert_ne!(run(&config).unwrap(), run(&other).unwrap());
    }

    #[test]
    fn the_adaptive_timeout_runs_beside_the_fixed_one_deterministically() {
        let both = SimConfig {
            timeouts: TimeoutChoice::Both,
            ..small()
        };
        let reports = run(&both).unwrap();
        let labels: Vec<&str> = reports.iter().map(|r| r.mode).collect();
        assert_eq!(
            labels,
            ["blind", "aware", "blind_adaptive", "aware_adaptive"]
        );
        assert_eq!(
            reports,
            run(&both).unwrap(),
            "the same seed, the same numbers"
        );
        // The fixed rows are the fixed-only run's: the adaptive runs are separate.
        assert_eq!(reports[..2], run(&small()).unwrap()[..]);
        for r in &reports {
            let cut = r
                .timed_out_pct
                .expect("the simulation observes its timeouts");
            assert!(cut > 0.0 && cut < 100.0, "{r:?}");
            let false_pct = r.false_timeout_pct.expect("some attempts were cut");
            assert!((0.0..=100.0).contains(&false_pct), "{r:?}");
        }
        assert_eq!(reports[0].attempt_timeout_ms, 100.0);
        for r in &reports[2..] {
            // Learnt, within the floor and the ceiling, and not the fixed value.
            assert!(
                (20.0..=1_000.0).contains(&r.attempt_timeout_ms) && r.attempt_timeout_ms != 100.0,
                "{r:?}"
            );
        }
        let json = super::super::to_json(&reports);
        for key in ["timed_out_pct", "false_timeout_pct", "attempt_timeout_ms"] {
            assert!(json["aware_adaptive"][key].is_f64(), "{key} in {json}");
        }
        let text = super::super::table("t", &reports);
        assert!(
            text.contains("Blind, the adaptive attempt timeout"),
            "{text}"
        );
        assert!(
            text.contains("Aware, the adaptive attempt timeout"),
            "{text}"
        );
    }

    #[test]
    fn a_cut_is_a_timeout_only_at_the_attempts_own_limit() {
        let timer = ManualTimer::new();
        let ledger = Ledger::observing_timeouts();
        let t0 = timer.now();
        let call = ledger.begin_call(t0, t0 + Duration::from_millis(100));
        let adaptive = Scenario::default().adaptive_timeout().unwrap();
        let attempt = |limit: Option<Instant>, work_ms: u64| SimAttempt {
            call,
            work: Duration::from_millis(work_ms),
            told: None,
            limit,
            caller_deadline: t0 + Duration::from_millis(100),
            network: Duration::ZERO,
        };
        // Cut at its 30 ms limit, it would have answered at 50 ms, in time: a false timeout.
        let limit = Some(t0 + Duration::from_millis(30));
        let first = attempt_future(&timer, &ledger, Some(&adaptive), attempt(limit, 50));
        // Cut at 30 ms too, it would have answered at 150 ms, too late: a true one.
        let second = attempt_future(&timer, &ledger, Some(&adaptive), attempt(limit, 150));
        // Cut at 30 ms before its limit (a lost hedge, say): not a timeout at all.
        let later = Some(t0 + Duration::from_millis(60));
        let third = attempt_future(&timer, &ledger, Some(&adaptive), attempt(later, 50));
        timer.advance(Duration::from_millis(30));
        drop((first, second, third));
        ledger.end_call(call, timer.now(), None);
        let report = ledger.report("blind", Duration::from_millis(30));
        assert_eq!(report.timed_out_pct, Some(100.0 * 2.0 / 3.0));
        assert_eq!(report.false_timeout_pct, Some(50.0));
        let stats = adaptive.stats();
        assert_eq!((stats.late_succeeded, stats.late_failed), (1, 1));
    }

    #[test]
    fn invalid_settings_are_refused_by_name() {
        let zero = SimConfig {
            calls: 0,
            ..small()
        };
        assert_eq!(zero.validate().unwrap_err().field(), "calls");
        let rate = SimConfig {
            rate: f64::NAN,
            ..small()
        };
        assert_eq!(rate.validate().unwrap_err().field(), "rate");
        let mut deadline = small();
        deadline.scenario.deadline = Duration::ZERO;
        assert_eq!(deadline.validate().unwrap_err().field(), "deadline");
    }
}
