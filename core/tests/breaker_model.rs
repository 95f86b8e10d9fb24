//! Model-based test: random sequences of acquire / record / drop / advance / manual overrides,
//! run against the real state machine and against a small reference model written straight
//! from the rules in the module documentation. After every step they must agree on the
//! admission decision, the state and the metrics.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use tailguard::backoff::{Backoff, Jitter};
use tailguard::breaker::{CircuitBreakerBuilder, Outcome, State, StateMachine, Ticket};

const MS: Duration = Duration::from_millis(1);

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
            .open_durations(self.open.backoff())
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
        builder.build_state_machine(now).expect("valid spec")
    }

    fn probes_to_close(&self) -> u32 {
        ((self.success_rate * f64::from(self.half_open_calls)).ceil() as u32)
            .clamp(1, self.half_open_calls)
    }
}

fn spec() -> impl Strategy<Value = Spec> {
    let window = prop_oneof![
        (1u32..8).prop_map(WindowSpec::Count),
        (1u64..5, 1u32..5).prop_map(|(b, n)| WindowSpec::Time {
            bucket_ms: b * 10,
            buckets: n
        }),
    ];
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
    /// The window of the current (or last) closed or disabled period, oldest first.
    window: VecDeque<Call>,
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

    /// The calls the window holds at `now`.
    fn in_window(&self, now: Instant) -> Vec<Call> {
        match self.spec.window {
            WindowSpec::Count(_) => self.window.iter().copied().collect(),
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

    fn record(&mut self, ticket: ModelTicket, outcome: Outcome, now: Instant) {
        if ticket.probe.is_some() {
            if !self.take_probe(&ticket) || outcome == Outcome::Ignored {
                return;
            }
            if outcome == Outcome::Success && !self.is_slow(&ticket, now) {
                self.successes += 1;
            } else {
                self.failures += 1;
            }
            self.judge_round(now);
            return;
        }
        if outcome == Outcome::Ignored || ticket.generation != self.generation {
            return;
        }
        let failed = outcome == Outcome::Failure;
        let slow = self.is_slow(&ticket, now);
        let call = Call {
            bucket: self.bucket(now),
            failed,
            slow,
        };
        self.window.push_back(call);
        if let WindowSpec::Count(n) = self.spec.window {
            while self.window.len() > n as usize {
                self.window.pop_front();
            }
        }
        if self.state != State::Closed {
            return;
        }
        if self.spec.consecutive.is_some() {
            self.streak = if failed { self.streak + 1 } else { 0 };
        }
        if !(failed || slow) {
            return;
        }
        let streak_trips = self
            .spec
            .consecutive
            .is_some_and(|limit| self.streak >= limit);
        let calls = self.in_window(now);
        let total = calls.len() as f64;
        let failures = calls.iter().filter(|c| c.failed).count() as f64;
        let slows = calls.iter().filter(|c| c.slow).count() as f64;
        let rates_trip = !calls.is_empty()
            && calls.len() as u64 >= self.spec.minimum_calls
            && (failures >= self.spec.failure_rate * total
                || self
                    .spec
                    .slow
                    .is_some_and(|(_, rate)| slows >= rate * total));
        if streak_trips || rates_trip {
            self.enter(State::Open, now);
        }
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

fn run(spec: Spec, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let origin = Instant::now();
    let mut now = origin;
    let machine = spec.build(origin);
    let mut model = Model::new(spec, origin);
    let mut tickets: Vec<(Ticket, ModelTicket)> = Vec::new();

    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Acquire => {
                let real = machine.try_acquire(now);
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
                machine.record(ticket, outcome, now);
                model.record(model_ticket, outcome, now);
            }
            Op::Drop(i) if !tickets.is_empty() => {
                let (ticket, model_ticket) = tickets.swap_remove(i % tickets.len());
                machine.release(ticket);
                model.release(model_ticket);
            }
            Op::Record(..) | Op::Drop(_) => {}
            Op::Advance(ms) => now += MS * ms as u32,
            Op::ForceOpen => {
                machine.force_open(now);
                model.manual(State::ForcedOpen, now);
            }
            Op::Disable => {
                machine.disable(now);
                model.manual(State::Disabled, now);
            }
            Op::Reset => {
                machine.reset(now);
                model.manual(State::Closed, now);
            }
        }

        prop_assert_eq!(machine.state(), model.state, "step {}: state", step);
        let metrics = machine.metrics(now);
        let calls = model.in_window(now);
        prop_assert_eq!(metrics.calls, calls.len() as u64, "step {}: calls", step);
        prop_assert_eq!(
            metrics.failures,
            calls.iter().filter(|c| c.failed).count() as u64,
            "step {}: failures",
            step
        );
        prop_assert_eq!(
            metrics.slow_calls,
            calls.iter().filter(|c| c.slow).count() as u64,
            "step {}: slow calls",
            step
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

    #[test]
    fn the_state_machine_follows_the_model(
        spec in spec(),
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        run(spec, ops)?;
    }
}
