//! Model-based test: random sequences of acquire / record / drop / advance / manual overrides,
//! run against the real state machine and against a small reference model written straight
//! from the rules in the module documentation. After every step they must agree on the
//! admission decision, the state and the metrics.
//!
//! The second test records from several threads, switching between them so that threads go
//! idle with outcomes in the window. A count window is then the last `N` calls only up to its
//! documented bound: every call it holds is among the last `N + (T - 1) * (P - 1)` calls (`T`
//! stripes in use, `P` = 512 calls per chunk for these small windows), and it holds `N` calls
//! once `N` have been made. The model tracks that range: the metrics must fall inside it, the
//! breaker must open when every window the bound allows would open it and stay closed when
//! none would, and in between the model follows the breaker's choice.

use std::collections::VecDeque;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use tailguard::backoff::{Backoff, Jitter};
use tailguard::breaker::{CircuitBreakerBuilder, Outcome, State, StateMachine, Ticket};

const MS: Duration = Duration::from_millis(1);
/// Calls per chunk of a count window of up to 32,768 calls (see the window's documentation).
const CHUNK: u64 = 512;
/// Threads recording in the multi-threaded test: this one and three workers.
const THREADS: usize = 4;

#[derive(Clone, Debug)]
enum WindowSpec {
    Count(u32),
    Time { bucket_ms: u64, buckets: u32 },
}

/// The open-duration backoff, without jitter so the model can compute it: opening `n` (from 0
/// since the breaker last closed) lasts `min(cap, growth(min(n, max_retries - 1)))`.
#[derive(Clone, Debug)]
struct OpenSpec {
    base_ms: u64,
    growth: Growth,
    cap_ms: Option<u64>,
    max_retries: Option<u32>,
}

#[derive(Clone, Copy, Debug)]
enum Growth {
    Constant,
    Linear { step_ms: u64 },
    Exponential { factor: u32 },
}

impl OpenSpec {
    fn backoff(&self) -> Backoff {
        let base = MS * self.base_ms as u32;
        let mut builder = match self.growth {
            Growth::Constant => Backoff::constant(base),
            Growth::Linear { step_ms } => Backoff::linear(base, MS * step_ms as u32),
            Growth::Exponential { factor } => Backoff::exponential(base).factor(f64::from(factor)),
        };
        if let Some(cap) = self.cap_ms {
            builder = builder.max_delay(MS * cap as u32);
        }
        if let Some(max) = self.max_retries {
            builder = builder.max_retries(max);
        }
        builder.jitter(Jitter::None).build().expect("valid backoff")
    }

    /// The model's rule, written from the documentation.
    fn duration(&self, opening: usize) -> Duration {
        let n = match self.max_retries {
            Some(max) => opening.min(max as usize - 1),
            None => opening,
        } as u64;
        let ms = match self.growth {
            Growth::Constant => self.base_ms,
            Growth::Linear { step_ms } => self.base_ms + n * step_ms,
            Growth::Exponential { factor } => self
                .base_ms
                .saturating_mul(u64::from(factor).saturating_pow(n as u32)),
        };
        Duration::from_millis(self.cap_ms.map_or(ms, |cap| ms.min(cap)))
    }
}

fn open_spec() -> impl Strategy<Value = OpenSpec> {
    let growth = prop_oneof![
        Just(Growth::Constant),
        (0u64..20).prop_map(|step_ms| Growth::Linear { step_ms }),
        (1u32..4).prop_map(|factor| Growth::Exponential { factor }),
    ];
    (
        1u64..40,
        growth,
        proptest::option::of(0u64..100),
        proptest::option::of(1u32..4),
    )
        .prop_map(|(base_ms, growth, cap_extra, max_retries)| OpenSpec {
            base_ms,
            growth,
            cap_ms: cap_extra.map(|extra| base_ms + extra),
            max_retries,
        })
}

