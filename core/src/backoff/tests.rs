use std::time::Duration;

use proptest::prelude::*;

use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn millis(backoff: Backoff) -> Vec<u128> {
    backoff.map(|d| d.as_millis()).collect()
}

#[test]
fn constant_linear_and_exponential_without_jitter() {
    let constant = Backoff::constant(ms(50))
        .max_retries(3)
        .jitter(Jitter::None)
        .build()
        .unwrap();
    assert_eq!(millis(constant), [50, 50, 50]);

    let linear = Backoff::linear(ms(10), ms(15))
        .max_retries(4)
        .jitter(Jitter::None)
        .build()
        .unwrap();
    assert_eq!(millis(linear), [10, 25, 40, 55]);

    let exponential = Backoff::exponential(ms(10))
        .factor(3.0)
        .max_delay(ms(500))
        .max_retries(6)
        .jitter(Jitter::None)
        .build()
        .unwrap();
    assert_eq!(millis(exponential), [10, 30, 90, 270, 500, 500]);
}

#[test]
fn zero_max_retries_yields_nothing() {
    let mut b = Backoff::constant(ms(1)).max_retries(0).build().unwrap();
    assert_eq!(b.size_hint(), (0, Some(0)));
    assert_eq!(b.next(), None);
}

#[test]
fn reset_starts_over_and_size_hint_counts_down() {
    let mut b = Backoff::exponential(ms(1))
        .jitter(Jitter::None)
        .max_retries(3)
        .build()
        .unwrap();
    assert_eq!(b.next(), Some(ms(1)));
    assert_eq!(b.next(), Some(ms(2)));
    assert_eq!(b.size_hint(), (1, Some(1)));
    assert_eq!(b.retries(), 2);
    b.reset();
    assert_eq!(b.next(), Some(ms(1)));
}

#[test]
fn huge_retry_counts_do_not_overflow() {
    let mut b = Backoff::exponential(Duration::from_secs(1))
        .jitter(Jitter::None)
        .build()
        .unwrap();
    assert_eq!(b.raw(u32::MAX), u64::MAX);
    assert_eq!(b.nth(2_000), Some(MAX_DELAY));
    let linear = Backoff::linear(MAX_DELAY, MAX_DELAY)
        .jitter(Jitter::None)
        .build()
        .unwrap();
    assert_eq!(linear.raw(u32::MAX), u64::MAX);
}

#[test]
fn seeded_backoffs_reproduce_and_clones_share_state() {
    let make = || {
        Backoff::exponential(ms(10))
            .max_delay(ms(10_000))
            .seed(99)
            .build()
            .unwrap()
    };
    let a: Vec<_> = make().take(20).collect();
    let b: Vec<_> = make().take(20).collect();
    assert_eq!(a, b);
    // Not all equal to the un-jittered value: randomness is really applied.
    let raw = Backoff::exponential(ms(10))
        .max_delay(ms(10_000))
        .jitter(Jitter::None)
        .build()
        .unwrap();
    assert_ne!(a, raw.take(20).collect::<Vec<_>>());

    let mut original = make();
    original.next();
    let clone = original.clone();
    assert!(original.take(10).eq(clone.take(10)));
}

#[test]
fn forks_of_a_seeded_backoff_are_reproducible_and_distinct() {
    let b = Backoff::exponential(ms(10)).seed(5).build().unwrap();
    let f0: Vec<_> = b.fork(0).take(8).collect();
    let f0_again: Vec<_> = b.fork(0).take(8).collect();
    let f1: Vec<_> = b.fork(1).take(8).collect();
    assert_eq!(f0, f0_again);
    assert_ne!(f0, f1);
    let mut used = b.clone();
    used.nth(3);
    assert_eq!(used.fork(0).take(8).collect::<Vec<_>>(), f0);
}

#[test]
fn validation_names_the_field() {
    let cases = [
        (Backoff::exponential(ms(1)).factor(0.0).build(), "factor"),
        (Backoff::exponential(ms(1)).factor(-2.0).build(), "factor"),
        (Backoff::exponential(ms(1)).factor(0.5).build(), "factor"),
        (
            Backoff::exponential(ms(1)).factor(f64::NAN).build(),
            "factor",
        ),
        (
            Backoff::exponential(ms(1)).factor(f64::INFINITY).build(),
            "factor",
        ),
        (Backoff::constant(ms(1)).factor(2.0).build(), "factor"),
        (Backoff::exponential(Duration::ZERO).build(), "base"),
        (
            Backoff::constant(Duration::ZERO)
                .jitter(Jitter::Decorrelated)
                .build(),
            "base",
        ),
        (
            Backoff::exponential(ms(10)).max_delay(ms(9)).build(),
            "max_delay",
        ),
        (Backoff::constant(Duration::MAX).build(), "base"),
        (Backoff::linear(ms(1), Duration::MAX).build(), "step"),
        (
            Backoff::constant(ms(1)).max_delay(Duration::MAX).build(),
            "max_delay",
        ),
    ];
    for (result, field) in cases {
        let err = result.unwrap_err();
        assert_eq!(err.field(), field, "{err}");
        assert!(err.to_string().starts_with(&format!("invalid `{field}`")));
    }
    let err = Backoff::exponential(ms(1)).factor(0.5).build().unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid `factor`: must be a finite number ≥ 1.0, got 0.5"
    );
    // Zero delays are fine where they make sense.
    assert!(Backoff::constant(Duration::ZERO).build().is_ok());
    assert!(Backoff::linear(Duration::ZERO, ms(1)).build().is_ok());
}

