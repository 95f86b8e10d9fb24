//! The `metrics` feature: every policy's events reach the installed recorder under the names
//! and labels of docs/metrics.md, and counting them allocates nothing on the hot path.
#![cfg(feature = "metrics")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tailguard::backoff::Backoff;
use tailguard::breaker::CircuitBreaker;
use tailguard::bulkhead::Bulkhead;
use tailguard::hedge::Hedge;
use tailguard::limit::{AdaptiveLimiter, Aimd, Fixed};
use tailguard::metrics as names;
use tailguard::pipeline::{Pipeline, PipelineError};
use tailguard::priority::{Criticality, Shares};
use tailguard::rate::RateLimiter;
use tailguard::retry::{Retry, RetryBudget};
use tailguard::throttle::Throttle;
use tailguard::time::{ManualTimer, Timer};
use tailguard::timeout::Deadline;

/// Counts the allocations made on the current thread.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// Every counter and gauge the recorder holds, read once (reading resets the recorder's
/// counters).
struct Counters(Vec<(String, Labels, u64)>);

/// A counter's labels, sorted.
type Labels = Vec<(String, String)>;

impl Counters {
    fn read(snapshotter: &Snapshotter) -> Self {
        Counters(
            snapshotter
                .snapshot()
                .into_vec()
                .into_iter()
                .filter_map(|(key, .., value)| {
                    // Counters as they are, gauges as the whole numbers they hold here (0 or 1).
                    let value = match value {
                        DebugValue::Counter(count) => count,
                        DebugValue::Gauge(value) => value.into_inner() as u64,
                        DebugValue::Histogram(_) => return None,
                    };
                    let key = key.key();
                    let mut labels: Vec<_> = key
                        .labels()
                        .map(|l| (l.key().to_owned(), l.value().to_owned()))
                        .collect();
                    labels.sort();
                    Some((key.name().to_owned(), labels, value))
                })
                .collect(),
        )
    }

    /// The counter `metric` with exactly these labels, if it was registered.
    fn get(&self, metric: &str, labels: &[(&str, &str)]) -> Option<u64> {
        let mut want: Vec<_> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        want.sort();
        self.0
            .iter()
            .find(|(name, labels, _)| name == metric && *labels == want)
            .map(|(.., count)| *count)
    }
}

#[test]
fn retries_and_budget_refusals_are_counted_under_the_policy_name() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let timer = ManualTimer::new();
        let budget = RetryBudget::builder()
            .ratio(0.0)
            .min_per_second(1)
            .build_with(timer.clone())
            .unwrap();
        let policy = Retry::with_timer(timer.clone())
            .name("fetch")
            .max_attempts(5)
            .backoff(Backoff::constant(Duration::ZERO).build().unwrap())
            .budget(budget)
            .build()
            .unwrap();
        assert_eq!(policy.config().name(), "fetch");
        // One retry from the budget's floor, then a refusal.
        let result = timer.block_on(policy.run(|| async { Err::<(), _>("down") }));
        assert_eq!(result.unwrap_err().attempts(), 2);
    });
    let counters = Counters::read(&snapshotter);
    let name = [("name", "fetch")];
    assert_eq!(counters.get(names::RETRY_RETRIES, &name), Some(1));
    assert_eq!(counters.get(names::RETRY_BUDGET_REFUSALS, &name), Some(1));
}

#[test]
fn hedges_sent_and_won_are_counted() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let timer = ManualTimer::new();
        let hedge = Hedge::builder()
            .name("replicas")
            .fixed_delay(Duration::from_millis(10))
            .unbudgeted()
            .build()
            .unwrap();
        let stalls_first = |attempt: u32| {
            let sleep = timer.sleep(Duration::from_millis(if attempt == 1 { 1_000 } else { 1 }));
            async move {
                sleep.await;
                Ok::<_, ()>(attempt)
            }
        };
        assert_eq!(
            timer.block_on(hedge.run_with(timer.clone(), stalls_first)),
            Ok(2)
        );
    });
    let counters = Counters::read(&snapshotter);
    let name = [("name", "replicas")];
    assert_eq!(counters.get(names::HEDGE_PRIMARIES, &name), Some(1));
    assert_eq!(counters.get(names::HEDGE_SENT, &name), Some(1));
    assert_eq!(counters.get(names::HEDGE_WON, &name), Some(1));
    assert_eq!(counters.get(names::HEDGE_BUDGET_REFUSALS, &name), Some(0));
}

