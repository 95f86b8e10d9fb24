//! Property tests: histogram quantiles stay within the documented error of exact quantiles.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use tailguard::latency::{LatencyHistogram, RollingHistogram, MAX_RELATIVE_ERROR};

/// The exact sample quantile under the documented definition: rank `ceil(p * n)`, at least 1.
fn exact_quantile(sorted: &[u64], p: f64) -> u64 {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn within_bound(got: u64, exact: u64) -> bool {
    (got as f64 - exact as f64).abs() <= exact as f64 * MAX_RELATIVE_ERROR
}

/// Latencies spread over many orders of magnitude: nanoseconds to hours.
fn latencies() -> impl Strategy<Value = Vec<u64>> {
    prop::collection::vec(
        prop_oneof![
            0u64..200,
            0u64..10_000_000,
            (0u32..63).prop_flat_map(|e| (1u64 << e)..=(1u64 << e).saturating_mul(2)),
        ],
        1..400,
    )
}

proptest! {
    #[test]
    fn quantiles_are_within_the_error_bound(
        samples in latencies(),
        ps in prop::collection::vec(0.0f64..=1.0, 1..20),
    ) {
        let histogram = LatencyHistogram::new();
        for &s in &samples {
            histogram.record_nanos(s);
        }
        let mut sorted = samples.clone();
        sorted.sort_unstable();
        for p in ps.into_iter().chain([0.0, 0.5, 0.99, 0.999, 1.0]) {
            let got = histogram.quantile(p).unwrap().as_nanos() as u64;
            let exact = exact_quantile(&sorted, p);
            prop_assert!(within_bound(got, exact), "p={p}: got {got}, exact {exact}");
        }
        prop_assert_eq!(histogram.count(), samples.len() as u64);
        prop_assert_eq!(histogram.min().unwrap().as_nanos() as u64, sorted[0]);
        prop_assert_eq!(histogram.max().unwrap().as_nanos() as u64, *sorted.last().unwrap());
        let sum: u128 = samples.iter().map(|&s| u128::from(s)).sum();
        let exact_mean = (sum / samples.len() as u128) as f64;
        let mean = histogram.mean().unwrap().as_nanos() as f64;
        prop_assert!(
            (mean - exact_mean).abs() <= exact_mean * MAX_RELATIVE_ERROR + 1.0,
            "mean {mean} vs exact {exact_mean}"
        );
    }

    #[test]
    fn merging_equals_recording_everything_in_one(
        a in latencies(),
        b in latencies(),
        p in 0.0f64..=1.0,
    ) {
        let left = LatencyHistogram::new();
        let right = LatencyHistogram::new();
        let both = LatencyHistogram::new();
        a.iter().for_each(|&s| { left.record_nanos(s); both.record_nanos(s); });
        b.iter().for_each(|&s| { right.record_nanos(s); both.record_nanos(s); });
        left.merge(&right);
        prop_assert_eq!(left.count(), both.count());
        prop_assert_eq!(left.quantile(p), both.quantile(p));
        prop_assert_eq!(left.min(), both.min());
        prop_assert_eq!(left.max(), both.max());
    }

    #[test]
    fn rolling_window_matches_the_samples_still_inside_it(
        // (offset in ms from the start, latency in µs), in time order
        mut events in prop::collection::vec((0u64..5_000, 1u64..1_000_000), 1..200),
        p in 0.0f64..=1.0,
    ) {
        events.sort_by_key(|&(at, _)| at);
        let t0 = Instant::now();
        let slot_ms = 100;
        let slots = 10u64;
        let rolling =
            RollingHistogram::new(Duration::from_millis(slot_ms * slots), slots as usize)
                .unwrap();
        prop_assert_eq!(rolling.count_at(t0), 0); // slices count from t0
        for &(at, micros) in &events {
            rolling.record_at(t0 + Duration::from_millis(at), Duration::from_micros(micros));
        }
        let now_ms = events.last().unwrap().0;
        let now_tick = now_ms / slot_ms;
        let mut inside: Vec<u64> = events
            .iter()
            .filter(|&&(at, _)| at / slot_ms + slots > now_tick)
            .map(|&(_, micros)| micros * 1_000)
            .collect();
        inside.sort_unstable();
        let now = t0 + Duration::from_millis(now_ms);
        prop_assert_eq!(rolling.count_at(now), inside.len() as u64);
        let got = rolling.quantile_at(now, p).unwrap().as_nanos() as u64;
        let exact = exact_quantile(&inside, p);
        prop_assert!(within_bound(got, exact), "p={p}: got {got}, exact {exact}");
    }
}
