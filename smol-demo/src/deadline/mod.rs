//! `tailguard-demo deadline`: callers with a deadline, a backend with a heavy latency tail, and a
//! retry + hedge [`Pipeline`] that is blind to the caller's deadline or aware of it.
//!
//! Both modes run the same pipeline (the same attempt timeout, retries, backoff and hedging)
//! over the same backend; they differ in one thing, the caller's deadline:
//!
//! - **blind**: the pipeline never hears of it ([`Pipeline::call`]). It retries and hedges on
//!   its own schedule, and attempts go on after the caller has given up; the backend is told
//!   nothing and does whatever it is asked.
//! - **aware**: the call is made with the deadline ([`Pipeline::call_until`]). The pipeline
//!   starts no retry or hedge that its own latency window predicts cannot finish in the time
//!   left, cuts everything at the deadline, and tells the backend each attempt's remaining time
//!   (`tailguard-timeout`); the backend refuses at once work longer than that (it knows what its
//!   work takes: the service time drawn for the request).
//!
//! What is measured, per mode ([`ModeReport`]):
//!
//! - `late_pct`: attempts that finished (delivered a response) after their caller's deadline,
//!   as a % of attempts: work done for nobody;
//! - `wasted_pct`: backend work whose result nobody could use, as a % of all backend work:
//!   everything but the attempt that answered its caller in time (lost hedges, attempts cut by
//!   a timeout or the deadline, late ones). An attempt cut by the client stops the backend's
//!   work there (the connection closes); a refused one costs nothing;
//! - `success_pct`: calls answered successfully by their deadline;
//! - `p99_ms`: the 99th percentile of how long a call kept the pipeline busy (until it
//!   returned), whether or not its caller was still waiting;
//! - `attempts`: operations started (retries and hedges included);
//! - `timed_out_pct` and `false_timeout_pct` (`--sim`): attempts cut by their own attempt
//!   timeout, as a % of attempts, and of those the % that would have answered their caller in
//!   time (false timeouts); `attempt_timeout_ms`, the attempt timeout at the end of the run.
//!
//! With `--attempt-timeout adaptive` (or `both`, side by side with the fixed one) the pipeline's
//! attempt timeout is learnt from its own attempts: see [`timeouts`].
//!
//! [`sim`] runs it in virtual time on a [`ManualTimer`](tailguard::time::ManualTimer) with seeded
//! randomness (the same seed prints the same numbers); [`live`] over HTTP against the demo's
//! backend replicas.

pub mod command;
pub mod live;
pub mod sim;
pub mod timeouts;

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use tailguard::backoff::{Backoff, Jitter};
use tailguard::hedge::Hedge;
use tailguard::pipeline::Pipeline;
use tailguard::time::Timer;
use tailguard::ConfigError;

use crate::backend::LatencyDist;
use crate::percentile;
pub use timeouts::{timeout_verdict, TimeoutChoice, TimeoutKind};

/// How the pipeline treats the caller's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// The pipeline does not know it.
    Blind,
    /// The pipeline bounds the call by it, decides by it, and sends it on.
    Aware,
}

impl Mode {
    /// Both, the simpler first.
    pub const ALL: [Mode; 2] = [Mode::Blind, Mode::Aware];

    /// The JSON key and table label.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Blind => "blind",
            Mode::Aware => "aware",
        }
    }
}

/// What both the simulation and the live run model: the callers, the backend, the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// How long callers wait for their answer, on average: each caller's own deadline is drawn
    /// uniformly from `deadline × (1 ± deadline_spread)`.
    pub deadline: Duration,
    /// The spread of the callers' deadlines around `deadline`, in [0, 1).
    pub deadline_spread: f64,
    /// The backend's service time (a heavy tail).
    pub latency: LatencyDist,
    /// The pipeline's limit on each attempt (with [`TimeoutKind::Fixed`]).
    pub attempt_timeout: Duration,
    /// Whether that limit is fixed or learnt ([`Scenario::adaptive_timeout`]).
    pub timeout_kind: TimeoutKind,
    /// Tries per call, the first included.
    pub max_attempts: u32,
    /// The first retry's delay (exponential, full jitter, capped at 4x).
    pub backoff: Duration,
    /// A backup attempt after this long without an answer (one per round at most).
    pub hedge_delay: Duration,
    /// Aware mode: the percentile of recent attempt latency a retry or hedge must fit in.
    pub predict_percentile: f64,
    /// Aware mode: the predicted latency until the window holds enough samples.
    pub predict_floor: Duration,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            deadline: Duration::from_millis(100),
            deadline_spread: 0.8,
            latency: LatencyDist::LogNormal {
                median: Duration::from_millis(12),
                sigma: 1.2,
            },
            attempt_timeout: Duration::from_millis(100),
            timeout_kind: TimeoutKind::Fixed,
            max_attempts: 3,
            backoff: Duration::from_millis(5),
            hedge_delay: Duration::from_millis(40),
            predict_percentile: 0.5,
            predict_floor: Duration::from_millis(12),
        }
    }
}

