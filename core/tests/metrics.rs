//! The `metrics` feature: every policy's events reach the installed recorder under the names
//! and labels of docs/metrics.md, and counting them allocates nothing on the hot path.
#![cfg(feature = "metrics")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tailguard::backoff::Backoff;
use tailguard::breaker::CircuitBreaker;
use tailguard::hedge::Hedge;
use tailguard::metrics as names;
use tailguard::retry::{Retry, RetryBudget};
use tailguard::time::{ManualTimer, Timer};

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

/// Every counter the recorder holds, read once (reading resets the recorder's counters).
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
                .filter_map(|(key, .., value)| match value {
                    // A gauge is read as a whole number too (the breaker's state: 0 or 1).
                    DebugValue::Counter(_) | DebugValue::Gauge(_) => {
                        let count = match value {
                            DebugValue::Counter(count) => count,
                            DebugValue::Gauge(level) => level.0 as u64,
                            _ => unreachable!(),
                        };
                        let key = key.key();
                        let mut labels: Vec<_> = key
                            .labels()
                            .map(|l| (l.key().to_owned(), l.value().to_owned()))
                            .collect();
                        labels.sort();
                        Some((key.name().to_owned(), labels, count))
                    }
                    _ => None,
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
    let (db, host) = (("name", "db"), ("host", ""));
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
    assert_eq!(
        (state("closed"), state("open"), state("half_open")),
        (Some(1), Some(0), Some(0))
    );
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
    let default = [("name", names::DEFAULT_NAME), ("host", "")];
    assert_eq!(counters.get(names::BREAKER_REJECTIONS, &default), Some(1));
}

#[test]
fn counting_allocates_nothing_on_the_hot_path() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let timer = ManualTimer::new();
    let (retry, hedge, breaker) = metrics::with_local_recorder(&recorder, || {
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
        (retry, hedge, breaker)
    });
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
        }
        if round == 1 {
            assert_eq!(allocations() - before, 0, "counting allocated");
        }
    }
    let counters = Counters::read(&snapshotter);
    let hot = [("name", "hot")];
    assert_eq!(counters.get(names::RETRY_RETRIES, &hot), Some(200));
    assert_eq!(counters.get(names::HEDGE_PRIMARIES, &hot), Some(200));
}

use std::future::Future as _;