#[test]
fn breaker_transitions_and_rejections_are_counted_readiness_checks_included() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let timer = ManualTimer::new();
        let breaker = CircuitBreaker::builder()
            .name("db")
            .count_window(2)
            .minimum_calls(2)
            .open_duration(Duration::from_secs(1))
            .half_open_calls(1)
            .build_with(timer.clone())
            .unwrap();
        for _ in 0..2 {
            breaker.try_acquire().unwrap().failure();
        }
        assert!(breaker.try_acquire().is_err());
        assert!(breaker.check().is_err());
        timer.advance(Duration::from_secs(1));
        breaker.try_acquire().unwrap().success();
    });
    let counters = Counters::read(&snapshotter);
    let (db, host) = (("name", "db"), ("host", names::NO_HOST));
    assert_eq!(
        counters.get(names::BREAKER_REJECTIONS, &[db, host]),
        Some(2)
    );
    let transition = |from, to| {
        counters.get(
            names::BREAKER_TRANSITIONS,
            &[db, host, ("from", from), ("to", to)],
        )
    };
    assert_eq!(transition("closed", "open"), Some(1));
    assert_eq!(transition("open", "half_open"), Some(1));
    assert_eq!(transition("half_open", "closed"), Some(1));
    let state = |state| counters.get(names::BREAKER_STATE, &[db, host, ("state", state)]);
    assert_eq!(state("closed"), Some(1));
    for other in ["open", "half_open", "forced_open", "disabled"] {
        assert_eq!(state(other), Some(0), "{other}");
    }
}

#[test]
fn an_unnamed_policy_is_labelled_default() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let breaker = CircuitBreaker::builder()
            .build_with(ManualTimer::new())
            .unwrap();
        breaker.force_open();
        assert!(breaker.try_acquire().is_err());
    });
    let counters = Counters::read(&snapshotter);
    let default = [("name", names::DEFAULT_NAME), ("host", names::NO_HOST)];
    assert_eq!(counters.get(names::BREAKER_REJECTIONS, &default), Some(1));
}

#[test]
fn counting_allocates_nothing_on_the_hot_path() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let timer = ManualTimer::new();
    let limiters_too = metrics::with_local_recorder(&recorder, || {
        let retry = Retry::with_timer(timer.clone())
            .name("hot")
            .max_attempts(2)
            .backoff(Backoff::constant(Duration::ZERO).build().unwrap())
            .build()
            .unwrap();
        let hedge = Hedge::builder()
            .name("hot")
            .fixed_delay(Duration::from_millis(1))
            .build()
            .unwrap();
        let breaker = CircuitBreaker::builder()
            .name("hot")
            .build_with(timer.clone())
            .unwrap();
        let bulkhead = Bulkhead::builder()
            .name("hot")
            .max_concurrent(1)
            .build_with(timer.clone())
            .unwrap();
        let rate = RateLimiter::builder()
            .name("hot")
            .build_with(timer.clone())
            .unwrap();
        let limiter = AdaptiveLimiter::builder()
            .name("hot")
            .algorithm(Fixed::new(1).unwrap())
            .build()
            .unwrap();
        (retry, hedge, breaker, bulkhead, rate, limiter)
    });
    let (retry, hedge, breaker, bulkhead, rate, limiter) = limiters_too;
    let now = timer.now();
    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    let mut poll = |future: &mut dyn FnMut(&mut std::task::Context<'_>) -> bool| {
        assert!(future(&mut cx));
    };
    // Warm up (thread-local stripes, lazily made state), then count.
    for round in 0..2 {
        let before = allocations();
        for _ in 0..100 {
            // A retry after one failure (counted), then a success.
            let mut failed = false;
            let mut call = std::pin::pin!(retry.run(|| {
                let fail = !std::mem::replace(&mut failed, true);
                std::future::ready(if fail { Err(()) } else { Ok(()) })
            }));
            poll(&mut |cx| call.as_mut().poll(cx).is_ready());
            // A hedged call whose primary answers at once (a primary counted).
            let mut hedged = std::pin::pin!(
                hedge.run_with(timer.clone(), |_| { std::future::ready(Ok::<_, ()>(())) })
            );
            poll(&mut |cx| hedged.as_mut().poll(cx).is_ready());
            // A closed breaker's call.
            breaker.try_acquire().unwrap().success();
            // Refusals (counted) by a full bulkhead, an empty bucket and a full limiter.
            let slot = bulkhead.try_acquire().unwrap();
            assert!(bulkhead.try_acquire().is_err());
            drop(slot);
            let _ = rate.try_acquire();
            assert!(rate.try_acquire().is_err());
            let permit = limiter.try_acquire_at(now).unwrap();
            assert!(limiter.try_acquire_at(now).is_err());
            permit.ignore();
        }
        if round == 1 {
            assert_eq!(allocations() - before, 0, "counting allocated");
        }
    }
    let counters = Counters::read(&snapshotter);
    let hot = [("name", "hot")];
    assert_eq!(counters.get(names::RETRY_RETRIES, &hot), Some(200));
    assert_eq!(counters.get(names::HEDGE_PRIMARIES, &hot), Some(200));
    assert_eq!(
        counters.get(
            names::BULKHEAD_REJECTIONS,
            &[("name", "hot"), ("reason", "full")]
        ),
        Some(200)
    );
    assert!(counters.get(names::RATE_REJECTIONS, &hot) >= Some(200));
    assert_eq!(
        counters.get(
            names::LIMIT_REJECTIONS,
            &[("name", "hot"), ("reason", "limit")]
        ),
        Some(200)
    );
}

