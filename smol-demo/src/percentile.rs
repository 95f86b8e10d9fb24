//! When a percentile is worth reporting: the rule every experiment's table, JSON and plot follow.
//!
//! **A percentile `q` is reported only when at least [`BEYOND`] (10) samples lie beyond it**:
//! `count × (1 − q) ≥ 10`, so p50 needs 20 samples, p90 100, p99 1,000 and p99.9 10,000. With
//! fewer, the "percentile" is one of the few largest samples (with 750, "p99.9" is the maximum)
//! and moves a lot from run to run. Unsupported percentiles are printed as `n/a (750 samples)`
//! and written to JSON as `null` next to the sample count; plots stop their lines at the
//! deepest supported percentile.

use std::time::Duration;

use tailguard::latency::LatencyHistogram;

/// Samples needed beyond a percentile for it to be reported.
pub const BEYOND: u64 = 10;

/// The fewest samples that support percentile `q` (in (0, 1)): `⌈10 / (1 − q)⌉`.
///
/// ```
/// use tailguard_demo::percentile::min_samples;
/// assert_eq!(min_samples(0.5), 20);
/// assert_eq!(min_samples(0.99), 1_000);
/// assert_eq!(min_samples(0.999), 10_000);
/// ```
pub fn min_samples(q: f64) -> u64 {
    if q <= 0.0 {
        return 1;
    }
    // Rounded first: 10 / (1 - 0.99) is 1000.0000000000009 in floating point.
    let exact = BEYOND as f64 / (1.0 - q);
    let rounded = exact.round();
    if (exact - rounded).abs() < 1e-6 {
        rounded as u64
    } else {
        exact.ceil() as u64
    }
}

/// Whether `count` samples support percentile `q`.
pub fn supported(q: f64, count: u64) -> bool {
    count >= min_samples(q)
}

/// The deepest percentile `count` samples support, in "nines" (`-log10(1 − q)`: 2 is p99);
/// 0 when they support none.
pub fn deepest_nines(count: u64) -> f64 {
    if count < BEYOND {
        0.0
    } else {
        (count as f64 / BEYOND as f64).log10()
    }
}

/// Percentile `q` of `histogram` in milliseconds, if its samples support it.
pub fn of_ms(histogram: &LatencyHistogram, q: f64) -> Option<f64> {
    if supported(q, histogram.count()) {
        histogram.quantile(q).map(crate::ms::of)
    } else {
        None
    }
}

/// Percentile `q` of sorted samples (the sample of rank `⌈q·n⌉`), if they support it.
pub fn of_sorted(sorted: &[Duration], q: f64) -> Option<Duration> {
    if sorted.is_empty() || !supported(q, sorted.len() as u64) {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// The label of percentile `q`: `p50`, `p99`, `p99.9`.
pub fn label(q: f64) -> String {
    let text = format!("{:.4}", q * 100.0);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("p{text}")
}

/// The JSON key of percentile `q` in milliseconds: `p50_ms`, `p99_ms`, `p999_ms`.
pub fn json_key(q: f64) -> String {
    format!("{}_ms", label(q).replace('.', ""))
}

/// A table cell: the value with `decimals` decimals, or `n/a (750 samples)`.
pub fn cell(value: Option<f64>, count: u64, decimals: usize) -> String {
    match value {
        Some(v) => format!("{v:.decimals$}"),
        None => not_available(count),
    }
}

/// What an unsupported percentile prints as.
pub fn not_available(count: u64) -> String {
    format!("n/a ({count} samples)")
}

/// A JSON number rounded to the microsecond (no float noise), or `null`.
pub fn json_ms(value: Option<f64>) -> serde_json::Value {
    match value {
        Some(v) => serde_json::json!((v * 1000.0).round() / 1000.0),
        None => serde_json::Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_percentile_needs_ten_samples_beyond_it() {
        assert_eq!(min_samples(0.9), 100);
        assert_eq!(min_samples(0.95), 200);
        assert!(!supported(0.999, 750));
        assert!(supported(0.99, 1000));
        assert!(!supported(0.99, 999));
        assert!(supported(0.9, 750));
        assert_eq!(min_samples(0.0), 1);
    }

    #[test]
    fn unsupported_percentiles_are_none() {
        let h = LatencyHistogram::new();
        for i in 1..=750u64 {
            h.record(Duration::from_micros(i * 10));
        }
        assert!(of_ms(&h, 0.9).is_some());
        assert_eq!(of_ms(&h, 0.99), None);
        assert_eq!(of_ms(&h, 0.999), None);
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(of_sorted(&sorted, 0.9), Some(Duration::from_millis(90)));
        assert_eq!(of_sorted(&sorted, 0.99), None);
        assert_eq!(of_sorted(&[], 0.5), None);
    }

    #[test]
    fn labels_keys_and_cells() {
        assert_eq!(label(0.5), "p50");
        assert_eq!(label(0.999), "p99.9");
        assert_eq!(json_key(0.999), "p999_ms");
        assert_eq!(json_key(0.9), "p90_ms");
        assert_eq!(cell(Some(1.234), 10, 1), "1.2");
        assert_eq!(cell(None, 750, 1), "n/a (750 samples)");
        assert_eq!(json_ms(Some(12.976602999999999)), serde_json::json!(12.977));
        assert_eq!(json_ms(None), serde_json::Value::Null);
        assert!((deepest_nines(1000) - 2.0).abs() < 1e-9);
        assert_eq!(deepest_nines(5), 0.0);
    }
}