#[derive(Clone, Debug)]
struct Spec {
    window: WindowSpec,
    minimum_calls: u64,
    failure_rate: f64,
    slow: Option<(Duration, f64)>,
    consecutive: Option<u64>,
    open: OpenSpec,
    half_open_calls: u32,
    success_rate: f64,
    half_open_timeout: Duration,
    stripes: usize,
}

impl Spec {
    fn build(&self, now: Instant) -> StateMachine {
        let mut builder = CircuitBreakerBuilder::new()
            .minimum_calls(self.minimum_calls)
            .failure_rate(self.failure_rate)
            .open_backoff(self.open.backoff())
            .half_open_calls(self.half_open_calls)
            .half_open_success_rate(self.success_rate)
            .half_open_timeout(self.half_open_timeout)
            .stripes(self.stripes);
        builder = match self.window {
            WindowSpec::Count(n) => builder.count_window(n),
            WindowSpec::Time { bucket_ms, buckets } => {
                builder.time_window(MS * (bucket_ms as u32 * buckets), buckets)
            }
        };
        if let Some((limit, rate)) = self.slow {
            builder = builder.slow_calls(limit, rate);
        }
        if let Some(limit) = self.consecutive {
            builder = builder.consecutive_failures(limit);
        }
        builder.build_state_machine_at(now).expect("valid spec")
    }

    fn probes_to_close(&self) -> u32 {
        ((self.success_rate * f64::from(self.half_open_calls)).ceil() as u32)
            .clamp(1, self.half_open_calls)
    }
}

fn spec() -> impl Strategy<Value = Spec> {
    spec_with(prop_oneof![
        (1u32..8).prop_map(WindowSpec::Count),
        time_window(),
    ])
}

/// Also count windows large enough that the error bound of a count window spread over
/// threads is narrower than the window.
fn threaded_spec() -> impl Strategy<Value = Spec> {
    spec_with(prop_oneof![
        (1u32..8).prop_map(WindowSpec::Count),
        (100u32..200).prop_map(WindowSpec::Count),
        time_window(),
    ])
}

fn time_window() -> impl Strategy<Value = WindowSpec> {
    (1u64..5, 1u32..5).prop_map(|(b, n)| WindowSpec::Time {
        bucket_ms: b * 10,
        buckets: n,
    })
}

fn spec_with(window: impl Strategy<Value = WindowSpec>) -> impl Strategy<Value = Spec> {
    let rate = prop_oneof![Just(0.25), Just(0.5), Just(0.75), Just(1.0)];
    (
        window,
        1u64..8,
        rate.clone(),
        proptest::option::of((5u64..50, rate)),
        proptest::option::of(1u64..5),
        open_spec(),
        1u32..4,
        prop_oneof![Just(0.5), Just(1.0)],
        10u64..100,
        prop_oneof![Just(0usize), Just(1), Just(2), Just(8)],
    )
        .prop_map(
            |(
                window,
                min,
                failure_rate,
                slow,
                consecutive,
                open,
                probes,
                success,
                timeout,
                stripes,
            )| {
                let minimum_calls = match window {
                    WindowSpec::Count(n) => min.min(u64::from(n)),
                    WindowSpec::Time { .. } => min,
                };
                Spec {
                    window,
                    minimum_calls,
                    failure_rate,
                    slow: slow.map(|(ms, rate)| (MS * ms as u32, rate)),
                    consecutive,
                    open,
                    half_open_calls: probes,
                    success_rate: success,
                    half_open_timeout: MS * timeout as u32,
                    stripes,
                }
            },
        )
}