use std::future::Future as _;

#[test]
fn every_transition_a_breaker_makes_is_counted() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    metrics::with_local_recorder(&recorder, || {
        let timer = ManualTimer::new();
        let listener = seen.clone();
        let breaker = CircuitBreaker::builder()
            .name("all")
            .count_window(1)
            .minimum_calls(1)
            .open_duration(Duration::from_secs(1))
            .half_open_calls(1)
            .on_transition(move |_| {
                listener.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            })
            .build_with(timer.clone())
            .unwrap();
        let trip = || breaker.try_acquire().unwrap().failure();
        let probe = |ok: bool| {
            timer.advance(Duration::from_secs(3600));
            let permit = breaker.try_acquire().unwrap();
            if ok {
                permit.success()
            } else {
                permit.failure()
            }
        };
        trip(); // closed -> open
        probe(false); // open -> half_open -> open
        probe(true); // open -> half_open -> closed
                     // Every manual move from every state.
        for from in 0..5 {
            for to in ["forced_open", "disabled", "closed"] {
                match from {
                    0 => breaker.reset(),
                    1 => {
                        breaker.reset();
                        trip();
                    }
                    2 => {
                        breaker.reset();
                        trip();
                        timer.advance(Duration::from_secs(3600));
                        drop(breaker.try_acquire().unwrap());
                    }
                    3 => breaker.force_open(),
                    _ => breaker.disable(),
                }
                match to {
                    "forced_open" => breaker.force_open(),
                    "disabled" => breaker.disable(),
                    _ => breaker.reset(),
                }
            }
        }
    });
    let counted: u64 = Counters::read(&snapshotter)
        .0
        .iter()
        .filter(|(name, ..)| name == names::BREAKER_TRANSITIONS)
        .map(|(.., count)| count)
        .sum();
    assert_eq!(counted, seen.load(std::sync::atomic::Ordering::Relaxed));
    assert!(counted > 30, "{counted}");
}

#[test]
fn bulkhead_rejections_are_counted_by_reason_and_admissions_are_not() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let timer = ManualTimer::new();
    let bulkhead = metrics::with_local_recorder(&recorder, || {
        Bulkhead::builder()
            .name("pool")
            .max_concurrent(1)
            .max_queue(1)
            .build_with(timer.clone())
            .unwrap()
    });
    let reason = |counters: &Counters, reason| {
        counters.get(
            names::BULKHEAD_REJECTIONS,
            &[("name", "pool"), ("reason", reason)],
        )
    };
    let held = bulkhead.try_acquire().unwrap();
    let counters = Counters::read(&snapshotter);
    assert_eq!(
        (reason(&counters, "full"), reason(&counters, "deadline")),
        (Some(0), Some(0))
    );
    assert!(bulkhead.try_acquire().is_err());
    let waited = timer.block_on(bulkhead.acquire_within(Duration::from_millis(5)));
    assert!(waited.is_err());
    let counters = Counters::read(&snapshotter);
    assert_eq!(
        (reason(&counters, "full"), reason(&counters, "deadline")),
        (Some(1), Some(1))
    );
    drop(held);
    let _again = bulkhead.try_acquire().unwrap();
    let counters = Counters::read(&snapshotter);
    assert_eq!(
        (reason(&counters, "full"), reason(&counters, "deadline")),
        (Some(0), Some(0)),
        "reading resets; an admission counts nothing"
    );
}

