//! What can stop a live experiment (`tail-at-scale`, `herd`, the tour) before it measures
//! anything.

use std::fmt;
use std::io;

use tailguard::ConfigError;

/// Why a live experiment could not run.
#[derive(Debug)]
pub enum ExperimentError {
    /// A setting is out of range; the error names it.
    Config(ConfigError),
    /// A socket could not be bound, or a file could not be written.
    Io(io::Error),
    /// The plot could not be drawn.
    Plot(String),
}

impl fmt::Display for ExperimentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExperimentError::Config(error) => write!(f, "{error}"),
            ExperimentError::Io(error) => write!(
                f,
                "{error} (the experiments bind free ports on 127.0.0.1 and write to the \
                 temporary directory or --out: check that both are allowed)"
            ),
            ExperimentError::Plot(error) => write!(f, "drawing the plot failed: {error}"),
        }
    }
}

impl std::error::Error for ExperimentError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ExperimentError::Config(error) => Some(error),
            ExperimentError::Io(error) => Some(error),
            ExperimentError::Plot(_) => None,
        }
    }
}

impl From<ConfigError> for ExperimentError {
    fn from(error: ConfigError) -> Self {
        ExperimentError::Config(error)
    }
}

impl From<io::Error> for ExperimentError {
    fn from(error: io::Error) -> Self {
        ExperimentError::Io(error)
    }
}
