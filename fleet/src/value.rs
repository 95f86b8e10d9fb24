//! What every published value shares (SCHEMA.md, "Values" and "Expiry"): the version first,
//! `:`-separated decimal fields with no leading `+`, and when a value is fresh.

/// The format's version, the first field of every value.
pub(crate) const VERSION: &str = "1";

/// The `N` fields after the version, or `None` for a value of another version or count.
pub(crate) fn fields<const N: usize>(value: &str) -> Option<[&str; N]> {
    let mut parts = value.split(':');
    if parts.next()? != VERSION {
        return None;
    }
    let mut fields = [""; N];
    for field in &mut fields {
        *field = parts.next()?;
    }
    parts.next().is_none().then_some(fields)
}

/// An unsigned field (`u64::from_str` also takes a leading `+`; the schema does not).
pub(crate) fn unsigned(field: &str) -> Option<u64> {
    (!field.starts_with('+')).then(|| field.parse().ok())?
}

/// A signed field, likewise without a leading `+`.
pub(crate) fn signed(field: &str) -> Option<i64> {
    (!field.starts_with('+')).then(|| field.parse().ok())?
}

/// Whether a value written at `at_ms` still counts at `now_ms`: at most `stale_after_ms` old,
/// and no more than that ahead either (a value from a writer whose clock is far ahead, or a
/// corrupt `at_ms`, would otherwise count, and never age out, for as long as the key lives).
pub(crate) fn is_fresh(at_ms: u64, now_ms: u64, stale_after_ms: u64) -> bool {
    now_ms.abs_diff(at_ms) <= stale_after_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_counted_and_signs_refused() {
        assert_eq!(fields::<2>("1:5:-7"), Some(["5", "-7"]));
        for value in ["", "2:5:7", "1:5", "1:5:7:9"] {
            assert_eq!(fields::<2>(value), None, "{value:?}");
        }
        assert_eq!(
            (unsigned("5"), unsigned("+5"), unsigned("-5")),
            (Some(5), None, None)
        );
        assert_eq!(
            (signed("-5"), signed("+5"), signed("x")),
            (Some(-5), None, None)
        );
    }

    #[test]
    fn a_value_too_far_ahead_is_as_stale_as_one_too_old() {
        assert!(is_fresh(10_000, 13_000, 3_000));
        assert!(is_fresh(13_000, 10_000, 3_000));
        assert!(!is_fresh(10_000, 13_001, 3_000));
        assert!(!is_fresh(13_001, 10_000, 3_000));
        assert!(!is_fresh(u64::MAX, 10_000, 3_000));
    }
}
