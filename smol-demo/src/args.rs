//! Parsing of command-line values shared by the subcommands.

use std::time::Duration;

use tailguard::ConfigError;

/// The exit status of a usage error (a flag refused), as clap uses for its own.
pub const USAGE: u8 = 2;

/// `error`, which names a configuration field, reworded to name the command-line flag that sets
/// it: `flags` maps field names (as [`ConfigError::field`] spells them) to flags. A field not in
/// `flags` is named as the error names it.
///
/// ```
/// use tailguard::ConfigError;
/// use tailguard_demo::args::flag_error;
///
/// let error = ConfigError::new("budget_ratio", "must be in (0, 1], got -1");
/// assert_eq!(
///     flag_error(&error, &[("budget_ratio", "--budget")]),
///     "invalid value for --budget: must be in (0, 1], got -1"
/// );
/// ```
pub fn flag_error(error: &ConfigError, flags: &[(&str, &str)]) -> String {
    match flags.iter().find(|(field, _)| *field == error.field()) {
        Some((_, flag)) => format!("invalid value for {flag}: {}", error.message()),
        None => error.to_string(),
    }
}

/// Parses a duration, or a bare number of milliseconds: for the old `--…-ms` flags that took
/// one, so that both `10` and `10ms` work.
///
/// ```
/// use std::time::Duration;
/// use tailguard_demo::args::parse_millis_or_duration;
///
/// assert_eq!(parse_millis_or_duration("10"), Ok(Duration::from_millis(10)));
/// assert_eq!(parse_millis_or_duration("2.5"), Ok(Duration::from_micros(2500)));
/// assert_eq!(parse_millis_or_duration("1s"), Ok(Duration::from_secs(1)));
/// assert!(parse_millis_or_duration("-1").is_err());
/// ```
pub fn parse_millis_or_duration(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<f64>() {
        Ok(ms) => Duration::try_from_secs_f64(ms / 1e3)
            .map_err(|_| format!("`{text}` is not a duration ≥ 0")),
        Err(_) => parse_duration(text),
    }
}

/// Parses a duration written as a number and a unit: `250ms`, `2s`, `1.5s`, `1m`, `30us`.
///
/// ```
/// use std::time::Duration;
/// use tailguard_demo::args::parse_duration;
///
/// assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
/// assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
/// assert!(parse_duration("fast").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| {
        format!("`{text}` is not a duration: write a number and a unit, like 250ms, 2s or 1m")
    })?;
    let seconds = match unit.trim() {
        "us" | "µs" => value / 1e6,
        "ms" => value / 1e3,
        "s" => value,
        "m" | "min" => value * 60.0,
        "" => {
            return Err(format!(
                "`{text}` has no unit: write 250ms, 2s or 1m (units: us, ms, s, m)"
            ))
        }
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}`: use us, ms, s or m"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{text}` is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_duration("30us"), Ok(Duration::from_micros(30)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("2").unwrap_err().contains("no unit"));
        assert!(parse_duration("2h").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1e999s").is_err());
    }
}
