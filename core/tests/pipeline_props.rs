//! Property tests of the pipeline: the builder's call order never changes what a call does;
//! rejections never enter a breaker's window or a budget; dropping a call at any poll releases
//! every permit, token, slot and sleep.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use tailguard::adaptive_timeout::AdaptiveTimeout;
use tailguard::backoff::{Backoff, Jitter};
use tailguard::breaker::CircuitBreaker;
use tailguard::hedge::Hedge;
use tailguard::pipeline::{
    Attempt, Limiter, LimiterPermit, LimiterRejected, Outcome, Pipeline, PipelineBuilder,
    PipelineError,
};
use tailguard::retry::{RetryAll, RetryBudget};
use tailguard::time::{ManualTimer, Timer};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

type Log = Arc<Mutex<Vec<String>>>;

fn note(log: &Log, event: String) {
    log.lock().unwrap().push(event);
}

/// A limiter of `capacity` slots that logs every acquire, grant, refusal, finish and release;
/// with `queue`, an attempt waits for a slot, else it is refused. `refuse_every` > 0 refuses
/// every n-th acquire whatever the slots.
#[derive(Clone)]
struct LoggingLimiter {
    state: Arc<Mutex<Slots>>,
    log: Log,
    timer: ManualTimer,
}

struct Slots {
    free: usize,
    queue: bool,
    refuse_every: u32,
    asked: u32,
    waiters: Vec<Waker>,
}

struct Permit {
    limiter: LoggingLimiter,
    finished: bool,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.finished {
            note(&self.limiter.log, "release".into());
        }
        let mut slots = self.limiter.state.lock().unwrap();
        slots.free += 1;
        for waker in slots.waiters.drain(..) {
            waker.wake();
        }
    }
}

impl LimiterPermit for Permit {
    fn finish(mut self, outcome: Outcome, latency: Duration) {
        self.finished = true;
        note(
            &self.limiter.log,
            format!("finish {outcome:?} {}ms", latency.as_millis()),
        );
    }
}

struct Acquire {
    limiter: LoggingLimiter,
    decided: bool,
}

impl Future for Acquire {
    type Output = Result<Permit, LimiterRejected>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let limiter = self.limiter.clone();
        let mut slots = limiter.state.lock().unwrap();
        if !self.decided {
            self.decided = true;
            slots.asked += 1;
            if slots.refuse_every > 0 && slots.asked % slots.refuse_every == 0 {
                drop(slots);
                note(&limiter.log, "refused".into());
                return Poll::Ready(Err(LimiterRejected::new("refused")));
            }
        }
        if slots.free > 0 {
            slots.free -= 1;
            drop(slots);
            let at = limiter.timer.elapsed().as_millis();
            note(&limiter.log, format!("grant @{at}"));
            return Poll::Ready(Ok(Permit {
                limiter,
                finished: false,
            }));
        }
        if !slots.queue {
            drop(slots);
            note(&limiter.log, "full".into());
            return Poll::Ready(Err(LimiterRejected::new("full")));
        }
        slots.waiters.push(cx.waker().clone());
        Poll::Pending
    }
}

impl Limiter for LoggingLimiter {
    type Permit = Permit;
    type Acquire<'a> = Acquire;
    fn acquire_at(&self, _now: Instant, _deadline: Option<Instant>) -> Acquire {
        Acquire {
            limiter: self.clone(),
            decided: false,
        }
    }
}

/// One builder call.
#[derive(Debug, Clone)]
enum Step {
    TotalTimeout(u64),
    AttemptTimeout(u64),
    /// An adaptive attempt timeout with this floor (and 3 × it as its ceiling).
    AdaptiveTimeout(u64),
    Retry(u32, u64),
    Budget,
    Hedge(u64),
    Breaker,
    Limiter,
    Predict(u64),
}

/// Everything one pipeline is made of, fresh, so that two pipelines can be compared.
struct World {
    timer: ManualTimer,
    log: Log,
    limiter: LoggingLimiter,
    breaker: CircuitBreaker<ManualTimer>,
    budget: RetryBudget,
    /// The adaptive attempt timeout the pipeline was built with, if any.
    adaptive: Mutex<Option<AdaptiveTimeout>>,
}

impl World {
    fn new(capacity: usize, queue: bool, refuse_every: u32) -> Self {
        let timer = ManualTimer::new();
        let log = Log::default();
        World {
            limiter: LoggingLimiter {
                state: Arc::new(Mutex::new(Slots {
                    free: capacity,
                    queue,
                    refuse_every,
                    asked: 0,
                    waiters: Vec::new(),
                })),
                log: log.clone(),
                timer: timer.clone(),
            },
            // Never opens on its own; tests open it by hand.
            breaker: CircuitBreaker::builder()
                .count_window(1000)
                .minimum_calls(1000)
                .failure_rate(1.0)
                .build_with(timer.clone())
                .unwrap(),
            // Exact: each call that starts an attempt earns one retry; no floor.
            budget: RetryBudget::builder()
                .ratio(1.0)
                .min_per_second(0)
                .window(Duration::from_secs(3600))
                .build_with(timer.clone())
                .unwrap(),
            timer,
            log,
            adaptive: Mutex::new(None),
        }
    }