#[derive(Clone, Debug)]
enum Op {
    Acquire,
    Record(usize, Outcome),
    Drop(usize),
    Advance(u64),
    ForceOpen,
    Disable,
    Reset,
    /// Records from now on go through this thread (0 is the test's own).
    Switch(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let outcome = prop_oneof![
        3 => Just(Outcome::Success),
        3 => Just(Outcome::Failure),
        1 => Just(Outcome::Ignored),
    ];
    prop_oneof![
        8 => Just(Op::Acquire),
        8 => (any::<usize>(), outcome).prop_map(|(i, o)| Op::Record(i, o)),
        2 => any::<usize>().prop_map(Op::Drop),
        6 => (0u64..60).prop_map(Op::Advance),
        1 => prop_oneof![Just(Op::ForceOpen), Just(Op::Disable), Just(Op::Reset)],
    ]
}

/// Ops with thread switches: a thread records a run of outcomes, then often goes idle for a
/// long while with its outcomes still in the window.
fn threaded_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => op(),
        1 => (0..THREADS).prop_map(Op::Switch),
    ]
}

// ---------------------------------------------------------------------------------------------
// The reference model: the rules, written as plainly as possible.

#[derive(Clone, Copy, Debug)]
struct Call {
    bucket: u64,
    failed: bool,
    slow: bool,
}

#[derive(Clone, Copy, Debug)]
struct ModelTicket {
    generation: u64,
    probe: Option<u64>,
    started: Instant,
}

#[derive(Debug)]
struct Model {
    spec: Spec,
    origin: Instant,
    state: State,
    generation: u64,
    /// The calls of the current (or last) closed or disabled period, oldest first (a count
    /// window keeps its last `N` plus as many as its error bound can reach back).
    window: VecDeque<Call>,
    /// The threads that recorded into the window since it was last emptied (a bit each).
    threads: u32,
    streak: u64,
    open_until: Instant,
    /// How many open durations have been used since the breaker last closed.
    openings: usize,
    probes: Vec<(u64, Instant)>,
    next_probe: u64,
    successes: u32,
    failures: u32,
    rejections: u64,
}

/// What the window may hold: its calls, and (least, most) failures and slow calls.
#[derive(Debug)]
struct Bounds {
    calls: u64,
    failures: (u64, u64),
    slow: (u64, u64),
}

#[derive(Debug, PartialEq)]
enum Decision {
    Admitted { probe: bool },
    Rejected(State, Option<Duration>),
}

impl Model {
    fn new(spec: Spec, origin: Instant) -> Self {
        Model {
            spec,
            origin,
            state: State::Closed,
            generation: 0,
            window: VecDeque::new(),
            threads: 0,
            streak: 0,
            open_until: origin,
            openings: 0,
            probes: Vec::new(),
            next_probe: 0,
            successes: 0,
            failures: 0,
            rejections: 0,
        }
    }

    fn bucket(&self, now: Instant) -> u64 {
        match self.spec.window {
            WindowSpec::Count(_) => 0,
            WindowSpec::Time { bucket_ms, .. } => {
                (now - self.origin).as_nanos() as u64 / (bucket_ms * 1_000_000)
            }
        }
    }

    /// How far back past the last `N` calls a count window may reach: `(T - 1) * (P - 1)`,
    /// with `T` the stripes in use (each thread its own, or the shared one beyond them).
    fn reach(&self) -> usize {
        let stripes_in_use = (self.threads.count_ones() as usize).min(self.spec.stripes + 1);
        stripes_in_use.saturating_sub(1) * (CHUNK as usize - 1)
    }

    /// The calls the window holds at `now`, if every thread recorded into one stripe: the
    /// last `N` calls, or those of the last `buckets` slices.
    fn in_window(&self, now: Instant) -> Vec<Call> {
        match self.spec.window {
            WindowSpec::Count(n) => {
                let skip = self.window.len().saturating_sub(n as usize);
                self.window.iter().skip(skip).copied().collect()
            }
            WindowSpec::Time { buckets, .. } => {
                let current = self.bucket(now);
                let oldest = current.saturating_sub(u64::from(buckets) - 1);
                self.window
                    .iter()
                    .copied()
                    .filter(|c| c.bucket >= oldest && c.bucket <= current)
                    .collect()
            }
        }
    }

