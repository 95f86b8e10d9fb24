//! Bad configuration is refused with a message that names the field and the accepted range;
//! no input, however odd, panics.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use tailguard::backoff::{Backoff, Jitter};
use tailguard::breaker::CircuitBreakerBuilder;

fn refused(builder: CircuitBreakerBuilder) -> String {
    builder
        .build_state_machine_at(Instant::now())
        .expect_err("should be refused")
        .to_string()
}

fn backoff(base: Duration, jitter: Jitter, max_retries: Option<u32>) -> Backoff {
    let builder = Backoff::constant(base).jitter(jitter);
    match max_retries {
        Some(n) => builder.max_retries(n),
        None => builder,
    }
    .build()
    .unwrap()
}

#[test]
fn bad_values_are_refused_with_a_clear_message() {
    let b = CircuitBreakerBuilder::new;
    let cases = [
        (b().failure_rate(0.0), "invalid `failure_rate`: must be in (0, 1], got 0"),
        (b().failure_rate(1.5), "invalid `failure_rate`: must be in (0, 1], got 1.5"),
        (b().failure_rate(f64::NAN), "invalid `failure_rate`: must be in (0, 1], got NaN"),
        (b().failure_rate(-0.5), "invalid `failure_rate`: must be in (0, 1], got -0.5"),
        (
            b().slow_calls(Duration::ZERO, 0.5),
            "invalid `slow_calls.duration`: must be greater than zero, got 0ns",
        ),
        (
            b().slow_calls(Duration::from_secs(1), f64::INFINITY),
            "invalid `slow_calls.rate`: must be in (0, 1], got inf",
        ),
        (
            b().count_window(0),
            "invalid `count_window`: must be in 1..=1000000, got 0",
        ),
        (
            b().time_window(Duration::from_secs(10), 0),
            "invalid `time_window.buckets`: must be in 1..=1000, got 0",
        ),
        (
            b().time_window(Duration::from_nanos(5), 10),
            "invalid `time_window.duration`: must be at least 1ns per bucket and at most 584 years, got 5ns for 10 buckets",
        ),
        (b().minimum_calls(0), "invalid `minimum_calls`: must be at least 1, got 0"),
        (
            b().count_window(10).minimum_calls(11),
            "invalid `minimum_calls`: must be at most the count window (10 calls) so the breaker can trip, got 11",
        ),
        (
            b().consecutive_failures(0),
            "invalid `consecutive_failures`: must be at least 1, got 0",
        ),
        (
            b().open_duration(Duration::ZERO),
            "invalid `open_duration`: must be greater than zero (a zero open duration probes at once), got 0ns",
        ),
        (
            b().open_backoff(backoff(Duration::ZERO, Jitter::None, None)),
            "invalid `open_backoff`: must start above zero (a zero open duration probes at once), got a base of 0ns",
        ),
        (
            b().open_backoff(backoff(Duration::from_secs(1), Jitter::Full, None)),
            "invalid `open_backoff`: must not use full jitter, which can draw an open duration of zero; use Jitter::Equal (t/2 + rand(0, t/2)), Jitter::Decorrelated or Jitter::None, got full",
        ),
        (
            b().open_backoff(backoff(Duration::from_secs(1), Jitter::Equal, Some(0))),
            "invalid `open_backoff`: must yield at least one duration; drop `max_retries` or set it to at least 1, got 0",
        ),
        (
            b().half_open_calls(0),
            "invalid `half_open_calls`: must be in 1..=10000, got 0",
        ),
        (
            b().half_open_success_rate(0.0),
            "invalid `half_open_success_rate`: must be in (0, 1], got 0",
        ),
        (
            b().half_open_timeout(Duration::ZERO),
            "invalid `half_open_timeout`: must be greater than zero, got 0ns",
        ),
        (
            b().stripes(3),
            "invalid `stripes`: must be 0 or a power of two in 1..=64, got 3",
        ),
        (
            b().stripes(128),
            "invalid `stripes`: must be 0 or a power of two in 1..=64, got 128",
        ),
    ];
    for (builder, message) in cases {
        assert_eq!(refused(builder), message);
    }
    assert_eq!(
        refused(b().open_duration(Duration::MAX)),
        format!(
            "invalid `open_duration`: must be at most 584 years (u64::MAX nanoseconds), got {:?}",
            Duration::MAX
        )
    );
}

