//! Property tests of the retry loop's limits, in virtual time.

use std::cell::RefCell;
use std::time::Duration;

use proptest::prelude::*;
use tailguard::backoff::{Backoff, Jitter};
use tailguard::retry::{GaveUp, Retry};
use tailguard::time::{ManualTimer, Timer};

#[derive(Debug, Clone)]
struct Attempt {
    /// How long the attempt takes; `None` never finishes.
    takes_ms: Option<u64>,
    succeeds: bool,
}

fn attempts() -> impl Strategy<Value = Vec<Attempt>> {
    prop::collection::vec(
        (
            prop::option::weighted(0.9, 0u64..400),
            prop::bool::weighted(0.2),
        )
            .prop_map(|(takes_ms, succeeds)| Attempt { takes_ms, succeeds }),
        12,
    )
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
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Never more than `max_attempts`; no attempt starts at or after the deadline; the call never
    /// outlives the deadline; no attempt outlives its own timeout; the first success wins.
    #[test]
    fn the_loop_respects_every_limit(
        max_attempts in 1u32..10,
        max_elapsed_ms in 1u64..2_000,
        attempt_timeout_ms in prop::option::of(1u64..600),
        base_ms in 1u64..300,
        jitter in jitters(),
        seed: u64,
        plan in attempts(),
    ) {
        let timer = ManualTimer::new();
        let backoff = Backoff::exponential(Duration::from_millis(base_ms))
            .max_delay(Duration::from_secs(1))
            .jitter(jitter)
            .seed(seed)
            .build()
            .unwrap();
        let mut builder = Retry::with_timer(timer.clone())
            .max_attempts(max_attempts)
            .max_elapsed(Duration::from_millis(max_elapsed_ms))
            .backoff(backoff);
        if let Some(ms) = attempt_timeout_ms {
            builder = builder.attempt_timeout(Duration::from_millis(ms));
        }
        let policy = builder.build().unwrap();
        let t0 = timer.now();
        let log = RefCell::new(Vec::new()); // (attempt, start, end if finished)
        let t = timer.clone();
        let result = timer.block_on(policy.run_numbered(|n| {
            let step = plan[(n as usize - 1) % plan.len()].clone();
            let t = t.clone();
            let log = &log;
            async move {
                let start = t.now() - t0;
                log.borrow_mut().push((n, start, None));
                match step.takes_ms {
                    Some(ms) => t.sleep(Duration::from_millis(ms)).await,
                    None => futures::future::pending::<()>().await,
                }
                log.borrow_mut().last_mut().unwrap().2 = Some(t.now() - t0);
                if step.succeeds { Ok(n) } else { Err(n) }
            }
        }));
        let log = log.into_inner();
        let max_elapsed = Duration::from_millis(max_elapsed_ms);
        prop_assert!(!log.is_empty());
        prop_assert!(log.len() <= max_attempts as usize);
        prop_assert!(timer.now() - t0 <= max_elapsed);
        for (i, &(n, start, _)) in log.iter().enumerate() {
            prop_assert_eq!(n as usize, i + 1);
            prop_assert!(start < max_elapsed, "attempt {} started at {:?}", n, start);
        }
        if let Some(ms) = attempt_timeout_ms {
            // An attempt longer than its timeout never finishes; one that finishes fit in it.
            let limit = Duration::from_millis(ms);
            for &(n, start, end) in &log {
                let step = &plan[(n as usize - 1) % plan.len()];
                if let Some(end) = end {
                    prop_assert!(end - start <= limit);
                }
                if step.takes_ms.is_none_or(|t| Duration::from_millis(t) > limit) {
                    prop_assert!(end.is_none(), "attempt {} outlived its timeout", n);
                }
            }
        }
        match result {
            Ok(n) => {
                prop_assert_eq!(n as usize, log.len());
                prop_assert!(plan[n as usize - 1].succeeds);
            }
            Err(err) => {
                prop_assert_eq!(err.attempts() as usize, log.len());
                prop_assert!(err.elapsed() <= max_elapsed);
                let last = &plan[(log.len() - 1) % plan.len()];
                match err.reason() {
                    GaveUp::Exhausted => prop_assert_eq!(log.len(), max_attempts as usize),
                    GaveUp::DeadlineExceeded => {}
                    other => prop_assert!(false, "unexpected reason {:?}", other),
                }
                if let Some(failed) = err.last_error().inner() {
                    prop_assert_eq!(*failed as usize, log.len());
                    prop_assert!(!last.succeeds);
                }
            }
        }
        prop_assert_eq!(timer.pending_sleeps(), 0);
    }
}
