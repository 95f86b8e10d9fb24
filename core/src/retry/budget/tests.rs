use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

fn budget(ratio: f64, floor: u32, window_ms: u64, origin: Instant) -> RetryBudget {
    RetryBudget::builder()
        .ratio(ratio)
        .min_per_second(floor)
        .window(Duration::from_millis(window_ms))
        .build_at(origin)
        .unwrap()
}

#[test]
fn fractional_ratios_are_exact() {
    let t0 = Instant::now();
    for (ratio, calls, expected) in [
        (0.6, 100, 60),
        (0.1, 25, 2),
        (0.333, 1000, 333),
        (2.5, 4, 10),
    ] {
        let b = budget(ratio, 0, 10_000, t0);
        for _ in 0..calls {
            b.deposit_at(t0);
        }
        assert_eq!(b.available_at(t0), expected);
        let granted = (0..calls * 10).filter(|_| b.try_withdraw_at(t0)).count();
        assert_eq!(granted as u64, expected, "ratio {ratio}");
        assert_eq!(b.available_at(t0), 0);
    }
}

#[test]
fn the_floor_allows_retries_without_traffic_and_refills_per_second() {
    let t0 = Instant::now();
    let b = budget(0.1, 5, 10_000, t0);
    assert_eq!(b.available_at(t0), 5);
    let granted = (0..20).filter(|_| b.try_withdraw_at(t0)).count();
    assert_eq!(granted, 5, "one second's worth, not floor × window");
    // It refills at 5 a second: one per 200 ms, however long the window.
    assert!(!b.try_withdraw_at(t0 + Duration::from_millis(199)));
    assert!(b.try_withdraw_at(t0 + Duration::from_millis(200)));
    assert_eq!(b.available_at(t0 + Duration::from_millis(400)), 1);
    // A long quiet spell saves up one second's worth, no more.
    let later = t0 + Duration::from_secs(60);
    assert_eq!(b.available_at(later), 5);
    // Over ten seconds of steady asking: at most 5 × (1 + 10).
    let asked = (0..=1000u64)
        .filter(|i| b.try_withdraw_at(later + Duration::from_millis(i * 10)))
        .count();
    assert_eq!(asked, 55);
}

#[test]
fn the_window_is_drawn_on_before_the_floor_and_refunds_go_back_where_they_came_from() {
    let t0 = Instant::now();
    let b = budget(1.0, 1, 1_000, t0);
    b.deposit_at(t0);
    assert_eq!(b.try_grant_at(t0), Some(Grant::Window));
    assert_eq!(b.try_grant_at(t0), Some(Grant::Floor));
    assert_eq!(b.try_grant_at(t0), None);
    b.refund_grant(Grant::Floor, t0);
    assert_eq!(b.try_grant_at(t0), Some(Grant::Floor));
    b.refund_grant(Grant::Window, t0);
    assert_eq!(b.try_grant_at(t0), Some(Grant::Window));
}

#[test]
fn deposits_expire_slot_by_slot() {
    let t0 = Instant::now();
    let b = budget(1.0, 0, 1_000, t0);
    // 3 calls in slot 0, 4 calls in slot 5.
    for _ in 0..3 {
        b.deposit_at(t0);
    }
    for _ in 0..4 {
        b.deposit_at(t0 + Duration::from_millis(550));
    }
    assert_eq!(b.available_at(t0 + Duration::from_millis(999)), 7);
    assert_eq!(b.available_at(t0 + Duration::from_millis(1_000)), 4);
    assert_eq!(b.available_at(t0 + Duration::from_millis(1_499)), 4);
    assert_eq!(b.available_at(t0 + Duration::from_millis(1_500)), 0);
    // A jump of many windows clears everything.
    b.deposit_at(t0 + Duration::from_secs(3_600));
    assert_eq!(b.available_at(t0 + Duration::from_secs(3_600)), 1);
}

#[test]
fn late_instants_are_handled_on_the_safe_side() {
    let t0 = Instant::now();
    let b = budget(1.0, 0, 1_000, t0);
    b.deposit_at(t0 + Duration::from_millis(2_000));
    // A deposit for a slot that already left the window is dropped.
    b.deposit_at(t0);
    assert_eq!(b.available_at(t0 + Duration::from_millis(2_000)), 1);
    // A deposit for an older slot still in the window counts there, and expires with it.
    b.deposit_at(t0 + Duration::from_millis(1_500));
    assert_eq!(b.available_at(t0 + Duration::from_millis(2_000)), 2);
    assert_eq!(b.available_at(t0 + Duration::from_millis(2_500)), 1);
    // Instants before the origin count as the origin.
    let early = budget(1.0, 0, 1_000, t0 + Duration::from_secs(1));
    early.deposit_at(t0);
    assert_eq!(early.available_at(t0 + Duration::from_secs(1)), 1);
}

