//! Hedging in virtual time: exact timing, budgets, cancellation, adaptive delays.

use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::task::noop_waker;

use super::*;
use crate::test_util::{ms, Drops};
use crate::time::{ManualTimer, Timer};

/// A scripted backend: attempt `n` (from 1) takes `plan[n - 1].0` and then returns `plan[n - 1].1`.
/// Records (attempt, virtual start time) for every attempt started.
struct Backend {
    timer: ManualTimer,
    plan: Vec<(u64, Result<&'static str, &'static str>)>,
    started: Arc<Mutex<Vec<(u32, Duration)>>>,
    drops: Drops,
}

impl Backend {
    fn new(timer: &ManualTimer, plan: &[(u64, Result<&'static str, &'static str>)]) -> Self {
        Backend {
            timer: timer.clone(),
            plan: plan.to_vec(),
            started: Arc::default(),
            drops: Drops::default(),
        }
    }

    fn attempt(
        &self,
    ) -> impl FnMut(
        u32,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<&'static str, &'static str>> + Send>,
    > + '_ {
        move |n| {
            let (took, result) = self.plan[n as usize - 1];
            let timer = self.timer.clone();
            let guard = self.drops.guard();
            self.started.lock().unwrap().push((n, timer.elapsed()));
            Box::pin(async move {
                let _guard = guard;
                timer.sleep(ms(took)).await;
                result
            })
        }
    }

    fn starts(&self) -> Vec<(u32, Duration)> {
        self.started.lock().unwrap().clone()
    }
}

fn fixed(delay_ms: u64, attempts: u32) -> Hedge {
    Hedge::builder()
        .fixed_delay(ms(delay_ms))
        .max_attempts(attempts)
        .unbudgeted()
        .build()
        .unwrap()
}

#[test]
fn primary_ready_at_once_touches_no_timer() {
    let timer = ManualTimer::new();
    let hedge = Hedge::builder().build().unwrap(); // adaptive: records, but reads no clock
    let run = hedge.run_with(timer.clone(), |_| async { Ok::<_, ()>(7) });
    let waker = noop_waker();
    let mut run = pin!(run);
    assert_eq!(
        run.as_mut().poll(&mut Context::from_waker(&waker)),
        Poll::Ready(Ok(7))
    );
    assert_eq!(timer.pending_sleeps(), 0);
    assert_eq!(timer.elapsed(), Duration::ZERO);
    assert_eq!(
        hedge.stats(),
        HedgeStats {
            primaries: 1,
            ..HedgeStats::default()
        }
    );
    assert_eq!(hedge.latency().unwrap().count_at(timer.now()), 1);
}

#[test]
fn hedge_starts_exactly_at_the_delay_and_wins() {
    let timer = ManualTimer::new();
    let backend = Backend::new(&timer, &[(100, Ok("primary")), (5, Ok("hedge"))]);
    let hedge = fixed(10, 2);
    let out = timer.block_on(hedge.run_with(timer.clone(), backend.attempt()));
    assert_eq!(out, Ok("hedge"));
    assert_eq!(timer.elapsed(), ms(15));
    assert_eq!(backend.starts(), vec![(1, ms(0)), (2, ms(10))]);
    assert_eq!(backend.drops.count(), 2, "the losing primary was dropped");
    assert_eq!(timer.pending_sleeps(), 0);
    let stats = hedge.stats();
    assert_eq!(
        (stats.primaries, stats.hedges_sent, stats.hedges_won),
        (1, 1, 1)
    );
}

#[test]
fn primary_before_the_delay_sends_no_hedge() {
    let timer = ManualTimer::new();
    let backend = Backend::new(&timer, &[(9, Ok("primary")), (1, Ok("hedge"))]);
    let hedge = fixed(10, 2);
    let out = timer.block_on(hedge.run_with(timer.clone(), backend.attempt()));
    assert_eq!(out, Ok("primary"));
    assert_eq!(timer.elapsed(), ms(9));
    assert_eq!(backend.starts().len(), 1);
    assert_eq!(timer.pending_sleeps(), 0, "the hedge timer was dropped");
    assert_eq!(hedge.stats().hedges_sent, 0);
}