    fn enter(&mut self, to: State, now: Instant) {
        self.generation += 1;
        if self.state == State::HalfOpen {
            self.probes.clear();
        }
        match to {
            State::Open => {
                let d = self.spec.open.duration(self.openings);
                self.openings += 1;
                self.open_until = now + d;
            }
            State::HalfOpen => {
                self.successes = 0;
                self.failures = 0;
            }
            State::Closed | State::Disabled => {
                self.window.clear();
                self.threads = 0;
                self.streak = 0;
                if to == State::Closed {
                    self.openings = 0;
                }
            }
            State::ForcedOpen => {}
        }
        self.state = to;
    }

    fn judge_round(&mut self, now: Instant) {
        let needed = self.spec.probes_to_close();
        if self.successes >= needed {
            self.enter(State::Closed, now);
        } else if self.failures > self.spec.half_open_calls - needed {
            self.enter(State::Open, now);
        }
    }

    fn acquire(&mut self, now: Instant) -> (Decision, Option<ModelTicket>) {
        loop {
            match self.state {
                State::Closed | State::Disabled => {
                    let ticket = ModelTicket {
                        generation: self.generation,
                        probe: None,
                        started: now,
                    };
                    return (Decision::Admitted { probe: false }, Some(ticket));
                }
                State::ForcedOpen => {
                    self.rejections += 1;
                    return (Decision::Rejected(State::ForcedOpen, None), None);
                }
                State::Open => {
                    if now < self.open_until {
                        self.rejections += 1;
                        let wait = self.open_until - now;
                        return (Decision::Rejected(State::Open, Some(wait)), None);
                    }
                    self.enter(State::HalfOpen, now);
                }
                State::HalfOpen => {
                    let timeout = self.spec.half_open_timeout;
                    let before = self.probes.len();
                    self.probes.retain(|&(_, started)| started + timeout > now);
                    let expired = (before - self.probes.len()) as u32;
                    if expired > 0 {
                        self.failures += expired;
                        self.judge_round(now);
                        if self.state != State::HalfOpen {
                            continue;
                        }
                    }
                    let taken = self.probes.len() as u32 + self.successes + self.failures;
                    if taken < self.spec.half_open_calls {
                        let id = self.next_probe;
                        self.next_probe += 1;
                        self.probes.push((id, now));
                        let ticket = ModelTicket {
                            generation: self.generation,
                            probe: Some(id),
                            started: now,
                        };
                        return (Decision::Admitted { probe: true }, Some(ticket));
                    }
                    self.rejections += 1;
                    let oldest = self.probes.iter().map(|&(_, s)| s).min().unwrap();
                    let wait = (oldest + timeout).saturating_duration_since(now);
                    return (Decision::Rejected(State::HalfOpen, Some(wait)), None);
                }
            }
        }
    }

    fn is_slow(&self, ticket: &ModelTicket, now: Instant) -> bool {
        self.spec
            .slow
            .is_some_and(|(limit, _)| now - ticket.started >= limit)
    }

    fn take_probe(&mut self, ticket: &ModelTicket) -> bool {
        let Some(id) = ticket.probe else { return false };
        if self.state != State::HalfOpen || ticket.generation != self.generation {
            return false;
        }
        let before = self.probes.len();
        self.probes.retain(|&(p, _)| p != id);
        self.probes.len() < before
    }

    /// The bounds on the window's counts the documented error allows: its calls, and the
    /// least and most failures and slow calls among them.
    fn bounds(&self, now: Instant) -> Bounds {
        let exact = self.in_window(now);
        let calls = exact.len() as u64;
        let reach = match self.spec.window {
            WindowSpec::Count(_) => self.reach(),
            WindowSpec::Time { .. } => 0,
        };
        // Every call held is among the last `calls + reach`.
        let skip = self.window.len().saturating_sub(exact.len() + reach);
        let pool: Vec<Call> = match self.spec.window {
            WindowSpec::Count(_) => self.window.iter().skip(skip).copied().collect(),
            WindowSpec::Time { .. } => exact,
        };
        let range = |count: u64| {
            let others = pool.len() as u64 - count;
            (calls.saturating_sub(others), count.min(calls))
        };
        let (failures_min, failures_max) = range(pool.iter().filter(|c| c.failed).count() as u64);
        let (slow_min, slow_max) = range(pool.iter().filter(|c| c.slow).count() as u64);
        Bounds {
            calls,
            failures: (failures_min, failures_max),
            slow: (slow_min, slow_max),
        }
    }

