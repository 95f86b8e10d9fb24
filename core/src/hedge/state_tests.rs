//! [`HedgeState`] on its own, in explicit time; and the async runner against it: driven by hand
//! over the same scripted calls, the state must decide exactly what [`HedgedRun`] did.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::test_util::ms;
use crate::time::{ManualTimer, Timer};

fn fixed(delay_ms: u64, attempts: u32) -> Hedge {
    Hedge::builder()
        .fixed_delay(ms(delay_ms))
        .max_attempts(attempts)
        .unbudgeted()
        .build()
        .unwrap()
}

fn stats(hedge: &Hedge) -> (u64, u64, u64, u64) {
    let s = hedge.stats();
    (s.primaries, s.hedges_sent, s.hedges_won, s.budget_refusals)
}

#[test]
fn begin_counts_the_primary_and_says_when_the_first_hedge_is_due() {
    let hedge = fixed(10, 3);
    let mut state = HedgeState::new(&hedge);
    assert_eq!((state.attempts(), state.in_flight()), (0, 0));
    assert_eq!(stats(&hedge), (0, 0, 0, 0), "new does nothing");
    let t0 = Instant::now();
    assert_eq!(state.begin_at(t0), Some(t0 + ms(10)));
    assert_eq!((state.attempts(), state.in_flight()), (1, 1));
    assert_eq!(state.delay(), Some(ms(10)));
    assert_eq!(state.started_at(), Some(t0));
    // A second begin changes nothing.
    assert_eq!(state.begin_at(t0 + ms(5)), Some(t0 + ms(10)));
    assert_eq!(stats(&hedge), (1, 0, 0, 0));
}

#[test]
fn each_hedge_is_due_the_delay_after_the_previous_one_up_to_the_cap() {
    let hedge = fixed(10, 3);
    let mut state = HedgeState::new(&hedge);
    let t0 = Instant::now();
    state.begin_at(t0);
    // Late is fine: the next one is due after the hedge actually started.
    assert_eq!(state.try_hedge_at(t0 + ms(12)), Some(2));
    assert_eq!(state.next_hedge_at(), Some(t0 + ms(22)));
    assert_eq!(state.try_hedge_at(t0 + ms(22)), Some(3));
    assert!(!state.may_hedge());
    assert_eq!(state.next_hedge_at(), None, "three attempts is the cap");
    assert_eq!(state.try_hedge_at(t0 + ms(40)), None);
    assert_eq!((state.attempts(), state.in_flight()), (3, 3));
    assert_eq!(
        stats(&hedge),
        (1, 2, 0, 0),
        "a refusal by the cap is not the budget's"
    );
}

#[test]
fn a_policy_without_a_delay_yet_hedges_only_after_a_failure() {
    let hedge = Hedge::builder().unbudgeted().build().unwrap(); // adaptive, no samples
    let mut state = HedgeState::new(&hedge);
    let t0 = Instant::now();
    assert_eq!(state.begin_at(t0), None);
    assert!(state.may_hedge());
    state.attempt_done_at(t0 + ms(3), 1, AttemptOutcome::Failed);
    assert!(!state.is_over(), "a hedge may still take its place");
    assert_eq!(state.try_hedge_at(t0 + ms(3)), Some(2));
    state.attempt_done_at(t0 + ms(4), 2, AttemptOutcome::Failed);
    assert!(state.all_failed());
    assert_eq!(
        hedge.latency().unwrap().count_at(t0 + ms(4)),
        1,
        "the primary only"
    );
}

#[test]
fn a_single_attempt_policy_never_hedges() {
    let hedge = fixed(10, 1);
    let mut state = HedgeState::new(&hedge);
    let t0 = Instant::now();
    assert_eq!(state.begin_at(t0), None);
    assert_eq!(state.try_hedge_at(t0 + ms(50)), None);
    state.attempt_done_at(t0 + ms(60), 1, AttemptOutcome::Failed);
    assert!(state.all_failed());
    assert_eq!(stats(&hedge), (1, 0, 0, 0));
}