#[test]
fn a_later_valid_open_duration_replaces_a_refused_one() {
    let builder = CircuitBreakerBuilder::new()
        .open_duration(Duration::ZERO)
        .open_duration(Duration::from_secs(1));
    assert!(builder.build_state_machine_at(Instant::now()).is_ok());
}

#[test]
fn a_later_open_duration_replaces_a_refused_backoff_and_vice_versa() {
    let full = Backoff::exponential(Duration::from_secs(1))
        .jitter(Jitter::Full)
        .build()
        .unwrap();
    let equal = Backoff::exponential(Duration::from_secs(1))
        .jitter(Jitter::Equal)
        .build()
        .unwrap();
    let fixed_after_refused = CircuitBreakerBuilder::new()
        .open_backoff(full)
        .open_duration(Duration::from_secs(1));
    assert!(fixed_after_refused
        .build_state_machine_at(Instant::now())
        .is_ok());
    let backoff_after_refused = CircuitBreakerBuilder::new()
        .open_duration(Duration::ZERO)
        .open_backoff(equal);
    assert!(backoff_after_refused
        .build_state_machine_at(Instant::now())
        .is_ok());
}

#[test]
fn the_defaults_build() {
    assert!(CircuitBreakerBuilder::new()
        .build_state_machine_at(Instant::now())
        .is_ok());
    // A small count window lowers the default minimum instead of refusing it.
    assert!(CircuitBreakerBuilder::new()
        .count_window(3)
        .build_state_machine_at(Instant::now())
        .is_ok());
}

fn any_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(0.0),
        Just(1.0),
        -2.0..2.0f64
    ]
}

fn any_jitter() -> impl Strategy<Value = Jitter> {
    prop_oneof![
        Just(Jitter::None),
        Just(Jitter::Full),
        Just(Jitter::Equal),
        Just(Jitter::Decorrelated),
    ]
}

fn any_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::MAX),
        (0u64..u64::MAX, 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
        (0u64..10_000_000_000).prop_map(Duration::from_nanos),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Whatever goes in, building either works or explains itself; and a breaker that builds
    /// survives a little use at extreme instants.
    #[test]
    fn no_input_panics(
        rates in proptest::collection::vec(any_f64(), 4),
        durations in proptest::collection::vec(any_duration(), 5),
        counts in proptest::collection::vec(prop_oneof![Just(0u64), Just(u64::MAX), 0u64..100], 4),
        buckets in prop_oneof![Just(0u32), Just(u32::MAX), 0u32..50],
        window in prop_oneof![Just(0u32), Just(u32::MAX), 0u32..50],
        time_based in any::<bool>(),
        stripes in 0usize..100,
        jitters in proptest::collection::vec(any_jitter(), 1),
    ) {
        let mut builder = CircuitBreakerBuilder::new()
            .failure_rate(rates[0])
            .slow_calls(durations[0], rates[1])
            .minimum_calls(counts[0])
            .consecutive_failures(counts[1])
            .open_duration(durations[1])
            .half_open_calls(counts[2] as u32)
            .half_open_success_rate(rates[2])
            .half_open_timeout(durations[2])
            .stripes(stripes);
        builder = if time_based {
            builder.time_window(durations[3], buckets)
        } else {
            builder.count_window(window)
        };
        if let Ok(backoff) = Backoff::exponential(durations[4])
            .factor(rates[3])
            .max_delay(durations[1])
            .max_retries(counts[3] as u32)
            .jitter(jitters[0])
            .build()
        {
            builder = builder.open_backoff(backoff);
        }
        let now = Instant::now();
        match builder.build_state_machine_at(now) {
            Err(error) => prop_assert!(!error.message().is_empty()),
            Ok(machine) => {
                for step in [Duration::ZERO, Duration::from_secs(1), Duration::from_secs(86_400 * 365 * 100)] {
                    let at = now + step;
                    if let Ok(ticket) = machine.try_acquire_at(at) {
                        machine.record_at(ticket, tailguard::breaker::Outcome::Failure, at);
                    }
                    let _ = machine.metrics_at(at);
                }
            }
        }
    }
}