#[test]
fn refunds_return_unused_retries() {
    let t0 = Instant::now();
    let b = budget(0.5, 0, 1_000, t0);
    b.deposit_at(t0);
    b.deposit_at(t0);
    assert!(b.try_withdraw_at(t0));
    assert!(!b.try_withdraw_at(t0));
    b.refund_at(t0);
    assert!(b.try_withdraw_at(t0 + Duration::from_millis(10)));
    // A refund for a slot that left the window does nothing.
    b.refund_at(t0);
    assert_eq!(b.available_at(t0 + Duration::from_secs(5)), 0);
    b.refund_at(t0);
    assert_eq!(b.available_at(t0 + Duration::from_secs(5)), 0);
}

#[test]
fn clones_share_one_budget() {
    let t0 = Instant::now();
    let a = budget(1.0, 0, 1_000, t0);
    let b = a.clone();
    a.deposit_at(t0);
    assert!(b.try_withdraw_at(t0));
    assert!(!a.try_withdraw_at(t0));
    assert!(a.ptr_eq(&b));
    assert!(!a.ptr_eq(&budget(1.0, 0, 1_000, t0)));
}

#[test]
fn validation_names_the_field() {
    let cases: [(RetryBudgetBuilder, &str); 8] = [
        (RetryBudget::builder().ratio(f64::NAN), "ratio"),
        (RetryBudget::builder().ratio(-0.1), "ratio"),
        (RetryBudget::builder().ratio(1000.5), "ratio"),
        (RetryBudget::builder().ratio(1.0 / 3.0), "ratio"),
        (RetryBudget::builder().window(Duration::ZERO), "window"),
        (
            RetryBudget::builder().window(Duration::from_millis(9)),
            "window",
        ),
        (
            RetryBudget::builder().window(Duration::from_secs(3601)),
            "window",
        ),
        (
            RetryBudget::builder().window(Duration::from_micros(10_500)),
            "window",
        ),
    ];
    for (builder, field) in cases {
        let err = builder.build().unwrap_err();
        assert_eq!(err.field(), field, "{err}");
    }
    let err = RetryBudget::builder().ratio(1.0 / 3.0).build().unwrap_err();
    assert!(err.to_string().contains("multiple of 0.001"), "{err}");
    assert!(err.to_string().contains("use 0.333"), "{err}");
    let ok = RetryBudget::builder()
        .ratio(0.0)
        .min_per_second(0)
        .build()
        .unwrap();
    assert!(!ok.try_withdraw());
    assert_eq!(ok.ratio(), 0.0);
    let d = RetryBudget::default();
    assert_eq!(
        (d.ratio(), d.min_per_second(), d.window()),
        (0.2, 10, Duration::from_secs(10))
    );
}

#[test]
fn the_own_balance_excludes_the_remote_one_and_slides_with_the_window() {
    let t0 = Instant::now();
    let b = budget(0.5, 0, 1_000, t0);
    for _ in 0..4 {
        b.deposit_at(t0);
    }
    let later = t0 + Duration::from_millis(500);
    b.deposit_at(later);
    assert!(b.try_withdraw_at(later));
    assert_eq!(b.balance_at(later), 5 * 500 - 1000);
    b.set_remote_balance(10_000);
    assert_eq!(b.remote_balance(), 10_000);
    assert_eq!(
        b.balance_at(later),
        1_500,
        "the remote balance is not its own"
    );
    // The deposits at t0 leave the window at t0 + 1 s; the remote balance stays as set.
    let gone = t0 + Duration::from_millis(1_000);
    assert_eq!(b.balance_at(gone), 500 - 1000);
    assert_eq!(b.remote_balance(), 10_000);
}