#[test]
fn decorrelated_grows_from_the_previous_delay() {
    let b = Backoff::exponential(ms(10))
        .max_delay(ms(1_000))
        .jitter(Jitter::Decorrelated)
        .seed(1)
        .build()
        .unwrap();
    let mut prev = ms(10);
    for d in b.take(200) {
        assert!(d >= ms(10) && d <= ms(1_000) && d <= (prev * 3).max(ms(10)));
        prev = d;
    }
}

fn jitters() -> impl Strategy<Value = Jitter> {
    prop_oneof![
        Just(Jitter::None),
        Just(Jitter::Full),
        Just(Jitter::Equal),
        Just(Jitter::Decorrelated),
    ]
}

proptest! {
    /// Every delay is within the cap and within the formula's range for its retry number.
    #[test]
    fn delays_stay_within_bounds(
        base_ns in 1u64..10_000_000_000,
        cap_extra in 0u64..100_000_000_000,
        factor in 1.0f64..10.0,
        jitter in jitters(),
        seed: u64,
        count in 0usize..80,
    ) {
        let cap_ns = base_ns.saturating_add(cap_extra);
        let backoff = Backoff::exponential(Duration::from_nanos(base_ns))
            .factor(factor)
            .max_delay(Duration::from_nanos(cap_ns))
            .jitter(jitter)
            .seed(seed)
            .build()
            .unwrap();
        let mut prev = base_ns;
        for (n, delay) in backoff.take(count).enumerate() {
            let d = u64::try_from(delay.as_nanos()).unwrap();
            prop_assert!(d <= cap_ns);
            let t = (base_ns as f64 * factor.powi(n as i32)).min(cap_ns as f64) as u64;
            match jitter {
                Jitter::None => prop_assert_eq!(d, t.min(cap_ns)),
                Jitter::Full => prop_assert!(d <= t),
                Jitter::Equal => prop_assert!(d >= t / 2 && d <= t),
                Jitter::Decorrelated => {
                    prop_assert!(d >= base_ns.min(cap_ns));
                    prop_assert!(d <= prev.saturating_mul(3).max(base_ns));
                }
            }
            prev = d;
        }
    }

    /// `max_retries` bounds the sequence exactly, whatever the shape.
    #[test]
    fn max_retries_is_exact(max in 0u32..200, jitter in jitters(), seed: u64) {
        let backoff = Backoff::linear(Duration::from_millis(1), Duration::from_millis(1))
            .max_retries(max)
            .jitter(jitter)
            .seed(seed)
            .build()
            .unwrap();
        prop_assert_eq!(backoff.count(), max as usize);
    }
}

#[test]
fn next_or_last_keeps_the_last_retry_delay_once_the_limit_is_reached() {
    let mut b = Backoff::exponential(ms(10))
        .max_retries(3)
        .jitter(Jitter::None)
        .build()
        .unwrap();
    let delays: Vec<_> = std::iter::from_fn(|| b.next_or_last()).take(6).collect();
    assert_eq!(delays, [10, 20, 40, 40, 40, 40].map(ms));
    b.reset();
    assert_eq!(b.next_or_last(), Some(ms(10)));

    let mut none = Backoff::constant(ms(1)).max_retries(0).build().unwrap();
    assert_eq!(none.next_or_last(), None);
}

proptest! {
    /// Past `max_retries`, `next_or_last` draws the last retry's delay again with fresh jitter:
    /// within that retry's range, and not one value repeated when the jitter is random.
    #[test]
    fn next_or_last_rejitters_the_last_retry(
        max in 1u32..10,
        jitter in jitters(),
        seed: u64,
    ) {
        let (base, cap) = (1_000_000u64, 1_000_000_000u64);
        let mut b = Backoff::exponential(Duration::from_nanos(base))
            .max_delay(Duration::from_nanos(cap))
            .max_retries(max)
            .jitter(jitter)
            .seed(seed)
            .build()
            .unwrap();
        let head: Vec<Duration> = b.clone().collect();
        let drawn: Vec<Duration> = std::iter::from_fn(|| b.next_or_last()).take(max as usize + 50).collect();
        prop_assert_eq!(&drawn[..max as usize], &head[..]);
        let t = (base << (max - 1)).min(cap);
        let tail = &drawn[max as usize..];
        for d in tail {
            let d = u64::try_from(d.as_nanos()).unwrap();
            match jitter {
                Jitter::None => prop_assert_eq!(d, t),
                Jitter::Full => prop_assert!(d <= t),
                Jitter::Equal => prop_assert!(d >= t / 2 && d <= t),
                Jitter::Decorrelated => prop_assert!(d >= base && d <= cap),
            }
        }
        if jitter != Jitter::None {
            prop_assert!(tail.iter().any(|d| *d != tail[0]), "jitter is drawn afresh");
        }
    }
}