impl Scenario {
    /// Checks the settings (the pipeline checks the rest when built).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.deadline.is_zero() {
            return Err(ConfigError::new("deadline", "must be longer than zero"));
        }
        if !(0.0..1.0).contains(&self.deadline_spread) {
            return Err(ConfigError::new(
                "deadline_spread",
                format!("must be in [0, 1), got {}", self.deadline_spread),
            ));
        }
        self.latency.validate()?;
        self.pipeline(tailguard::time::ManualTimer::new(), Mode::Aware, 0)
            .map(|_| ())
    }

    /// One caller's deadline, from `u` uniform in [0, 1).
    pub fn caller_deadline(&self, u: f64) -> Duration {
        self.deadline
            .mul_f64(1.0 - self.deadline_spread + 2.0 * self.deadline_spread * u)
    }

    /// The pipeline of `mode` on `timer`: the same layers in both modes; only the aware mode
    /// has predictions to use, since only it is given deadlines.
    pub fn pipeline<T: Timer>(
        &self,
        timer: T,
        mode: Mode,
        seed: u64,
    ) -> Result<Pipeline<T>, ConfigError> {
        let backoff = Backoff::exponential(self.backoff)
            .max_delay(self.backoff * 4)
            .jitter(Jitter::Full)
            .seed(seed)
            .build()?;
        let hedge = Hedge::builder()
            .fixed_delay(self.hedge_delay)
            .max_attempts(2)
            .unbudgeted()
            .build()?;
        let builder = Pipeline::with_timer(timer);
        let builder = match self.timeout_kind {
            TimeoutKind::Fixed => builder.attempt_timeout(self.attempt_timeout),
            TimeoutKind::Adaptive => builder.attempt_timeout_adaptive(self.adaptive_timeout()?),
        };
        let builder = builder
            .max_attempts(self.max_attempts)
            .backoff(backoff)
            .hedge(hedge);
        match mode {
            Mode::Blind => builder.build(),
            Mode::Aware => builder
                .predict_percentile(self.predict_percentile)
                .predict_floor(self.predict_floor)
                .build(),
        }
    }
}

/// One attempt, as the ledger keeps it.
#[derive(Debug, Clone, Copy)]
struct AttemptRecord {
    call: usize,
    /// When it delivered a response (an answer or a refusal); `None` while running or if cut.
    finished: Option<Instant>,
    /// The backend's work for it.
    work: Duration,
    /// Cut by its own attempt timeout: whether it would have answered its caller in time.
    timed_out: Option<bool>,
}

/// One call, as the ledger keeps it.
#[derive(Debug, Clone, Copy)]
struct CallRecord {
    start: Instant,
    deadline: Instant,
    /// When the pipeline returned, and the attempt that answered if it succeeded.
    end: Option<(Instant, Option<usize>)>,
}

/// Every call and attempt of one mode, shared by the tasks that make them.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    inner: Mutex<Entries>,
    /// Whoever fills it says which attempts their own timeout cut (the simulation does).
    observes_timeouts: bool,
}

#[derive(Debug, Default)]
struct Entries {
    calls: Vec<CallRecord>,
    attempts: Vec<AttemptRecord>,
}