#[test]
fn a_remote_balance_grants_retries_and_a_remote_debt_refuses_them() {
    let t0 = Instant::now();
    // No calls of its own: only the remote balance (and no floor).
    let b = budget(0.1, 0, 10_000, t0);
    assert!(!b.try_withdraw_at(t0));
    b.set_remote_balance(2_999);
    assert_eq!(b.available_at(t0), 2);
    assert_eq!((0..10).filter(|_| b.try_withdraw_at(t0)).count(), 2);
    assert_eq!(
        b.balance_at(t0),
        -2_000,
        "the retries are its own withdrawals"
    );
    // A fleet in debt: this instance's own 5 retries' worth of calls do not cover it.
    let b = budget(0.1, 0, 10_000, t0);
    for _ in 0..50 {
        b.deposit_at(t0);
    }
    b.set_remote_balance(-4_500);
    assert_eq!(b.available_at(t0), 0);
    assert!(!b.try_withdraw_at(t0));
    b.set_remote_balance(-3_500);
    assert_eq!((0..10).filter(|_| b.try_withdraw_at(t0)).count(), 1);
    // Cleared: alone again.
    b.set_remote_balance(0);
    assert_eq!(b.available_at(t0), 4);
}

#[test]
fn concurrent_withdrawals_never_overspend() {
    let t0 = Instant::now();
    let b = budget(0.25, 0, 10_000, t0);
    let threads = 4;
    let per_thread = 2_000;
    let granted: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let b = b.clone();
                scope.spawn(move || {
                    let mut granted = 0;
                    for _ in 0..per_thread {
                        b.deposit_at(t0);
                        if b.try_withdraw_at(t0) {
                            granted += 1;
                        }
                        if b.try_withdraw_at(t0) {
                            granted += 1;
                        }
                    }
                    granted
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    // Racing withdrawals may refuse each other transiently, never overspend: what is left is
    // exactly what was not granted. 8000 calls × 0.25 = 2000 retries in all.
    let left = (0..100).filter(|_| b.try_withdraw_at(t0)).count();
    assert_eq!(granted + left, threads * per_thread / 4);
    assert!(left <= threads, "{left} retries stranded");
}

/// One operation in a generated history.
#[derive(Debug, Clone)]
enum Op {
    Advance(u64),
    Call,
    Retry,
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            2 => (0u64..400).prop_map(Op::Advance),
            5 => Just(Op::Call),
            5 => Just(Op::Retry),
        ],
        0..400,
    )
}

proptest! {
    /// Over the window ending at any granted retry: retries from the window ≤ ratio × calls,
    /// exactly (a refusal by the window means one more would break it); and over any span of
    /// time d, retries from the floor ≤ floor × (1 s + d). Checked in exact integers against an
    /// independent log of the history.
    #[test]
    fn retries_never_exceed_ratio_times_calls_plus_floor(
        thousandths in 0u32..3_000,
        floor in 0u32..20,
        window_ms in (1u64..=20).prop_map(|w| w * 100),
        history in ops(),
    ) {
        let t0 = Instant::now();
        let b = budget(f64::from(thousandths) / 1000.0, floor, window_ms, t0);
        let slot_ms = window_ms / 10;
        let mut now_ms = 0u64;
        // (slot, is_retry) for every call and every retry granted from the window.
        let mut log: Vec<(u64, bool)> = Vec::new();
        let mut from_floor: Vec<u64> = Vec::new();
        for op in history {
            match op {
                Op::Advance(ms) => now_ms += ms,
                Op::Call => {
                    b.deposit_at(t0 + Duration::from_millis(now_ms));
                    log.push((now_ms / slot_ms, false));
                }
                Op::Retry => {
                    let slot = now_ms / slot_ms;
                    let in_window = |&&(s, _): &&(u64, bool)| s + 10 > slot;
                    let calls = log.iter().filter(in_window).filter(|e| !e.1).count() as u64;
                    let retries = log.iter().filter(in_window).filter(|e| e.1).count() as u64;
                    let allowance = u64::from(thousandths) * calls;
                    let grant = b.try_grant_at(t0 + Duration::from_millis(now_ms));
                    if grant == Some(Grant::Window) {
                        log.push((slot, true));
                        prop_assert!((retries + 1) * 1000 <= allowance);
                    } else {
                        // Exact, not merely safe: a refusal means one more would break the bound.
                        prop_assert!((retries + 1) * 1000 > allowance);
                    }
                    if grant == Some(Grant::Floor) {
                        from_floor.push(now_ms);
                        let n = from_floor.len();
                        for (i, &since) in from_floor.iter().enumerate() {
                            let count = (n - i) as u64;
                            prop_assert!(
                                count * 1000 <= u64::from(floor) * (1000 + now_ms - since)
                            );
                        }
                    }
                }
            }
        }
    }
}