#[test]
fn the_budget_is_drawn_on_the_time_given_and_a_refused_hedge_gets_later_chances() {
    // No ratio to speak of, a reserve of one hedge a second.
    let budget = HedgeBudget::builder()
        .ratio(0.0)
        .min_per_second(1)
        .build()
        .unwrap();
    let hedge = Hedge::builder()
        .fixed_delay(ms(10))
        .max_attempts(3)
        .budget(budget.clone())
        .build()
        .unwrap();
    let t0 = Instant::now();
    let mut first = HedgeState::new(&hedge);
    first.begin_at(t0);
    assert_eq!(
        first.try_hedge_at(t0 + ms(10)),
        Some(2),
        "the reserve's one"
    );
    assert_eq!(first.next_hedge_at(), Some(t0 + ms(20)));
    assert_eq!(
        first.try_hedge_at(t0 + ms(20)),
        None,
        "empty until a second has passed"
    );
    assert!(first.budget_refused());
    // Its next chances come at 2, 4, 8 and 16 times the delay after attempt 2 started.
    for wait in [20, 40, 80, 160] {
        let due = first.next_hedge_at().unwrap();
        assert_eq!(due, t0 + ms(10 + wait));
        assert_eq!(first.try_hedge_at(due), None);
    }
    assert_eq!(first.next_hedge_at(), None, "out of chances");
    assert_eq!(first.try_hedge_at(t0 + Duration::from_secs(5)), None);
    // Another call, a second later on the time given (no clock is read): refilled.
    let mut second = HedgeState::new(&hedge);
    second.begin_at(t0 + ms(1010));
    assert_eq!(second.try_hedge_at(t0 + ms(1020)), Some(2));
    // Refused once per hedge due, however many chances it had.
    assert_eq!(stats(&hedge), (2, 2, 0, 1));
}

#[test]
fn a_later_chance_takes_the_savings_a_first_chance_must_keep() {
    // Savings only (no reserve), up to 4 hedges: a first chance must leave 2.
    let budget = HedgeBudget::builder()
        .ratio(1.0)
        .max_burst(4)
        .min_per_second(0)
        .build()
        .unwrap();
    let hedge = Hedge::builder()
        .fixed_delay(ms(10))
        .budget(budget.clone())
        .build()
        .unwrap();
    let t0 = Instant::now();
    // A policy past its first calls (a young one keeps only half of what it has earned: see
    // `a_young_policy_keeps_half_of_what_it_has_earned`): 4 earned, spent elsewhere.
    for _ in 0..4 {
        HedgeState::new(&hedge).begin_at(t0);
    }
    while budget.try_withdraw_at(t0) {}
    let mut calls: Vec<HedgeState<&Hedge>> = (0..3).map(|_| HedgeState::new(&hedge)).collect();
    for call in &mut calls {
        call.begin_at(t0); // 3 saved
    }
    assert_eq!(
        calls[0].try_hedge_at(t0 + ms(10)),
        Some(2),
        "3 saved, 2 stay"
    );
    assert_eq!(calls[1].try_hedge_at(t0 + ms(10)), None, "2 saved are kept");
    assert_eq!(calls[1].next_hedge_at(), Some(t0 + ms(20)));
    // Still out at twice the delay: a stuck call may take what was kept.
    assert_eq!(calls[1].try_hedge_at(t0 + ms(20)), Some(2));
    assert_eq!(budget.available_at(t0), 1);
    // A call whose primary answers before its second chance took nothing.
    assert_eq!(calls[2].try_hedge_at(t0 + ms(10)), None);
    calls[2].attempt_done_at(t0 + ms(15), 1, AttemptOutcome::Succeeded);
    assert_eq!(budget.available_at(t0), 1);
    assert_eq!(stats(&hedge), (7, 2, 0, 2));
}