    /// Attempts recorded into the adaptive timeout (in time or cut), if there is one.
    fn adaptive_recorded(&self) -> Option<u64> {
        let adaptive = self.adaptive.lock().unwrap();
        let stats = adaptive.as_ref()?.stats();
        Some(stats.completed + stats.timed_out)
    }

    fn free(&self) -> usize {
        self.limiter.state.lock().unwrap().free
    }

    /// Applies `steps` in order; the limiter is always among them.
    fn build(&self, steps: &[Step]) -> Pipeline<ManualTimer, RetryAll, LoggingLimiter> {
        apply(self, Pipeline::with_timer(self.timer.clone()), steps)
    }
}

fn apply<L: Limiter>(
    world: &World,
    builder: PipelineBuilder<ManualTimer, RetryAll, L>,
    steps: &[Step],
) -> Pipeline<ManualTimer, RetryAll, LoggingLimiter> {
    let Some((step, rest)) = steps.split_first() else {
        return builder.limiter(world.limiter.clone()).build().unwrap();
    };
    let builder = match step {
        Step::TotalTimeout(t) => builder.total_timeout(ms(*t)),
        Step::AttemptTimeout(t) => builder.attempt_timeout(ms(*t)),
        Step::AdaptiveTimeout(floor) => {
            let adaptive = AdaptiveTimeout::builder()
                .percentile(0.9)
                .factor(1.5)
                .floor(ms(*floor))
                .ceiling(ms(3 * floor))
                .min_samples(2)
                .window(ms(500), 5)
                .build()
                .unwrap();
            *world.adaptive.lock().unwrap() = Some(adaptive.clone());
            builder.attempt_timeout_adaptive(adaptive)
        }
        Step::Retry(attempts, backoff) => builder.max_attempts(*attempts).backoff(
            Backoff::constant(ms(*backoff))
                .jitter(Jitter::None)
                .build()
                .unwrap(),
        ),
        Step::Budget => builder.retry_budget(world.budget.clone()),
        Step::Hedge(delay) => builder.hedge(
            Hedge::builder()
                .fixed_delay(ms(*delay))
                .max_attempts(2)
                .unbudgeted()
                .build()
                .unwrap(),
        ),
        Step::Breaker => builder.breaker(world.breaker.clone()),
        Step::Limiter => return apply(world, builder.limiter(world.limiter.clone()), rest),
        Step::Predict(floor) => builder.predict_floor(ms(*floor)).predict_min_samples(1000),
    };
    apply(world, builder, rest)
}

/// Attempt `n` takes `plan[(n - 1) % len].0` ms and succeeds if `.1`; logs its start with its
/// numbers and the time left to its deadline, and its end.
fn operation(
    world: &World,
    plan: &[(u64, bool)],
) -> impl FnMut(Attempt) -> Pin<Box<dyn Future<Output = Result<u32, String>> + Send>> {
    let timer = world.timer.clone();
    let log = world.log.clone();
    let plan = plan.to_vec();
    move |attempt| {
        let (took, ok) = plan[(attempt.number() as usize - 1) % plan.len()];
        let now = timer.now();
        let left = attempt.deadline().map(|d| (d - now).as_millis());
        note(
            &log,
            format!(
                "op {} r{} h{} @{} left {left:?}",
                attempt.number(),
                attempt.round(),
                attempt.hedge(),
                timer.elapsed().as_millis()
            ),
        );
        let sleep = timer.sleep(ms(took));
        let log = log.clone();
        Box::pin(async move {
            sleep.await;
            note(&log, format!("op {} done", attempt.number()));
            if ok {
                Ok(attempt.number())
            } else {
                Err(format!("attempt {} failed", attempt.number()))
            }
        })
    }
}

fn describe(out: &Result<u32, PipelineError<String>>) -> String {
    match out {
        Ok(n) => format!("ok {n}"),
        Err(e) => format!("err {e}"),
    }
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    (
        prop::option::of(20u64..400),
        prop::option::of((5u64..200, any::<bool>())),
        prop::option::of((1u32..5, 0u64..30)),
        any::<bool>(),
        prop::option::of(1u64..60),
        any::<bool>(),
        prop::option::of(0u64..100),
    )
        .prop_map(|(total, attempt, retry, budget, hedge, breaker, predict)| {
            let mut steps = vec![Step::Limiter];
            steps.extend(total.map(Step::TotalTimeout));
            steps.extend(attempt.map(|(t, adaptive)| {
                if adaptive {
                    Step::AdaptiveTimeout(t)
                } else {
                    Step::AttemptTimeout(t)
                }
            }));
            steps.extend(retry.map(|(n, b)| Step::Retry(n, b)));
            steps.extend(budget.then_some(Step::Budget));
            steps.extend(hedge.map(Step::Hedge));
            steps.extend(breaker.then_some(Step::Breaker));
            steps.extend(predict.map(Step::Predict));
            steps
        })
}