    /// Whether window counts of `failures` and `slow` calls open the breaker.
    fn rates_trip(&self, calls: u64, failures: u64, slow: u64) -> bool {
        let total = calls as f64;
        calls > 0
            && calls >= self.spec.minimum_calls
            && (failures as f64 >= self.spec.failure_rate * total
                || self
                    .spec
                    .slow
                    .is_some_and(|(_, rate)| slow as f64 >= rate * total))
    }

    /// Records an outcome. Returns true if the breaker may open or stay closed, as the bound
    /// allows either: the caller then makes the model follow the breaker.
    fn record(
        &mut self,
        ticket: ModelTicket,
        outcome: Outcome,
        now: Instant,
        thread: usize,
    ) -> bool {
        if ticket.probe.is_some() {
            if !self.take_probe(&ticket) || outcome == Outcome::Ignored {
                return false;
            }
            if outcome == Outcome::Success && !self.is_slow(&ticket, now) {
                self.successes += 1;
            } else {
                self.failures += 1;
            }
            self.judge_round(now);
            return false;
        }
        if outcome == Outcome::Ignored || ticket.generation != self.generation {
            return false;
        }
        let failed = outcome == Outcome::Failure;
        let slow = self.is_slow(&ticket, now);
        let call = Call {
            bucket: self.bucket(now),
            failed,
            slow,
        };
        self.window.push_back(call);
        self.threads |= 1 << thread;
        if let WindowSpec::Count(n) = self.spec.window {
            let keep = n as usize + (THREADS - 1) * (CHUNK as usize - 1);
            while self.window.len() > keep {
                self.window.pop_front();
            }
        }
        if self.state != State::Closed {
            return false;
        }
        if self.spec.consecutive.is_some() {
            self.streak = if failed { self.streak + 1 } else { 0 };
        }
        if !(failed || slow) {
            return false;
        }
        let streak_trips = self
            .spec
            .consecutive
            .is_some_and(|limit| self.streak >= limit);
        let bounds = self.bounds(now);
        let must = self.rates_trip(bounds.calls, bounds.failures.0, bounds.slow.0);
        let may = self.rates_trip(bounds.calls, bounds.failures.1, bounds.slow.1);
        if streak_trips || must {
            self.enter(State::Open, now);
            return false;
        }
        may
    }

    fn release(&mut self, ticket: ModelTicket) {
        self.take_probe(&ticket);
    }

    fn manual(&mut self, to: State, now: Instant) {
        if self.state != to || to == State::Closed {
            self.enter(to, now);
        }
    }
}

// ---------------------------------------------------------------------------------------------

/// Runs `ops` against the machine and the model. Records go through the current thread: the
/// test's own, or one of the workers (`workers` of them), which each record and then wait,
/// idle, for their next turn.
fn run(spec: Spec, ops: Vec<Op>, workers: usize) -> Result<(), TestCaseError> {
    let origin = Instant::now();
    let machine = spec.build(origin);
    thread::scope(|scope| {
        let mut to_workers = Vec::new();
        let (done, finished) = mpsc::channel::<()>();
        for _ in 0..workers {
            let (to_worker, jobs) = mpsc::channel::<(Ticket, Outcome, Instant)>();
            let (machine, done) = (&machine, done.clone());
            scope.spawn(move || {
                for (ticket, outcome, now) in jobs {
                    machine.record_at(ticket, outcome, now);
                    done.send(()).unwrap();
                }
            });
            to_workers.push(to_worker);
        }
        let record = |thread: usize, ticket: Ticket, outcome: Outcome, now: Instant| {
            if thread == 0 {
                machine.record_at(ticket, outcome, now);
            } else {
                to_workers[thread - 1].send((ticket, outcome, now)).unwrap();
                finished.recv().unwrap();
            }
        };
        check(&machine, spec, ops, origin, record)
        // Dropping the senders ends the workers.
    })
}

