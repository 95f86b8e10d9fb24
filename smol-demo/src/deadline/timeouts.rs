//! The experiment's attempt timeout: the fixed one, or an adaptive one learnt by the pipeline
//! from its own attempts (`--attempt-timeout adaptive`, `--sim` only), and what each cut.
//!
//! The adaptive timeout is the p95 of the pipeline's recent attempt latencies × 2, between
//! 20 ms and 1 s ([`Scenario::adaptive_timeout`]), learnt over the last 10 s once it has 100
//! attempts (its floor until then). Every attempt that ends on its own is recorded into it (an
//! attempt it cut as a lower bound); attempts cancelled (a lost hedge, the caller's deadline)
//! are not.
//!
//! A **false timeout** is an attempt cut by its own timeout although it would have answered
//! its caller in time: the simulation knows each attempt's service time, so it knows, when the
//! timeout cuts an attempt, whether its answer would have reached the caller by the caller's
//! deadline. It reports that fate to the adaptive timeout
//! ([`AdaptiveTimeout::record_late`]) and to the ledger, for the fixed timeout too, so both
//! are measured the same way.

use std::time::Duration;

use tailguard::adaptive_timeout::AdaptiveTimeout;
use tailguard::ConfigError;

use super::{Mode, ModeReport, Scenario};

/// Which attempt timeout the pipeline has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, clap::ValueEnum)]
pub enum TimeoutKind {
    /// The scenario's `attempt_timeout` (100 ms).
    #[default]
    Fixed,
    /// Learnt from the pipeline's own attempts: p95 × 2, within 20 ms..=1 s.
    Adaptive,
}

impl TimeoutKind {
    /// Both, fixed first.
    pub const ALL: [TimeoutKind; 2] = [TimeoutKind::Fixed, TimeoutKind::Adaptive];

    /// `fixed` or `adaptive`.
    pub fn name(self) -> &'static str {
        match self {
            TimeoutKind::Fixed => "fixed",
            TimeoutKind::Adaptive => "adaptive",
        }
    }

    /// The JSON key and table label of `mode` with this timeout: the mode's own name with the
    /// fixed timeout (as before the adaptive one existed), `<mode>_adaptive` with it.
    pub fn label(self, mode: Mode) -> &'static str {
        match (self, mode) {
            (TimeoutKind::Fixed, mode) => mode.name(),
            (TimeoutKind::Adaptive, Mode::Blind) => "blind_adaptive",
            (TimeoutKind::Adaptive, Mode::Aware) => "aware_adaptive",
        }
    }
}

/// The `--attempt-timeout` choice: one kind, or both side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, clap::ValueEnum)]
pub enum TimeoutChoice {
    /// The fixed attempt timeout only.
    #[default]
    Fixed,
    /// The adaptive one only.
    Adaptive,
    /// Both: the fixed rows, then the adaptive ones.
    Both,
}

impl TimeoutChoice {
    /// The kinds to run, in order.
    pub fn kinds(self) -> &'static [TimeoutKind] {
        match self {
            TimeoutChoice::Fixed => &TimeoutKind::ALL[..1],
            TimeoutChoice::Adaptive => &TimeoutKind::ALL[1..],
            TimeoutChoice::Both => &TimeoutKind::ALL,
        }
    }
}

impl Scenario {
    /// A fresh adaptive attempt timeout, as [`TimeoutKind::Adaptive`] describes.
    pub fn adaptive_timeout(&self) -> Result<AdaptiveTimeout, ConfigError> {
        AdaptiveTimeout::builder()
            .percentile(0.95)
            .factor(2.0)
            .floor(Duration::from_millis(20))
            .ceiling(Duration::from_secs(1))
            .min_samples(100)
            .window(Duration::from_secs(10), 10)
            .build()
    }
}

/// The adaptive attempt timeout against the fixed one, in one mode, in one sentence.
pub fn timeout_verdict(mode: Mode, fixed: &ModeReport, adaptive: &ModeReport) -> String {
    let pct = |v: Option<f64>| v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.1}%"));
    format!(
        "{}, the adaptive attempt timeout (learnt: {:.1} ms) cut {} of attempts, {} of them \
         false (fixed {:.0} ms: {}, {} false), and {:.1}% of the backend's work was wasted \
         (fixed: {:.1}%), with {:.2}% of calls answered in time (fixed: {:.2}%).",
        match mode {
            Mode::Blind => "Blind",
            Mode::Aware => "Aware",
        },
        adaptive.attempt_timeout_ms,
        pct(adaptive.timed_out_pct),
        pct(adaptive.false_timeout_pct),
        fixed.attempt_timeout_ms,
        pct(fixed.timed_out_pct),
        pct(fixed.false_timeout_pct),
        adaptive.wasted_pct,
        fixed.wasted_pct,
        adaptive.success_pct,
        fixed.success_pct,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_keep_the_fixed_rows_keys() {
        assert_eq!(TimeoutKind::Fixed.label(Mode::Blind), "blind");
        assert_eq!(TimeoutKind::Adaptive.label(Mode::Aware), "aware_adaptive");
        assert_eq!(TimeoutChoice::default().kinds(), [TimeoutKind::Fixed]);
        assert_eq!(TimeoutChoice::Both.kinds(), TimeoutKind::ALL);
        assert!(Scenario::default().adaptive_timeout().is_ok());
    }

    #[test]
    fn live_refuses_the_adaptive_timeout_naming_the_flag() {
        let live = super::super::live::LiveConfig {
            scenario: Scenario {
                timeout_kind: TimeoutKind::Adaptive,
                ..Scenario::default()
            },
            ..Default::default()
        };
        assert_eq!(live.validate().unwrap_err().field(), "attempt_timeout");
    }
}