#[test]
fn primary_winning_after_a_hedge_drops_the_hedge() {
    let timer = ManualTimer::new();
    let backend = Backend::new(&timer, &[(12, Ok("primary")), (50, Ok("hedge"))]);
    let hedge = fixed(10, 2);
    let out = timer.block_on(hedge.run_with(timer.clone(), backend.attempt()));
    assert_eq!(out, Ok("primary"));
    assert_eq!(timer.elapsed(), ms(12));
    assert_eq!(backend.drops.count(), 2);
    assert_eq!(timer.pending_sleeps(), 0);
    let stats = hedge.stats();
    assert_eq!((stats.hedges_sent, stats.hedges_won), (1, 0));
}

#[test]
fn each_hedge_waits_the_delay_after_the_previous_one() {
    let timer = ManualTimer::new();
    let backend = Backend::new(
        &timer,
        &[
            (1000, Ok("a")),
            (1000, Ok("b")),
            (15, Ok("c")),
            (1, Ok("never")),
        ],
    );
    let hedge = fixed(10, 3);
    let out = timer.block_on(hedge.run_with(timer.clone(), backend.attempt()));
    assert_eq!(out, Ok("c"));
    assert_eq!(backend.starts(), vec![(1, ms(0)), (2, ms(10)), (3, ms(20))]);
    assert_eq!(timer.elapsed(), ms(35));
    assert_eq!(backend.drops.count(), 3);
}

#[test]
fn a_failure_starts_the_next_attempt_at_once() {
    let timer = ManualTimer::new();
    let backend = Backend::new(&timer, &[(3, Err("refused")), (4, Ok("second"))]);
    let hedge = fixed(10, 2);
    let out = timer.block_on(hedge.run_with(timer.clone(), backend.attempt()));
    assert_eq!(out, Ok("second"));
    assert_eq!(backend.starts(), vec![(1, ms(0)), (2, ms(3))]);
    assert_eq!(timer.elapsed(), ms(7));
}

#[test]
fn all_failures_come_back_in_order() {
    let timer = ManualTimer::new();
    let backend = Backend::new(&timer, &[(30, Err("slow no")), (5, Err("fast no"))]);
    let hedge = fixed(10, 2);
    let err = timer
        .block_on(hedge.run_with(timer.clone(), backend.attempt()))
        .unwrap_err();
    assert_eq!(err.errors(), &["fast no", "slow no"]);
    assert_eq!(*err.last(), "slow no");
    assert_eq!(err.attempts(), 2);
    assert_eq!(timer.elapsed(), ms(30));
    assert!(
        err.to_string().contains("all 2 hedged attempts failed"),
        "{err}"
    );
}

#[test]
fn a_single_attempt_policy_returns_its_error() {
    let timer = ManualTimer::new();
    let backend = Backend::new(&timer, &[(3, Err("no"))]);
    let hedge = fixed(1, 1);
    let err = timer
        .block_on(hedge.run_with(timer.clone(), backend.attempt()))
        .unwrap_err();
    assert_eq!(err.into_errors(), vec!["no"]);
}

/// A budget with no floor: hedges ≤ `ratio` × primaries, and nothing before the first deposit.
fn ratio_only(ratio: f64) -> HedgeBudget {
    HedgeBudget::builder()
        .ratio(ratio)
        .min_per_second(0)
        .build()
        .unwrap()
}

#[test]
fn the_first_call_hedges_with_the_default_budget() {
    let timer = ManualTimer::new();
    let backend = Backend::new(&timer, &[(1000, Ok("primary")), (2, Ok("hedge"))]);
    let hedge = Hedge::builder().fixed_delay(ms(10)).build().unwrap();
    let out = timer.block_on(hedge.run_with(timer.clone(), backend.attempt()));
    assert_eq!(out, Ok("hedge"), "a fresh budget must allow a hedge");
    assert_eq!(timer.elapsed(), ms(12));
    let stats = hedge.stats();
    assert_eq!((stats.hedges_sent, stats.budget_refusals), (1, 0));
}

