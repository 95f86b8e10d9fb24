//! The retry budget against tower's `TpsBudget`: exact for fractional ratios.

use std::time::{Duration, Instant};

use tailguard::retry::RetryBudget;
use tower::retry::budget::{Budget as _, TpsBudget};

#[test]
fn a_sixty_percent_budget_grants_sixty_percent() {
    let now = Instant::now();
    let ours = RetryBudget::builder()
        .ratio(0.6)
        .min_per_second(0)
        .window(Duration::from_secs(10))
        .build_at(now)
        .unwrap();
    let theirs = TpsBudget::new(Duration::from_secs(10), 0, 0.6);
    for _ in 0..100 {
        ours.deposit_at(now);
        theirs.deposit();
    }
    let ours_granted = (0..200).filter(|_| ours.try_withdraw_at(now)).count();
    let theirs_granted = (0..200).filter(|_| theirs.withdraw()).count();
    assert_eq!(ours_granted, 60);
    // tower rounds the cost of a retry down to whole deposits (1 / 0.6 → 1): every call can be
    // retried. Kept as a record of why the budget counts in thousandths.
    assert_eq!(theirs_granted, 100);
}

#[test]
fn ratios_between_whole_fractions_are_honoured() {
    let now = Instant::now();
    for (ratio, expected) in [
        (0.15, 150),
        (0.35, 350),
        (0.45, 450),
        (0.9, 900),
        (1.5, 1500),
    ] {
        let budget = RetryBudget::builder()
            .ratio(ratio)
            .min_per_second(0)
            .build_at(now)
            .unwrap();
        for _ in 0..1000 {
            budget.deposit_at(now);
        }
        assert_eq!(budget.available_at(now), expected, "ratio {ratio}");
    }
}
