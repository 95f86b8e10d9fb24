//! Errors shared by every builder in the crate.

use std::borrow::Cow;
use std::fmt;

/// A configuration value was refused when a policy was built.
///
/// Every builder in tailguard validates what it is given and returns this error instead of
/// panicking or silently clamping. It names the offending field and says what range is accepted,
/// so the message alone tells you what to change.
///
/// ```
/// use tailguard::ConfigError;
///
/// let err = ConfigError::new("factor", "must be a finite number ≥ 1.0, got NaN");
/// assert_eq!(err.field(), "factor");
/// assert_eq!(err.to_string(), "invalid `factor`: must be a finite number ≥ 1.0, got NaN");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    field: &'static str,
    message: Cow<'static, str>,
}

impl ConfigError {
    /// An error about `field`; `message` says what is accepted and what was given.
    pub fn new(field: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        ConfigError {
            field,
            message: message.into(),
        }
    }

    /// The name of the refused field, as spelled by the builder method that sets it. A method
    /// that takes several values names the one refused as `method.parameter`, e.g.
    /// `time_window.buckets`.
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// What is wrong with the value and what range is accepted.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid `{}`: {}", self.field, self.message)
    }
}

impl std::error::Error for ConfigError {}