#[test]
fn over_a_long_run_the_ratio_bounds_the_extra_load() {
    // Every primary stalls for 50 ms; a hedge answers in 1 ms. 200 waves of 100 concurrent
    // calls: 20 000 calls in a few seconds of virtual time, all of which would hedge if allowed.
    let timer = ManualTimer::new();
    let hedge = Hedge::builder().fixed_delay(ms(10)).build().unwrap();
    let call = |hedge: &Hedge| {
        let timer = timer.clone();
        hedge.run_with(timer.clone(), move |n| {
            let timer = timer.clone();
            async move {
                timer.sleep(ms(if n == 1 { 50 } else { 1 })).await;
                Ok::<_, ()>(n)
            }
        })
    };
    let mut hedged_in_first_wave = 0;
    for wave in 0..200 {
        let calls = (0..100).map(|_| call(&hedge)).collect::<Vec<_>>();
        let winners = timer.block_on(futures::future::join_all(calls));
        if wave == 0 {
            hedged_in_first_wave = winners.iter().filter(|w| **w == Ok(2)).count();
        }
    }
    let stats = hedge.stats();
    let elapsed = timer.elapsed();
    assert_eq!(stats.primaries, 20_000);
    // From the first wave, the reserve: its 10 hedges, plus 5 % of the wave's 100 primaries.
    assert_eq!(hedged_in_first_wave, 15);
    // The documented bound: hedges ≤ ratio × primaries + min_per_second × (1 s + elapsed).
    let bound = 0.05 * stats.primaries as f64 + 10.0 * (1.0 + elapsed.as_secs_f64());
    assert!(
        (stats.hedges_sent as f64) <= bound,
        "{stats:?} in {elapsed:?}: bound {bound}"
    );
    // And over a long run the ratio is what bounds the extra load: 5 % plus a little floor.
    assert!(stats.hedges_sent >= 1000, "{stats:?}");
    assert!(stats.extra_load() < 0.06, "{stats:?} in {elapsed:?}");
}

#[test]
fn an_empty_budget_refuses_and_the_primary_carries_on() {
    let timer = ManualTimer::new();
    let backend = Backend::new(&timer, &[(100, Ok("primary")), (1, Ok("hedge"))]);
    let hedge = Hedge::builder()
        .fixed_delay(ms(10))
        .budget(ratio_only(0.5))
        .build()
        .unwrap();
    let out = timer.block_on(hedge.run_with(timer.clone(), backend.attempt()));
    assert_eq!(out, Ok("primary"));
    assert_eq!(timer.elapsed(), ms(100));
    let stats = hedge.stats();
    assert_eq!((stats.hedges_sent, stats.budget_refusals), (0, 1));
    // That primary earned half a hedge, the next one earns the other half: now it may hedge.
    let backend = Backend::new(&timer, &[(100, Ok("primary")), (1, Ok("hedge"))]);
    let out = timer.block_on(hedge.run_with(timer.clone(), backend.attempt()));
    assert_eq!(out, Ok("hedge"));
    assert_eq!(hedge.stats().hedges_sent, 1);
}

#[test]
fn clones_share_the_budget_and_the_stats() {
    let timer = ManualTimer::new();
    let hedge = Hedge::builder()
        .fixed_delay(ms(10))
        .budget(ratio_only(1.0))
        .build()
        .unwrap();
    let clone = hedge.clone();
    let backend = Backend::new(&timer, &[(1, Ok("fast"))]);
    timer
        .block_on(hedge.run_with(timer.clone(), backend.attempt()))
        .unwrap();
    // The clone sees the primary and the hedge it earned.
    assert_eq!(clone.stats().primaries, 1);
    assert_eq!(clone.budget().unwrap().available(), 1);
}