impl Ledger {
    /// A ledger told which attempts their own timeout cut ([`Ledger::timed_out`]).
    pub(crate) fn observing_timeouts() -> Self {
        Ledger {
            observes_timeouts: true,
            ..Ledger::default()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A call started at `start` by a caller who waits until `deadline`; its number.
    pub(crate) fn begin_call(&self, start: Instant, deadline: Instant) -> usize {
        let mut entries = self.lock();
        entries.calls.push(CallRecord {
            start,
            deadline,
            end: None,
        });
        entries.calls.len() - 1
    }

    /// An attempt of `call` started; its number.
    pub(crate) fn begin_attempt(&self, call: usize) -> usize {
        let mut entries = self.lock();
        entries.attempts.push(AttemptRecord {
            call,
            finished: None,
            work: Duration::ZERO,
            timed_out: None,
        });
        entries.attempts.len() - 1
    }

    /// `attempt` delivered its response at `at`, after `work` of the backend's.
    pub(crate) fn finish(&self, attempt: usize, at: Instant, work: Duration) {
        let record = &mut self.lock().attempts[attempt];
        record.finished = Some(at);
        record.work = work;
    }

    /// `attempt` was cut by the client after `work` of the backend's.
    pub(crate) fn cut(&self, attempt: usize, work: Duration) {
        self.lock().attempts[attempt].work = work;
    }

    /// `attempt` was cut by its own attempt timeout after `work` of the backend's; it would
    /// have answered its caller in time if `in_time`.
    pub(crate) fn timed_out(&self, attempt: usize, work: Duration, in_time: bool) {
        let record = &mut self.lock().attempts[attempt];
        record.work = work;
        record.timed_out = Some(in_time);
    }

    /// `call`'s pipeline returned at `at`, answered by `winner` if it succeeded.
    pub(crate) fn end_call(&self, call: usize, at: Instant, winner: Option<usize>) {
        self.lock().calls[call].end = Some((at, winner));
    }

    /// The measures of the row `label` (a mode, with its timeout), over the calls that ended;
    /// `attempt_timeout` is the one the run ended with.
    pub(crate) fn report(&self, label: &'static str, attempt_timeout: Duration) -> ModeReport {
        let entries = self.lock();
        let mut durations = Vec::with_capacity(entries.calls.len());
        let (mut ok, mut useful) = (0u64, Duration::ZERO);
        let mut calls = 0u64;
        for call in &entries.calls {
            let Some((end, winner)) = call.end else {
                continue;
            };
            calls += 1;
            durations.push(end.saturating_duration_since(call.start));
            if let Some(winner) = winner.filter(|_| end <= call.deadline) {
                ok += 1;
                useful += entries.attempts[winner].work;
            }
        }
        durations.sort_unstable();
        let attempts = entries.attempts.len() as u64;
        let late = entries
            .attempts
            .iter()
            .filter(|a| {
                a.finished
                    .is_some_and(|at| at > entries.calls[a.call].deadline)
            })
            .count() as u64;
        let work: Duration = entries.attempts.iter().map(|a| a.work).sum();
        let cut = entries.attempts.iter().filter_map(|a| a.timed_out);
        let (timed_out, false_timeouts) = cut.fold((0u64, 0u64), |(n, f), in_time| {
            (n + 1, f + u64::from(in_time))
        });
        let pct = |part: f64, whole: f64| {
            if whole > 0.0 {
                100.0 * part / whole
            } else {
                0.0
            }
        };
        ModeReport {
            mode: label,
            calls,
            attempts,
            late,
            late_pct: pct(late as f64, attempts as f64),
            wasted_pct: pct(
                work.saturating_sub(useful).as_secs_f64(),
                work.as_secs_f64(),
            ),
            success_pct: pct(ok as f64, calls as f64),
            p99_ms: percentile::of_sorted(&durations, 0.99).map(crate::ms::rounded),
            attempt_timeout_ms: crate::ms::rounded(attempt_timeout),
            timed_out_pct: self
                .observes_timeouts
                .then(|| pct(timed_out as f64, attempts as f64)),
            false_timeout_pct: (self.observes_timeouts && timed_out > 0)
                .then(|| pct(false_timeouts as f64, timed_out as f64)),
        }
    }
}

/// What one mode measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModeReport {
    /// `blind` or `aware`, `blind_adaptive` or `aware_adaptive` with the adaptive timeout.
    #[serde(skip)]
    pub mode: &'static str,
    /// Calls that ended.
    pub calls: u64,
    /// Operations started (retries and hedges included).
    pub attempts: u64,
    /// Attempts that delivered a response after their caller's deadline.
    pub late: u64,
    /// `late` as a % of `attempts`.
    pub late_pct: f64,
    /// Backend work whose result nobody could use, as a % of all backend work.
    pub wasted_pct: f64,
    /// Calls answered successfully by their deadline, as a % of calls.
    pub success_pct: f64,
    /// The 99th percentile of how long a call kept the pipeline busy, in ms (`null` without
    /// the 1,000 calls it needs).
    pub p99_ms: Option<f64>,
    /// The attempt timeout the run ended with, in ms: the fixed one, or what the adaptive one
    /// had learnt.
    pub attempt_timeout_ms: f64,
    /// Attempts cut by their own attempt timeout, as a % of attempts (`null` where not
    /// observed: live).
    pub timed_out_pct: Option<f64>,
    /// Of the attempts cut by their own timeout, the % that would have answered their caller
    /// by its deadline: false timeouts (`null` without a cut, or where not observed).
    pub false_timeout_pct: Option<f64>,
}

/// One JSON object keyed by mode.
pub fn to_json(reports: &[ModeReport]) -> serde_json::Value {
    let mut object = serde_json::Map::new();
    for report in reports {
        object.insert(
            report.mode.to_string(),
            serde_json::to_value(report).unwrap_or_default(),
        );
    }
    serde_json::Value::Object(object)
}

/// The table, and the sentences drawn from it: blind against aware, and, where both were run,
/// the adaptive timeout against the fixed one.
pub fn table(title: &str, reports: &[ModeReport]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{title}\n");
    let _ = writeln!(
        out,
        "{:<14} {:>8} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9} {:>7} {:>8}",
        "mode",
        "calls",
        "attempts",
        "late %",
        "wasted %",
        "success %",
        "p99 ms",
        "limit ms",
        "cut %",
        "false %"
    );
    let or_na = |v: Option<f64>, digits: usize| {
        v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.digits$}"))
    };
    for r in reports {
        let _ = writeln!(
            out,
            "{:<14} {:>8} {:>9} {:>7.2} {:>9.1} {:>9.2} {:>9} {:>9.1} {:>7} {:>8}",
            r.mode,
            r.calls,
            r.attempts,
            r.late_pct,
            r.wasted_pct,
            r.success_pct,
            or_na(r.p99_ms, 1),
            r.attempt_timeout_ms,
            or_na(r.timed_out_pct, 2),
            or_na(r.false_timeout_pct, 1),
        );
    }
    let find = |label: &str| reports.iter().find(|r| r.mode == label);
    if let (Some(blind), Some(aware)) = (find("blind"), find("aware")) {
        let _ = writeln!(out, "\n{}", verdict(blind, aware));
    }
    for mode in Mode::ALL {
        let adaptive = TimeoutKind::Adaptive.label(mode);
        if let (Some(fixed), Some(adaptive)) = (find(mode.name()), find(adaptive)) {
            let _ = writeln!(out, "\n{}", timeout_verdict(mode, fixed, adaptive));
        }
    }
    out
}