fn plan() -> impl Strategy<Value = Vec<(u64, bool)>> {
    prop::collection::vec((0u64..150, any::<bool>()), 1..6)
}

/// Runs `calls` calls one after another (each `true` with the breaker forced open), and returns
/// the log.
fn run(
    world: &World,
    pipeline: &Pipeline<ManualTimer, RetryAll, LoggingLimiter>,
    plan: &[(u64, bool)],
    calls: &[bool],
) -> Vec<String> {
    for &open in calls {
        if open {
            world.breaker.force_open();
        }
        let out = world.timer.block_on(pipeline.call(operation(world, plan)));
        note(
            &world.log,
            format!("{} @{}", describe(&out), world.timer.elapsed().as_millis()),
        );
        if open {
            world.breaker.reset();
        }
    }
    let log = world.log.lock().unwrap().clone();
    log
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Whatever order the builder is given its settings in, every call does exactly what it does
    /// with the canonical order: the same attempts, at the same times, with the same deadlines,
    /// the same limiter traffic and the same result. And in that behaviour the layers are
    /// entered in the canonical order: an open breaker is asked before the limiter (which then
    /// sees nothing), every attempt starts right after its slot is granted, and its deadline is
    /// its own timeout from that instant, capped by the call's.
    #[test]
    fn the_builder_order_never_changes_the_composition(
        steps in steps(),
        order in Just(()).prop_perturb(|_, mut rng| rng.random::<u64>()),
        plan in plan(),
        calls in prop::collection::vec(prop::bool::weighted(0.2), 1..4),
        capacity in 0usize..3,
        queue in any::<bool>(),
    ) {
        // A call waiting for a slot nobody frees must have a deadline to end by.
        let mut steps = steps;
        if queue && capacity == 0 && !steps.iter().any(|s| matches!(s, Step::TotalTimeout(_))) {
            steps.push(Step::TotalTimeout(50));
        }
        let canonical = World::new(capacity, queue, 0);
        let expected = run(&canonical, &canonical.build(&steps), &plan, &calls);

        let mut shuffled = steps.clone();
        let mut seed = order;
        for i in (1..shuffled.len()).rev() {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (seed >> 33) as usize % (i + 1));
        }
        let world = World::new(capacity, queue, 0);
        let got = run(&world, &world.build(&shuffled), &plan, &calls);
        prop_assert_eq!(&got, &expected, "steps {:?} vs {:?}", shuffled, steps);

        let has = |f: fn(&Step) -> bool| steps.iter().any(f);
        let breaker = has(|s| matches!(s, Step::Breaker));
        let attempt_timeout = steps.iter().find_map(|s| match s {
            Step::AttemptTimeout(ms) => Some(*ms),
            Step::AdaptiveTimeout(floor) => Some(3 * floor),
            _ => None,
        });
        let mut call = 0;
        for (i, event) in expected.iter().enumerate() {
            if event.starts_with("ok ") || event.starts_with("err ") {
                call += 1;
                continue;
            }
            if breaker && calls[call] {
                prop_assert!(!event.starts_with("grant") && !event.starts_with("op ") || event.ends_with("done"),
                    "the breaker is open: nothing reaches the limiter ({})", event);
            }
            if let Some(rest) = event.strip_prefix("op ").filter(|e| !e.ends_with("done")) {
                let at = rest.split('@').nth(1).unwrap().split(' ').next().unwrap();
                prop_assert_eq!(&expected[i - 1], &format!("grant @{}", at), "a slot, then the attempt");
                if let (Some(limit), Some(left)) = (attempt_timeout, rest.split("left Some(").nth(1)) {
                    let left: u64 = left.trim_end_matches(')').parse().unwrap();
                    prop_assert!(left <= limit, "the attempt's deadline is at most its own timeout");
                }
            }
        }
    }

    /// Calls the breaker refuses (forced open), the limiter refuses, or whose deadline leaves no
    /// room are never counted: the breaker's window holds exactly the attempts that ended on
    /// their own, and the budget exactly one deposit per call that started an attempt, minus the
    /// retries made.
    #[test]
    fn rejections_never_enter_a_breaker_window_or_a_budget(
        steps in steps(),
        plan in plan(),
        calls in prop::collection::vec(prop::bool::weighted(0.3), 1..6),
        capacity in 0usize..3,
        refuse_every in 0u32..4,
    ) {
        let mut steps = steps;
        steps.retain(|s| !matches!(s, Step::Breaker | Step::Budget));
        steps.extend([Step::Breaker, Step::Budget]);
        let world = World::new(capacity, false, refuse_every);
        let pipeline = world.build(&steps);
        for &open in &calls {
            if open {
                world.breaker.force_open();
            }
            let window_before = world.breaker.metrics().calls;
            let adaptive_before = world.adaptive_recorded();
            let budget_before = world.budget.available_at(world.timer.now());
            let log_before = world.log.lock().unwrap().len();
            let out = world.timer.block_on(pipeline.call(operation(&world, &plan)));
            let log = world.log.lock().unwrap()[log_before..].to_vec();
            let finished = log.iter().filter(|e| e.starts_with("finish")).count() as u64;
            let mut rounds: Vec<&str> = log
                .iter()
                .filter(|e| e.starts_with("op ") && !e.ends_with("done"))
                .map(|e| e.split(' ').nth(2).unwrap())
                .collect();
            rounds.dedup();
            let deposits = u64::from(!rounds.is_empty());
            let retries = rounds.len().saturating_sub(1) as u64;
            if open {
                prop_assert!(matches!(out, Err(PipelineError::BreakerOpen { attempts: 0, .. })), "{:?}", out);
                prop_assert!(log.is_empty(), "{:?}", log);
                world.breaker.reset();
            } else {
                prop_assert_eq!(world.breaker.metrics().calls - window_before, finished);
            }
            // The adaptive timeout learns from exactly the attempts that ended on their own.
            if let (Some(before), Some(after)) = (adaptive_before, world.adaptive_recorded()) {
                prop_assert_eq!(after - before, finished, "{:?}", log);
            }
            let budget_after = world.budget.available_at(world.timer.now());
            prop_assert_eq!(budget_after + retries, budget_before + deposits, "{:?} {:?}", log, out);
            prop_assert_eq!(world.free(), capacity);
        }
    }

    /// Dropping a call after any number of polls, with virtual time moving in between, leaves no
    /// limiter slot taken, no breaker probe held, no budget retry withdrawn and no sleep
    /// registered.
    #[test]
    fn dropping_a_call_at_any_poll_releases_everything(
        steps in steps(),
        plan in plan(),
        polls in 0usize..12,
        step_ms in prop::collection::vec(0u64..80, 12),
        capacity in 1usize..3,
    ) {
        let mut steps = steps;
        steps.retain(|s| !matches!(s, Step::Breaker | Step::Budget));
        steps.extend([Step::Breaker, Step::Budget]);
        let world = World::new(capacity, true, 0);
        // A half-open breaker with one probe slot: a probe held and not released would show.
        let breaker = CircuitBreaker::builder()
            .count_window(2)
            .minimum_calls(2)
            .open_duration(Duration::from_secs(10))
            .half_open_calls(1)
            .build_with(world.timer.clone())
            .unwrap();
        for _ in 0..2 {
            breaker.try_acquire().unwrap().failure();
        }
        world.timer.advance(Duration::from_secs(10));
        let world = World { breaker, ..world };
        let pipeline = world.build(&steps);
        let budget_before = world.budget.available_at(world.timer.now());
        {
            let mut call = Box::pin(pipeline.call(operation(&world, &plan)));
            let mut cx = Context::from_waker(Waker::noop());
            for step in step_ms.iter().take(polls) {
                if call.as_mut().poll(&mut cx).is_ready() {
                    break;
                }
                world.timer.advance(ms(*step));
            }
        }
        prop_assert_eq!(world.free(), capacity);
        prop_assert_eq!(world.breaker.metrics().probes_in_flight, 0);
        prop_assert_eq!(world.timer.pending_sleeps(), 0);
        let log = world.log.lock().unwrap().clone();
        // Only the attempts that ended on their own were recorded; a cancelled one left no trace.
        if let Some(recorded) = world.adaptive_recorded() {
            let finished = log.iter().filter(|e| e.starts_with("finish")).count() as u64;
            prop_assert_eq!(recorded, finished, "{:?}", log);
        }
        let mut rounds: Vec<&str> = log
            .iter()
            .filter(|e| e.starts_with("op ") && !e.ends_with("done"))
            .map(|e| e.split(' ').nth(2).unwrap())
            .collect();
        rounds.dedup();
        let deposits = u64::from(!rounds.is_empty());
        let retries = rounds.len().saturating_sub(1) as u64;
        prop_assert_eq!(
            world.budget.available_at(world.timer.now()) + retries,
            budget_before + deposits,
            "{:?}", log
        );
    }
}
