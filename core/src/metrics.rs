//! The names of the metrics every policy emits through the `metrics` facade (with the
//! `metrics` feature), as constants; the table below is the one reference.
//!
//! ```
//! # #[cfg(feature = "metrics")] {
//! use metrics_util::debugging::DebuggingRecorder;
//! use tailguard::breaker::CircuitBreaker;
//! use tailguard::time::ManualTimer;
//!
//! let recorder = DebuggingRecorder::new();
//! let snapshotter = recorder.snapshotter();
//! // Install the recorder before building policies: they register their counters when built.
//! let breaker = metrics::with_local_recorder(&recorder, || {
//!     CircuitBreaker::builder().name("payments").build_with(ManualTimer::new())
//! })?;
//! breaker.force_open();
//! assert!(breaker.try_acquire().is_err());
//! let rejections = snapshotter
//!     .snapshot()
//!     .into_vec()
//!     .into_iter()
//!     .find(|(key, ..)| key.key().name() == tailguard::metrics::BREAKER_REJECTIONS)
//!     .map(|(.., value)| value);
//! assert_eq!(rejections, Some(metrics_util::debugging::DebugValue::Counter(1)));
//! # }
//! # Ok::<(), tailguard::ConfigError>(())
//! ```
//!
#![doc = include_str!("../../docs/metrics.md")]

/// `tailguard_retry_retries_total{name}`: retries scheduled.
pub const RETRY_RETRIES: &str = "tailguard_retry_retries_total";
/// `tailguard_retry_budget_refusals_total{name}`: retries the budget refused.
pub const RETRY_BUDGET_REFUSALS: &str = "tailguard_retry_budget_refusals_total";
/// `tailguard_hedge_primaries_total{name}`: hedged calls started.
pub const HEDGE_PRIMARIES: &str = "tailguard_hedge_primaries_total";
/// `tailguard_hedge_sent_total{name}`: hedges sent.
pub const HEDGE_SENT: &str = "tailguard_hedge_sent_total";
/// `tailguard_hedge_won_total{name}`: calls a hedge won.
pub const HEDGE_WON: &str = "tailguard_hedge_won_total";
/// `tailguard_hedge_budget_refusals_total{name}`: hedges the budget refused.
pub const HEDGE_BUDGET_REFUSALS: &str = "tailguard_hedge_budget_refusals_total";
/// `tailguard_breaker_rejections_total{name}`: calls the breaker turned away.
pub const BREAKER_REJECTIONS: &str = "tailguard_breaker_rejections_total";
/// `tailguard_breaker_transitions_total{name, from, to}`: state changes.
pub const BREAKER_TRANSITIONS: &str = "tailguard_breaker_transitions_total";

/// The `name` label of a policy built without a name.
pub const DEFAULT_NAME: &str = "default";

/// A counter handle registered when its policy is built: one relaxed atomic add per event with
/// the feature on, nothing at all (a zero-sized type) with it off.
#[derive(Clone)]
pub(crate) struct Counter {
    #[cfg(feature = "metrics")]
    handle: ::metrics::Counter,
}

impl Counter {
    /// Registers `metric{name}` with the recorder installed now.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn new(metric: &'static str, name: &PolicyName) -> Self {
        Counter {
            #[cfg(feature = "metrics")]
            handle: ::metrics::counter!(metric, "name" => name.label()),
        }
    }

    /// Counts one event.
    #[inline(always)]
    pub(crate) fn increment(&self) {
        #[cfg(feature = "metrics")]
        self.handle.increment(1);
    }
}

impl std::fmt::Debug for Counter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Counter")
    }
}

/// A policy's name, the `name` label of its metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PolicyName(Option<std::sync::Arc<str>>);

impl PolicyName {
    /// No name given: [`DEFAULT_NAME`].
    pub(crate) const DEFAULT: PolicyName = PolicyName(None);

    pub(crate) fn new(name: &str) -> Self {
        PolicyName(Some(name.into()))
    }

    /// The name as given, or [`DEFAULT_NAME`].
    pub(crate) fn as_str(&self) -> &str {
        self.0.as_deref().unwrap_or(DEFAULT_NAME)
    }

    #[cfg(feature = "metrics")]
    pub(crate) fn label(&self) -> ::metrics::SharedString {
        match &self.0 {
            Some(name) => ::metrics::SharedString::from(std::sync::Arc::clone(name)),
            None => ::metrics::SharedString::const_str(DEFAULT_NAME),
        }
    }
}

/// Counts a breaker transition (rare, behind the breaker's lock: looked up when it happens).
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn breaker_transition(name: &PolicyName, from: &'static str, to: &'static str) {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(BREAKER_TRANSITIONS, "name" => name.label(), "from" => from, "to" => to)
        .increment(1);
}