/// What the table says, in one sentence: the late attempts and wasted work of each mode, and
/// what the awareness cost or gained in successes.
pub fn verdict(blind: &ModeReport, aware: &ModeReport) -> String {
    let success = aware.success_pct - blind.success_pct;
    let success = if success.abs() < 0.05 {
        "the same successes".to_string()
    } else if success > 0.0 {
        format!("{success:.1} points more successes")
    } else {
        format!("{:.1} points fewer successes", -success)
    };
    format!(
        "Aware of the deadline, {:.2}% of attempts finished after it (blind: {:.2}%) and {:.1}% \
         of the backend's work was wasted (blind: {:.1}%), with {success}.",
        aware.late_pct, blind.late_pct, aware.wasted_pct, blind.wasted_pct
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ledger_counts_late_attempts_and_useful_work() {
        let ledger = Ledger::default();
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // Call 0: attempt 0 cut at 60 ms, attempt 1 answers at 80 ms, in time.
        let c0 = ledger.begin_call(t0, t0 + ms(100));
        let a0 = ledger.begin_attempt(c0);
        ledger.cut(a0, ms(60));
        let a1 = ledger.begin_attempt(c0);
        ledger.finish(a1, t0 + ms(80), ms(10));
        ledger.end_call(c0, t0 + ms(80), Some(a1));
        // Call 1: one attempt answers at 130 ms, after the deadline.
        let c1 = ledger.begin_call(t0, t0 + ms(100));
        let a2 = ledger.begin_attempt(c1);
        ledger.finish(a2, t0 + ms(130), ms(30));
        ledger.end_call(c1, t0 + ms(130), Some(a2));
        let report = ledger.report("blind", ms(100));
        assert_eq!((report.calls, report.attempts, report.late), (2, 3, 1));
        assert!((report.success_pct - 50.0).abs() < 1e-9);
        assert!((report.wasted_pct - 90.0).abs() < 1e-9, "{report:?}");
        assert_eq!(report.p99_ms, None, "two calls cannot support a p99");
    }
}
