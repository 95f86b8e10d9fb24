//! Milliseconds, the unit of every table, sentence and `*_ms` JSON field the demo prints: one
//! conversion from a [`Duration`], and the two forms it is printed in.

use std::time::Duration;

/// `d` in milliseconds.
///
/// ```
/// use std::time::Duration;
/// use tailguard_demo::ms;
///
/// assert_eq!(ms::of(Duration::from_micros(2500)), 2.5);
/// ```
pub fn of(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `d` in milliseconds rounded to the microsecond, for a value reported as it was measured.
///
/// ```
/// use std::time::Duration;
/// use tailguard_demo::ms;
///
/// assert_eq!(ms::rounded(Duration::from_nanos(12_345_678)), 12.346);
/// ```
pub fn rounded(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// `d` for a sentence or a table cell: `503 ms`, and to the tenth below 10 ms: `0.4 ms`.
///
/// ```
/// use std::time::Duration;
/// use tailguard_demo::ms;
///
/// assert_eq!(ms::text(Duration::from_millis(503)), "503 ms");
/// assert_eq!(ms::text(Duration::from_micros(400)), "0.4 ms");
/// ```
pub fn text(d: Duration) -> String {
    let ms = of(d);
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_short() {
        assert_eq!(text(Duration::from_micros(300)), "0.3 ms");
        assert_eq!(text(Duration::from_micros(9_940)), "9.9 ms");
        assert_eq!(text(Duration::from_millis(10)), "10 ms");
        assert_eq!(text(Duration::from_millis(501)), "501 ms");
    }

    #[test]
    fn rounded_keeps_three_decimals() {
        assert_eq!(rounded(Duration::from_nanos(1_234_499)), 1.234);
        assert_eq!(rounded(Duration::from_nanos(1_234_500)), 1.235);
        assert_eq!(rounded(Duration::from_secs(2)), 2000.0);
    }
}