#[test]
fn rate_rejections_are_counted_but_not_a_wait_that_gets_a_token() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let timer = ManualTimer::new();
    let limiter = metrics::with_local_recorder(&recorder, || {
        RateLimiter::builder()
            .name("api")
            .rate(10, Duration::from_secs(1))
            .burst(1)
            .build_with(timer.clone())
            .unwrap()
    });
    let name = [("name", "api")];
    limiter.try_acquire().unwrap();
    assert!(limiter.try_acquire().is_err());
    // A wait that ends with a token is no refusal, however many attempts it made.
    timer.block_on(limiter.until_ready()).unwrap();
    assert_eq!(
        Counters::read(&snapshotter).get(names::RATE_REJECTIONS, &name),
        Some(1)
    );
    // A wait refused for its deadline is one.
    let deadline = timer.now() + Duration::from_millis(10);
    assert!(timer.block_on(limiter.acquire_until(deadline)).is_err());
    assert_eq!(
        Counters::read(&snapshotter).get(names::RATE_REJECTIONS, &name),
        Some(1)
    );
}

#[test]
fn limiter_rejections_are_counted_by_reason_and_the_limit_is_a_gauge() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let (fixed, aimd) = metrics::with_local_recorder(&recorder, || {
        let fixed = AdaptiveLimiter::builder()
            .name("fixed")
            .algorithm(Fixed::new(4).unwrap())
            .shares(Shares::new(0.5, 0.8).unwrap())
            .no_probe()
            .build()
            .unwrap();
        let aimd = AdaptiveLimiter::builder()
            .name("aimd")
            .algorithm(Aimd::new(0.5).unwrap())
            .initial_limit(10)
            .no_probe()
            .build()
            .unwrap();
        (fixed, aimd)
    });
    let now = std::time::Instant::now();
    let reason = |counters: &Counters, name, reason| {
        counters.get(
            names::LIMIT_REJECTIONS,
            &[("name", name), ("reason", reason)],
        )
    };
    let held: Vec<_> = (0..2).map(|_| fixed.try_acquire_at(now).unwrap()).collect();
    let counters = Counters::read(&snapshotter);
    assert_eq!(reason(&counters, "fixed", "shed"), Some(0));
    assert_eq!(reason(&counters, "fixed", "limit"), Some(0));
    // The gauges hold the limits set when built (reading the recorder takes them too).
    let limit = |counters: &Counters, name| counters.get(names::LIMIT_LIMIT, &[("name", name)]);
    assert_eq!(limit(&counters, "fixed"), Some(4));
    assert_eq!(limit(&counters, "aimd"), Some(10));
    assert!(fixed
        .try_acquire_class_at(Criticality::Sheddable, now)
        .is_err());
    let more: Vec<_> = (0..2)
        .map(|_| {
            fixed
                .try_acquire_class_at(Criticality::Critical, now)
                .unwrap()
        })
        .collect();
    assert!(fixed
        .try_acquire_class_at(Criticality::Critical, now)
        .is_err());
    let counters = Counters::read(&snapshotter);
    assert_eq!(reason(&counters, "fixed", "shed"), Some(1));
    assert_eq!(reason(&counters, "fixed", "limit"), Some(1));
    assert_eq!(reason(&counters, "fixed", "probe"), Some(0));
    drop((held, more));
    // The limit gauge follows the published limit: AIMD halves it on a drop.
    aimd.try_acquire_at(now)
        .unwrap()
        .dropped_at(now + Duration::from_millis(1));
    assert_eq!(aimd.limit(), 5);
    let counters = Counters::read(&snapshotter);
    assert_eq!(limit(&counters, "aimd"), Some(5));
    assert_eq!(reason(&counters, "aimd", "limit"), Some(0));
}

