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

use std::cell::RefCell;
use std::future::Future;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use tailguard::time::{ManualTimer, Timer};
use tailguard::ConfigError;

use super::{Ledger, Mode, ModeReport, Scenario};

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
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            scenario: Scenario::default(),
            calls: 20_000,
            rate: 200.0,
            network: Duration::from_micros(500),
            seed: 1,
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

/// Runs both modes, blind first.
pub fn run(config: &SimConfig) -> Result<Vec<ModeReport>, ConfigError> {
    config.validate()?;
    Mode::ALL
        .iter()
        .map(|&mode| run_mode(config, mode))
        .collect()
}

/// Runs one mode on a fresh virtual clock.
pub fn run_mode(config: &SimConfig, mode: Mode) -> Result<ModeReport, ConfigError> {
    let timer = ManualTimer::new();
    let scenario = &config.scenario;
    let pipeline = scenario.pipeline(timer.clone(), mode, config.seed)?;
    let ledger = Ledger::default();
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
                let told = match mode {
                    Mode::Blind => None,
                    Mode::Aware => attempt.deadline(),
                };
                attempt_future(timer, ledger, id, work, told, config.network)
            };
            let result = match mode {
                Mode::Blind => pipeline.call(op).await,
                Mode::Aware => pipeline.call_until(deadline, op).await,
            };
            ledger.end_call(id, timer.now(), result.ok());
        });
    }
    timer.block_on(calls.collect::<Vec<()>>());
    Ok(ledger.report(mode))
}

/// One attempt: `work` of service after `network`, and `network` back; refused at once by the
/// backend when it was `told` a deadline that `work` would pass. Cut (dropped) by the client,
/// it stops the backend's work there.
fn attempt_future<'a>(
    timer: &'a ManualTimer,
    ledger: &'a Ledger,
    call: usize,
    work: Duration,
    told: Option<Instant>,
    network: Duration,
) -> impl Future<Output = Result<usize, Refused>> + 'a {
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
        index,
        from: sent + network,
        work: if refused { Duration::ZERO } else { work },
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
/// `work`.
struct Cut<'a> {
    timer: &'a ManualTimer,
    ledger: &'a Ledger,
    index: usize,
    from: Instant,
    work: Duration,
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
        if self.armed {
            let worked = self.timer.now().saturating_duration_since(self.from);
            self.ledger.cut(self.index, worked.min(self.work));
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