#[test]
fn a_young_policy_keeps_half_of_what_it_has_earned() {
    // Savings only, up to 100 hedges: an old policy's first chance keeps 50. A young one has
    // earned 10 (10 primaries at 1.0) and keeps 5, so its first calls can hedge on time.
    let budget = HedgeBudget::builder()
        .ratio(1.0)
        .max_burst(100)
        .min_per_second(0)
        .build()
        .unwrap();
    let hedge = Hedge::builder()
        .fixed_delay(ms(10))
        .budget(budget.clone())
        .build()
        .unwrap();
    let t0 = Instant::now();
    let mut calls: Vec<HedgeState<&Hedge>> = (0..10).map(|_| HedgeState::new(&hedge)).collect();
    for call in &mut calls {
        call.begin_at(t0);
    }
    let mut on_time = 0;
    for call in &mut calls {
        on_time += usize::from(call.try_hedge_at(t0 + ms(10)).is_some());
    }
    assert_eq!(on_time, 5, "10 saved, 5 kept for later chances");
    assert_eq!(budget.available_at(t0), 5);
    // The 5 refused come back at twice the delay and take what was kept.
    let mut later = 0;
    for call in calls.iter_mut().filter(|call| call.attempts() == 1) {
        later += usize::from(call.try_hedge_at(t0 + ms(20)).is_some());
    }
    assert_eq!(later, 5);
    assert_eq!(stats(&hedge), (10, 10, 0, 5));
}

