//! The adaptive delay's cache, in virtual time: once per slice of the window when it was
//! computed from enough samples, and sooner while it was not.

use std::time::{Duration, Instant};

use super::{AttemptOutcome, Hedge, HedgeState};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `n` calls starting at `at`, each primary answering after `latency`.
fn calls(hedge: &Hedge, at: Instant, n: usize, latency: Duration) {
    for _ in 0..n {
        let mut call = HedgeState::new(hedge);
        call.begin_at(at);
        call.attempt_done_at(at + latency, 1, AttemptOutcome::Succeeded);
    }
}

#[test]
fn a_first_delay_from_few_samples_is_recomputed_as_they_double() {
    // p90 after 10 samples, in a window of 10 slices of 1 s.
    let hedge = Hedge::builder()
        .adaptive_delay(0.9)
        .min_samples(10)
        .delay_floor(Duration::ZERO)
        .window(Duration::from_secs(10), 10)
        .unbudgeted()
        .build()
        .unwrap();
    let t0 = Instant::now();
    calls(&hedge, t0, 10, ms(1));
    let first = hedge.delay_at(t0 + ms(10)).unwrap();
    assert!(first <= ms(2), "{first:?}");
    // Within the same slice, 30 slower calls: 40 primaries, four times the 10 the delay was
    // computed from. The first delay was too rough to keep for the rest of the slice.
    calls(&hedge, t0 + ms(20), 30, ms(10));
    let second = hedge.delay_at(t0 + ms(40)).unwrap();
    assert!(second >= ms(9), "recomputed from 40 samples: {second:?}");
    // 10 samples beyond p90 make it settled: 100 samples in the window, kept for the slice.
    calls(&hedge, t0 + ms(50), 60, ms(10));
    let settled = hedge.delay_at(t0 + ms(120)).unwrap();
    calls(&hedge, t0 + ms(130), 900, ms(1));
    assert_eq!(
        hedge.delay_at(t0 + ms(700)),
        Some(settled),
        "one scan per slice"
    );
    // The next slice computes it afresh: 910 fast calls of 1,000, p90 back at 1 ms.
    let next = hedge.delay_at(t0 + ms(1_100)).unwrap();
    assert!(next <= ms(2), "{next:?}");
}