#[test]
fn throttle_rejections_are_counted() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let timer = ManualTimer::new();
    let throttle = metrics::with_local_recorder(&recorder, || {
        Throttle::builder()
            .name("backend")
            .k(1.0)
            .seed(3)
            .build_with(timer.clone())
            .unwrap()
    });
    let name = [("name", "backend")];
    // A healthy backend: nothing refused.
    for _ in 0..10 {
        throttle.try_acquire().unwrap().record(true);
    }
    assert_eq!(
        Counters::read(&snapshotter).get(names::THROTTLE_REJECTIONS, &name),
        Some(0)
    );
    // A backend refusing everything: the throttle starts refusing, each refusal counted.
    let mut refused = 0;
    for _ in 0..200 {
        match throttle.try_acquire() {
            Ok(permit) => permit.record(false),
            Err(_) => refused += 1,
        }
    }
    assert!(refused > 0);
    assert_eq!(
        Counters::read(&snapshotter).get(names::THROTTLE_REJECTIONS, &name),
        Some(refused)
    );
}

#[test]
fn pipeline_deadline_refusals_are_counted_by_reason() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let timer = ManualTimer::new();
    let pipeline = metrics::with_local_recorder(&recorder, || {
        Pipeline::with_timer(timer.clone())
            .name("search")
            .max_attempts(2)
            .backoff(Backoff::constant(Duration::ZERO).build().unwrap())
            .predict_floor(Duration::from_millis(20))
            .build()
            .unwrap()
    });
    let reason = |counters: &Counters, reason| {
        counters.get(
            names::PIPELINE_DEADLINE_REFUSALS,
            &[("name", "search"), ("reason", reason)],
        )
    };
    let quick = |_| std::future::ready(Ok::<_, ()>(()));
    // A call in time: nothing counted.
    let deadline = Deadline::after_with(timer.clone(), Duration::from_millis(100));
    timer
        .block_on(pipeline.call_until(deadline, quick))
        .unwrap();
    let counters = Counters::read(&snapshotter);
    assert_eq!(
        (reason(&counters, "passed"), reason(&counters, "too_short")),
        (Some(0), Some(0))
    );
    // A deadline already passed.
    let passed = Deadline::after_with(timer.clone(), Duration::ZERO);
    let result = timer.block_on(pipeline.call_until(passed, quick));
    assert!(matches!(result, Err(PipelineError::DeadlinePassed)));
    // A retry with 15 ms left when an attempt is predicted to take 20.
    let deadline = Deadline::after_with(timer.clone(), Duration::from_millis(30));
    let t = timer.clone();
    let result = timer.block_on(pipeline.call_until(deadline, move |_| {
        let sleep = t.sleep(Duration::from_millis(15));
        async move {
            sleep.await;
            Err::<(), _>(())
        }
    }));
    assert!(
        matches!(result, Err(PipelineError::DeadlineTooShort { .. })),
        "{result:?}"
    );
    let counters = Counters::read(&snapshotter);
    assert_eq!(
        (reason(&counters, "passed"), reason(&counters, "too_short")),
        (Some(1), Some(1))
    );
    // The pipeline's name labels its retries too, and the retry the deadline refused was never
    // made, so it is not counted (it was, before retries were counted when they start).
    assert_eq!(
        counters.get(names::RETRY_RETRIES, &[("name", "search")]),
        Some(0)
    );
}

#[test]
fn a_keyed_rate_limiter_counts_every_keys_refusals_together() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let timer = ManualTimer::new();
    let limiter = metrics::with_local_recorder(&recorder, || {
        RateLimiter::builder()
            .name("clients")
            .rate(10, Duration::from_secs(1))
            .burst(1)
            .build_keyed_with::<&str, _>(timer.clone())
            .unwrap()
    });
    let name = [("name", "clients")];
    for key in ["alice", "bob"] {
        limiter.try_acquire(&key).unwrap();
        assert!(limiter.try_acquire(&key).is_err());
    }
    // A wait that gets its token is no refusal; one refused for its deadline is.
    timer
        .block_on(limiter.acquire_until(&"alice", timer.now() + Duration::from_secs(1)))
        .unwrap();
    let deadline = timer.now() + Duration::from_millis(10);
    assert!(timer
        .block_on(limiter.acquire_until(&"alice", deadline))
        .is_err());
    assert_eq!(
        Counters::read(&snapshotter).get(names::RATE_REJECTIONS, &name),
        Some(3)
    );
}