#[test]
fn a_refusal_after_the_last_failure_fails_the_call() {
    let hedge = Hedge::builder()
        .fixed_delay(ms(10))
        .budget(
            HedgeBudget::builder()
                .ratio(0.0)
                .min_per_second(0)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let mut state = HedgeState::new(&hedge);
    let t0 = Instant::now();
    state.begin_at(t0);
    state.attempt_done_at(t0 + ms(2), 1, AttemptOutcome::Failed);
    assert!(!state.is_over());
    assert_eq!(state.try_hedge_at(t0 + ms(2)), None);
    assert!(state.all_failed());
    assert_eq!(stats(&hedge), (1, 0, 0, 1));
}

fn adaptive() -> Hedge {
    Hedge::builder()
        .adaptive_delay(0.5)
        .min_samples(1)
        .max_attempts(3)
        .unbudgeted()
        .build()
        .unwrap()
}

/// Every sample the window holds, smallest first, as whole milliseconds (within the window's
/// precision).
fn samples(hedge: &Hedge, now: Instant) -> (u64, Option<Duration>, Option<Duration>) {
    let window = hedge.latency().unwrap();
    (
        window.count_at(now),
        window.quantile_at(now, 0.0),
        window.quantile_at(now, 1.0),
    )
}

#[test]
fn only_the_primary_is_recorded_exactly_when_it_finishes() {
    let hedge = adaptive();
    let mut state = HedgeState::new(&hedge);
    let t0 = Instant::now();
    state.begin_at(t0);
    state.try_hedge_at(t0 + ms(1));
    state.attempt_done_at(t0 + ms(2), 2, AttemptOutcome::Failed);
    assert_eq!(samples(&hedge, t0 + ms(2)).0, 0, "a hedge is not recorded");
    state.attempt_done_at(t0 + ms(7), 1, AttemptOutcome::Succeeded);
    assert_eq!(state.winner(), Some(1));
    assert_eq!(samples(&hedge, t0 + ms(7)), (1, Some(ms(7)), Some(ms(7))));
    assert_eq!(
        stats(&hedge),
        (1, 1, 0, 0),
        "the primary's win is not a hedge's"
    );
}

#[test]
fn a_hedge_winning_records_the_primary_as_a_lower_bound_and_counts_the_win() {
    let hedge = adaptive();
    let mut state = HedgeState::new(&hedge);
    let t0 = Instant::now();
    state.begin_at(t0);
    state.try_hedge_at(t0 + ms(4));
    state.attempt_done_at(t0 + ms(9), 2, AttemptOutcome::Succeeded);
    assert_eq!(state.winner(), Some(2));
    assert!(state.is_over() && !state.all_failed());
    assert_eq!(samples(&hedge, t0 + ms(9)), (1, Some(ms(9)), Some(ms(9))));
    assert_eq!(stats(&hedge), (1, 1, 1, 0));
    // Over: the primary's own end (it was cancelled) and anything else change nothing.
    state.attempt_done_at(t0 + ms(50), 1, AttemptOutcome::Succeeded);
    state.cancel_at(t0 + ms(60));
    assert_eq!(state.try_hedge_at(t0 + ms(70)), None);
    assert_eq!(samples(&hedge, t0 + ms(70)).0, 1);
    assert_eq!(stats(&hedge), (1, 1, 1, 0));
}

#[test]
fn a_cancelled_call_records_its_primary_once() {
    let hedge = adaptive();
    let t0 = Instant::now();
    let mut state = HedgeState::new(&hedge);
    state.begin_at(t0);
    state.try_hedge_at(t0 + ms(1));
    state.cancel_at(t0 + ms(40));
    state.cancel_at(t0 + ms(80));
    assert!(state.is_over() && !state.all_failed());
    assert_eq!(
        samples(&hedge, t0 + ms(80)),
        (1, Some(ms(40)), Some(ms(40)))
    );
    // A call whose primary already finished records nothing more when cancelled.
    let mut state = HedgeState::new(&hedge);
    state.begin_at(t0 + ms(100));
    state.try_hedge_at(t0 + ms(101));
    state.attempt_done_at(t0 + ms(103), 1, AttemptOutcome::Failed);
    state.cancel_at(t0 + ms(200));
    assert_eq!(
        samples(&hedge, t0 + ms(200)),
        (2, Some(ms(3)), Some(ms(40)))
    );
}

#[test]
fn unknown_attempts_and_calls_not_begun_are_ignored() {
    let hedge = fixed(10, 2);
    let t0 = Instant::now();
    let mut state = HedgeState::new(&hedge);
    state.attempt_done_at(t0, 1, AttemptOutcome::Succeeded);
    state.cancel_at(t0);
    assert_eq!(state.try_hedge_at(t0), None);
    assert_eq!(state.next_hedge_at(), None);
    assert_eq!(stats(&hedge), (0, 0, 0, 0));
    state.begin_at(t0);
    for attempt in [0, 2, 7] {
        state.attempt_done_at(t0, attempt, AttemptOutcome::Succeeded);
    }
    assert_eq!((state.in_flight(), state.winner()), (1, None));
}

// ---- The runner against the state ----

/// Attempt `n` (from 1) takes `plan[n - 1].0` ms (at least 1) and then succeeds if
/// `plan[n - 1].1`.
type Plan = Vec<(u64, bool)>;

/// What one call did: its outcome (the winner, or the failed attempts in the order they
/// failed), when each attempt started, and when the call ended, after its origin.
type Trace = (Result<u32, Vec<u32>>, Vec<(u32, Duration)>, Duration);

fn by_runner(hedge: &Hedge, timer: &ManualTimer, plan: &Plan) -> Trace {
    let origin = timer.now();
    let starts = std::sync::Mutex::new(Vec::new());
    let outcome = timer.block_on(hedge.run_with(timer.clone(), |n| {
        starts.lock().unwrap().push((n, timer.now() - origin));
        let (took, ok) = plan[n as usize - 1];
        let sleep = timer.sleep(ms(took));
        async move {
            sleep.await;
            if ok {
                Ok(n)
            } else {
                Err(n)
            }
        }
    }));
    let starts = starts.into_inner().unwrap();
    (
        outcome.map_err(HedgeError::into_errors),
        starts,
        timer.now() - origin,
    )
}

/// The same call driven by hand: a discrete-event loop over the state. At one instant, attempts
/// ending are handled before a hedge falls due, in attempt order, and the first success ends
/// the call; failures at one instant start at most one attempt at once.
fn by_hand(hedge: &Hedge, timer: &ManualTimer, plan: &Plan) -> Trace {
    let origin = timer.now();
    let mut state = HedgeState::new(hedge);
    let mut starts = Vec::new();
    let mut out: Vec<(u32, Instant)> = Vec::new();
    let mut failures = Vec::new();
    let mut start = |n: u32, now: Instant, out: &mut Vec<(u32, Instant)>| {
        starts.push((n, now - origin));
        out.push((n, now + ms(plan[n as usize - 1].0)));
    };
    state.begin_at(origin);
    start(1, origin, &mut out);
    loop {
        let next_end = out.iter().map(|&(_, end)| end).min();
        let now = match (next_end, state.next_hedge_at()) {
            (Some(end), Some(due)) => end.min(due),
            (end, due) => end.or(due).expect("something is in flight"),
        };
        timer.advance_to(now);
        let mut ending: Vec<u32> = out
            .iter()
            .filter(|&&(_, end)| end == now)
            .map(|&(n, _)| n)
            .collect();
        ending.sort_unstable();
        out.retain(|&(_, end)| end != now);
        let mut failed = false;
        for n in ending {
            if plan[n as usize - 1].1 {
                state.attempt_done_at(now, n, AttemptOutcome::Succeeded);
                return (Ok(n), starts, now - origin);
            }
            state.attempt_done_at(now, n, AttemptOutcome::Failed);
            failures.push(n);
            failed = true;
        }
        if failed {
            if let Some(n) = state.try_hedge_at(now) {
                start(n, now, &mut out);
            }
        }
        if state.in_flight() == 0 {
            assert!(state.all_failed());
            return (Err(failures), starts, now - origin);
        }
        if state.next_hedge_at().is_some_and(|due| due <= now) {
            if let Some(n) = state.try_hedge_at(now) {
                start(n, now, &mut out);
            }
        }
    }
}

fn policy(delay_ms: Option<u64>, attempts: u32, budget: Option<(f64, u32)>) -> Hedge {
    let mut builder = match delay_ms {
        Some(delay) => Hedge::builder().fixed_delay(ms(delay)),
        None => Hedge::builder()
            .adaptive_delay(0.75)
            .min_samples(3)
            .delay_floor(ms(1))
            .window(Duration::from_secs(2), 4),
    };
    builder = builder.max_attempts(attempts);
    builder = match budget {
        None => builder.unbudgeted(),
        Some((ratio, floor)) => builder.budget(
            HedgeBudget::builder()
                .ratio(ratio)
                .max_burst(2)
                .min_per_second(floor)
                .build()
                .unwrap(),
        ),
    };
    builder.build().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn the_runner_decides_what_the_state_decides_by_hand(
        delay_ms in prop::option::of(1u64..40),
        attempts in 1u32..=4,
        budget in prop::option::of((0.0f64..1.0, 0u32..3)),
        calls in prop::collection::vec(
            (prop::collection::vec((1u64..60, any::<bool>()), 4), 0u64..1500),
            1..12,
        ),
    ) {
        let (runner_policy, hand_policy) =
            (policy(delay_ms, attempts, budget), policy(delay_ms, attempts, budget));
        let (runner_timer, hand_timer) = (ManualTimer::new(), ManualTimer::new());
        for (plan, gap) in &calls {
            let ran = by_runner(&runner_policy, &runner_timer, plan);
            let driven = by_hand(&hand_policy, &hand_timer, plan);
            prop_assert_eq!(&ran, &driven, "plan {:?}", plan);
            prop_assert_eq!(runner_timer.pending_sleeps(), 0, "every loser dropped");
            runner_timer.advance(ms(*gap));
            hand_timer.advance(ms(*gap));
        }
        prop_assert_eq!(runner_policy.stats(), hand_policy.stats());
        if let (Some(ran), Some(driven)) = (runner_policy.latency(), hand_policy.latency()) {
            let (ran_now, hand_now) = (runner_timer.now(), hand_timer.now());
            prop_assert_eq!(ran.count_at(ran_now), driven.count_at(hand_now));
            for p in [0.0, 0.5, 0.9, 1.0] {
                prop_assert_eq!(ran.quantile_at(ran_now, p), driven.quantile_at(hand_now, p));
            }
        }
    }
}