#[test]
fn dropping_the_call_cancels_every_attempt() {
    let timer = ManualTimer::new();
    let backend = Backend::new(&timer, &[(1000, Ok("a")), (1000, Ok("b")), (1000, Ok("c"))]);
    let hedge = fixed(10, 3);
    {
        let mut run = pin!(hedge.run_with(timer.clone(), backend.attempt()));
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(run.as_mut().poll(&mut cx).is_pending());
        timer.advance(ms(10));
        assert!(run.as_mut().poll(&mut cx).is_pending());
        timer.advance(ms(10));
        assert!(run.as_mut().poll(&mut cx).is_pending());
        assert_eq!(backend.starts().len(), 3);
        assert_eq!(
            timer.pending_sleeps(),
            3,
            "three attempts, and no hedge timer left"
        );
    }
    assert_eq!(backend.drops.count(), 3);
    assert_eq!(timer.pending_sleeps(), 0);
}

#[test]
fn an_unpolled_call_starts_nothing() {
    let timer = ManualTimer::new();
    let backend = Backend::new(&timer, &[(1, Ok("a"))]);
    let hedge = fixed(10, 2);
    drop(hedge.run_with(timer.clone(), backend.attempt()));
    assert!(backend.starts().is_empty());
    assert_eq!(hedge.stats().primaries, 0);
}

fn adaptive(min_samples: u64, floor: u64, ceiling: u64) -> Hedge {
    Hedge::builder()
        .adaptive_delay(0.9)
        .min_samples(min_samples)
        .delay_floor(ms(floor))
        .delay_ceiling(ms(ceiling))
        .window(Duration::from_secs(10), 10)
        .unbudgeted()
        .build()
        .unwrap()
}

/// Runs one call whose primary takes `primary_ms` and hedges take 1 ms; returns the winner.
fn call(timer: &ManualTimer, hedge: &Hedge, primary_ms: u64) -> u32 {
    let t = timer.clone();
    timer
        .block_on(hedge.run_with(timer.clone(), move |n| {
            let t = t.clone();
            async move {
                t.sleep(ms(if n == 1 { primary_ms } else { 1 })).await;
                Ok::<_, ()>(n)
            }
        }))
        .unwrap()
}

#[test]
fn adaptive_waits_for_enough_samples_then_hedges_at_the_percentile() {
    let timer = ManualTimer::new();
    let hedge = adaptive(20, 1, 1000);
    assert_eq!(hedge.delay_at(timer.now()), None);
    // Latencies 1..=20 ms; while short of 20 samples, nothing is hedged even when slow.
    for i in 1..=19 {
        assert_eq!(call(&timer, &hedge, i), 1);
    }
    assert_eq!(hedge.delay_at(timer.now()), None);
    assert_eq!(hedge.stats().hedges_sent, 0);
    assert_eq!(call(&timer, &hedge, 20), 1);
    // p90 of 1..=20 ms is 18 ms.
    let delay = hedge.delay_at(timer.now()).unwrap();
    assert!(
        (delay.max(ms(18)) - delay.min(ms(18))) <= ms(18) / 128,
        "{delay:?}"
    );
    // A slow primary is now hedged at that delay.
    let before = timer.elapsed();
    assert_eq!(call(&timer, &hedge, 500), 2);
    let took = timer.elapsed() - before;
    assert_eq!(took, delay + ms(1));
}

#[test]
fn adaptive_keeps_its_last_delay_through_a_quiet_spell() {
    let timer = ManualTimer::new();
    let hedge = adaptive(10, 1, 1000);
    for _ in 0..10 {
        call(&timer, &hedge, 20);
    }
    let learnt = hedge.delay_at(timer.now()).unwrap();
    assert!(
        (learnt.max(ms(20)) - learnt.min(ms(20))) <= ms(20) / 128,
        "{learnt:?}"
    );
    // A minute of silence empties the 10 s window; the delay learnt before is kept.
    timer.advance(Duration::from_secs(60));
    assert_eq!(hedge.latency().unwrap().count_at(timer.now()), 0);
    assert_eq!(hedge.delay_at(timer.now()), Some(learnt));
    let before = timer.elapsed();
    assert_eq!(call(&timer, &hedge, 500), 2, "a slow call is still hedged");
    assert_eq!(timer.elapsed() - before, learnt + ms(1));
}