fn check(
    machine: &StateMachine,
    spec: Spec,
    ops: Vec<Op>,
    origin: Instant,
    record: impl Fn(usize, Ticket, Outcome, Instant),
) -> Result<(), TestCaseError> {
    let mut now = origin;
    let mut model = Model::new(spec, origin);
    let mut tickets: Vec<(Ticket, ModelTicket)> = Vec::new();
    let mut thread = 0;

    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Acquire => {
                let real = machine.try_acquire_at(now);
                let (expected, model_ticket) = model.acquire(now);
                let actual = match &real {
                    Ok(ticket) => Decision::Admitted {
                        probe: ticket.is_probe(),
                    },
                    Err(rejected) => Decision::Rejected(rejected.state(), rejected.retry_after()),
                };
                prop_assert_eq!(&actual, &expected, "step {}: acquire", step);
                if let (Ok(ticket), Some(model_ticket)) = (real, model_ticket) {
                    tickets.push((ticket, model_ticket));
                }
            }
            Op::Record(i, outcome) if !tickets.is_empty() => {
                let (ticket, model_ticket) = tickets.swap_remove(i % tickets.len());
                record(thread, ticket, outcome, now);
                let either = model.record(model_ticket, outcome, now, thread);
                if either && machine.state() == State::Open {
                    model.enter(State::Open, now);
                }
            }
            Op::Drop(i) if !tickets.is_empty() => {
                let (ticket, model_ticket) = tickets.swap_remove(i % tickets.len());
                machine.release(ticket);
                model.release(model_ticket);
            }
            Op::Record(..) | Op::Drop(_) => {}
            Op::Advance(ms) => now += MS * ms as u32,
            Op::ForceOpen => {
                machine.force_open_at(now);
                model.manual(State::ForcedOpen, now);
            }
            Op::Disable => {
                machine.disable_at(now);
                model.manual(State::Disabled, now);
            }
            Op::Reset => {
                machine.reset_at(now);
                model.manual(State::Closed, now);
            }
            Op::Switch(to) => thread = to,
        }

        prop_assert_eq!(machine.state(), model.state, "step {}: state", step);
        let metrics = machine.metrics_at(now);
        let bounds = model.bounds(now);
        prop_assert_eq!(metrics.calls, bounds.calls, "step {}: calls", step);
        let within = |value: u64, (low, high): (u64, u64)| low <= value && value <= high;
        prop_assert!(
            within(metrics.failures, bounds.failures),
            "step {}: failures {} outside {:?}",
            step,
            metrics.failures,
            bounds
        );
        prop_assert!(
            within(metrics.slow_calls, bounds.slow),
            "step {}: slow calls {} outside {:?}",
            step,
            metrics.slow_calls,
            bounds
        );
        prop_assert_eq!(
            metrics.rejections,
            model.rejections,
            "step {}: rejections",
            step
        );
        prop_assert_eq!(
            metrics.consecutive_failures,
            model.streak,
            "step {}: streak",
            step
        );
        prop_assert_eq!(
            metrics.probes_in_flight,
            model.probes.len() as u32,
            "step {}: probes in flight",
            step
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// One thread: the window is exact (the bounds are a single value).
    #[test]
    fn the_state_machine_follows_the_model(
        spec in spec(),
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        run(spec, ops, 0)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    /// Outcomes spread over threads that go idle: within the documented bound.
    #[test]
    fn the_state_machine_follows_the_model_across_idle_threads(
        spec in threaded_spec(),
        ops in proptest::collection::vec(threaded_op(), 1..500),
    ) {
        run(spec, ops, THREADS - 1)?;
    }
}
