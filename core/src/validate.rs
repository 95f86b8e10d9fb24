//! The checks every builder shares, so that the same rule is worded the same way everywhere.
//!
//! Each returns the accepted value or a [`ConfigError`] naming `field` (spelled as the builder
//! method that sets it) with a message of the form "must be …, got …". `why`, when not empty,
//! says in a few words why the rule exists and is shown in parentheses after the rule.

use std::fmt::Display;
use std::ops::RangeInclusive;
use std::time::Duration;

use crate::ConfigError;

/// A float for an error message: as `Display` shows it, except that very large or very small
/// values get an exponent (`1e300`, not 301 digits).
pub(crate) struct Float(pub(crate) f64);

impl std::fmt::Display for Float {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let magnitude = self.0.abs();
        if magnitude != 0.0 && !(1e-6..1e16).contains(&magnitude) {
            write!(f, "{:e}", self.0)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// "must be {rule} ({why}), got {got}".
fn refuse(field: &'static str, rule: &str, why: &str, got: impl Display) -> ConfigError {
    let message = if why.is_empty() {
        format!("must be {rule}, got {got}")
    } else {
        format!("must be {rule} ({why}), got {got}")
    };
    ConfigError::new(field, message)
}

/// A duration greater than zero.
pub(crate) fn positive_duration(
    field: &'static str,
    duration: Duration,
    why: &str,
) -> Result<Duration, ConfigError> {
    if duration.is_zero() {
        return Err(refuse(field, "greater than zero", why, "0ns"));
    }
    Ok(duration)
}

/// A duration that fits in `u64` nanoseconds (about 584 years), returned in nanoseconds.
pub(crate) fn nanos(field: &'static str, duration: Duration) -> Result<u64, ConfigError> {
    u64::try_from(duration.as_nanos()).map_err(|_| {
        refuse(
            field,
            "at most 584 years (u64::MAX nanoseconds)",
            "",
            format_args!("{duration:?}"),
        )
    })
}

/// A rate or ratio in `(0, 1]`. NaN is refused.
pub(crate) fn rate(field: &'static str, rate: f64, why: &str) -> Result<f64, ConfigError> {
    if rate > 0.0 && rate <= 1.0 {
        Ok(rate)
    } else {
        Err(refuse(field, "in (0, 1]", why, Float(rate)))
    }
}

/// A growth factor: a finite number ≥ 1.0.
pub(crate) fn factor(field: &'static str, factor: f64) -> Result<f64, ConfigError> {
    if factor.is_finite() && factor >= 1.0 {
        Ok(factor)
    } else {
        Err(refuse(field, "a finite number ≥ 1.0", "", Float(factor)))
    }
}

/// A count of at least 1.
pub(crate) fn at_least_one<N>(field: &'static str, count: N, why: &str) -> Result<N, ConfigError>
where
    N: Copy + Into<u64> + Display,
{
    if count.into() >= 1 {
        Ok(count)
    } else {
        Err(refuse(field, "at least 1", why, count))
    }
}

/// A count within `range`.
pub(crate) fn count_in<N>(
    field: &'static str,
    count: N,
    range: RangeInclusive<u64>,
    why: &str,
) -> Result<N, ConfigError>
where
    N: Copy + TryInto<u64> + Display,
{
    match count.try_into() {
        Ok(n) if range.contains(&n) => Ok(count),
        _ => Err(refuse(
            field,
            &format!("in {}..={}", range.start(), range.end()),
            why,
            count,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message<T: std::fmt::Debug>(result: Result<T, ConfigError>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn messages_name_the_field_the_rule_and_the_value() {
        assert_eq!(
            message(positive_duration("window", Duration::ZERO, "")),
            "invalid `window`: must be greater than zero, got 0ns"
        );
        assert_eq!(
            message(positive_duration(
                "max_elapsed",
                Duration::ZERO,
                "no attempt could start"
            )),
            "invalid `max_elapsed`: must be greater than zero (no attempt could start), got 0ns"
        );
        assert_eq!(
            message(nanos("max_delay", Duration::MAX)),
            format!(
                "invalid `max_delay`: must be at most 584 years (u64::MAX nanoseconds), got {:?}",
                Duration::MAX
            )
        );
        assert_eq!(
            message(rate("failure_rate", 1.5, "")),
            "invalid `failure_rate`: must be in (0, 1], got 1.5"
        );
        assert_eq!(
            message(rate("failure_rate", 1e300, "")),
            "invalid `failure_rate`: must be in (0, 1], got 1e300"
        );
        assert_eq!(
            message(factor("factor", -1e-300)),
            "invalid `factor`: must be a finite number ≥ 1.0, got -1e-300"
        );
        assert_eq!(Float(0.0).to_string(), "0");
        assert_eq!(Float(f64::NAN).to_string(), "NaN");
        assert_eq!(Float(f64::INFINITY).to_string(), "inf");
        assert_eq!(
            message(factor("factor", 0.5)),
            "invalid `factor`: must be a finite number ≥ 1.0, got 0.5"
        );
        assert_eq!(
            message(at_least_one(
                "max_attempts",
                0u32,
                "the first attempt counts"
            )),
            "invalid `max_attempts`: must be at least 1 (the first attempt counts), got 0"
        );
        assert_eq!(
            message(count_in("slots", 65usize, 1..=64, "")),
            "invalid `slots`: must be in 1..=64, got 65"
        );
    }

    #[test]
    fn accepted_values_come_back() {
        assert_eq!(
            positive_duration("d", Duration::from_nanos(1), ""),
            Ok(Duration::from_nanos(1))
        );
        assert_eq!(nanos("d", Duration::from_secs(1)), Ok(1_000_000_000));
        assert_eq!(nanos("d", Duration::from_nanos(u64::MAX)), Ok(u64::MAX));
        assert_eq!(rate("r", 1.0, ""), Ok(1.0));
        assert_eq!(factor("f", 1.0), Ok(1.0));
        assert_eq!(at_least_one("n", 1u64, ""), Ok(1));
        assert_eq!(count_in("n", 64usize, 1..=64, ""), Ok(64));
    }

    #[test]
    fn edge_values_are_refused() {
        for r in [
            0.0,
            -0.0,
            -1.0,
            1.000_001,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            assert!(rate("r", r, "").is_err(), "{r}");
        }
        for f in [0.999, 0.0, -2.0, f64::NAN, f64::INFINITY] {
            assert!(factor("f", f).is_err(), "{f}");
        }
        assert!(count_in("n", 0u32, 1..=32, "").is_err());
        assert!(count_in("n", usize::MAX, 1..=64, "").is_err());
        assert!(nanos(
            "d",
            Duration::from_nanos(u64::MAX) + Duration::from_nanos(1)
        )
        .is_err());
    }
}
