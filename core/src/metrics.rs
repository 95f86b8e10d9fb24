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
/// `tailguard_breaker_rejections_total{name, host}`: calls the breaker turned away.
pub const BREAKER_REJECTIONS: &str = "tailguard_breaker_rejections_total";
/// `tailguard_breaker_transitions_total{name, host, from, to}`: state changes.
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

/// `tailguard_breaker_state{name,host,state}`: 1 for the state a breaker is in, 0 for the
/// others (a gauge).
pub const BREAKER_STATE: &str = "tailguard_breaker_state";

/// The states a breaker reports, in the order of their codes (the `from`, `to` and `state`
/// labels).
#[cfg(feature = "metrics")]
const BREAKER_STATES: [&str; 5] = ["closed", "open", "half_open", "forced_open", "disabled"];

/// A breaker's metrics, registered when it is built: its rejections, its state gauge, and one
/// counter per kind of transition, registered the first time that transition happens (there are
/// 20 possible pairs; most never occur). After that first time, nothing allocates. The `host`
/// label is empty: a Rust breaker is not kept per host (the Python HTTP integrations' are).
pub(crate) struct BreakerMetrics {
    rejected: Counter,
    #[cfg(feature = "metrics")]
    name: ::metrics::SharedString,
    #[cfg(feature = "metrics")]
    transitions: [std::sync::OnceLock<::metrics::Counter>; 25],
    #[cfg(feature = "metrics")]
    state: [::metrics::Gauge; 5],
}

impl BreakerMetrics {
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn new(name: &PolicyName) -> Self {
        #[cfg(feature = "metrics")]
        let label = name.label();
        #[cfg(feature = "metrics")]
        let state = BREAKER_STATES.map(|state| {
            ::metrics::gauge!(BREAKER_STATE, "name" => label.clone(), "host" => "", "state" => state)
        });
        #[cfg(feature = "metrics")]
        state[0].set(1.0);
        BreakerMetrics {
            rejected: Counter {
                #[cfg(feature = "metrics")]
                handle: ::metrics::counter!(BREAKER_REJECTIONS, "name" => label.clone(), "host" => ""),
            },
            #[cfg(feature = "metrics")]
            name: label,
            #[cfg(feature = "metrics")]
            transitions: Default::default(),
            #[cfg(feature = "metrics")]
            state,
        }
    }

    /// Counts a call turned away.
    #[inline(always)]
    pub(crate) fn rejected(&self) {
        self.rejected.increment();
    }

    /// Counts a change of state (`from` and `to` are state codes, 0 to 4) and moves the gauge.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn transition(&self, from: u64, to: u64) {
        #[cfg(feature = "metrics")]
        {
            let (from, to) = (from.min(4) as usize, to.min(4) as usize);
            self.transitions[from * 5 + to]
                .get_or_init(|| {
                    ::metrics::counter!(
                        BREAKER_TRANSITIONS,
                        "name" => self.name.clone(),
                        "host" => "",
                        "from" => BREAKER_STATES[from],
                        "to" => BREAKER_STATES[to]
                    )
                })
                .increment(1);
            self.state[from].set(0.0);
            self.state[to].set(1.0);
        }
    }
}

impl std::fmt::Debug for BreakerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BreakerMetrics")
    }
}

#[cfg(test)]
mod tests {
    /// The constants are the names docs/metrics.md lists, and it lists no other.
    #[test]
    fn the_constants_are_the_documented_names() {
        let doc = include_str!("../../docs/metrics.md");
        let mut documented: Vec<&str> = doc
            .lines()
            .filter_map(|line| line.strip_prefix("| `tailguard_"))
            .filter_map(|rest| rest.split('`').next())
            .collect();
        documented.sort_unstable();
        let mut ours: Vec<String> = [
            super::RETRY_RETRIES,
            super::RETRY_BUDGET_REFUSALS,
            super::HEDGE_PRIMARIES,
            super::HEDGE_SENT,
            super::HEDGE_WON,
            super::HEDGE_BUDGET_REFUSALS,
            super::BREAKER_REJECTIONS,
            super::BREAKER_TRANSITIONS,
            super::BREAKER_STATE,
        ]
        .iter()
        .map(|name| name.trim_start_matches("tailguard_").to_owned())
        .collect();
        ours.sort_unstable();
        assert_eq!(documented, ours);
    }
}