#[test]
fn adaptive_delay_is_clamped_to_floor_and_ceiling() {
    let timer = ManualTimer::new();
    let low = adaptive(5, 50, 100);
    let high = adaptive(5, 1, 30);
    for _ in 0..5 {
        call(&timer, &low, 2);
        call(&timer, &high, 400);
    }
    assert_eq!(low.delay_at(timer.now()), Some(ms(50)));
    assert_eq!(high.delay_at(timer.now()), Some(ms(30)));
}

#[test]
fn cancelled_primaries_are_recorded_as_lower_bounds_not_forgotten() {
    let timer = ManualTimer::new();
    let hedge = Hedge::builder()
        .adaptive_delay(0.5)
        .min_samples(1)
        .delay_floor(ms(10))
        .delay_ceiling(ms(10))
        .unbudgeted()
        .build()
        .unwrap();
    call(&timer, &hedge, 4); // sample: 4 ms
                             // The primary would take 900 ms; the hedge wins at 11 ms and the primary is recorded at
                             // 11 ms (a lower bound), not dropped from the record, and not 1 ms (the winner).
    assert_eq!(call(&timer, &hedge, 900), 2);
    let latency = hedge.latency().unwrap();
    assert_eq!(latency.count_at(timer.now()), 2);
    assert_eq!(latency.quantile_at(timer.now(), 1.0), Some(ms(11)));
    assert_eq!(latency.quantile_at(timer.now(), 0.0), Some(ms(4)));
}

#[test]
fn a_dropped_call_records_its_primary_as_a_lower_bound() {
    let timer = ManualTimer::new();
    let hedge = adaptive(1000, 1, 1000);
    {
        let slow = |_| {
            let sleep = timer.sleep(ms(500));
            async move {
                sleep.await;
                Ok::<(), ()>(())
            }
        };
        let mut run = pin!(hedge.run_with(timer.clone(), slow));
        let waker = noop_waker();
        assert!(run
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        timer.advance(ms(40));
    }
    let latency = hedge.latency().unwrap();
    assert_eq!(latency.quantile_at(timer.now(), 1.0), Some(ms(40)));
}

#[test]
fn builder_names_the_offending_field() {
    let cases: Vec<(HedgeBuilder, &str)> = vec![
        (Hedge::builder().max_attempts(0), "max_attempts"),
        (Hedge::builder().max_attempts(33), "max_attempts"),
        (Hedge::builder().adaptive_delay(f64::NAN), "adaptive_delay"),
        (Hedge::builder().adaptive_delay(1.0), "adaptive_delay"),
        (Hedge::builder().adaptive_delay(0.0), "adaptive_delay"),
        (Hedge::builder().min_samples(0), "min_samples"),
        (
            Hedge::builder().delay_floor(ms(10)).delay_ceiling(ms(5)),
            "delay_ceiling",
        ),
        (
            Hedge::builder().window(Duration::ZERO, 10),
            "window.duration",
        ),
        (Hedge::builder().window(ms(1000), 0), "window.slots"),
        (Hedge::builder().budget_ratio(-1.0), "budget_ratio"),
        (
            Hedge::builder().fixed_delay(ms(5)).min_samples(10),
            "min_samples",
        ),
        (
            Hedge::builder().fixed_delay(ms(5)).window(ms(100), 2),
            "window",
        ),
    ];
    for (builder, field) in cases {
        let err = builder.build().unwrap_err();
        assert_eq!(err.field(), field, "{err}");
    }
    let err = Hedge::builder().adaptive_delay(1.5).build().unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid `adaptive_delay`: must be a percentile in (0, 1), e.g. 0.95 for p95, got 1.5"
    );
}

#[test]
fn defaults_are_as_documented() {
    let hedge = Hedge::builder().build().unwrap();
    assert_eq!(hedge.max_attempts(), 2);
    assert_eq!(hedge.budget().unwrap().ratio(), 0.05);
    assert_eq!(hedge.latency().unwrap().window(), Duration::from_secs(10));
    assert_eq!(hedge.delay_at(Instant::now()), None, "no samples yet");
    let fixed = Hedge::builder().fixed_delay(ms(3)).build().unwrap();
    assert_eq!(fixed.delay_at(Instant::now()), Some(ms(3)));
    assert!(fixed.latency().is_none());
}
