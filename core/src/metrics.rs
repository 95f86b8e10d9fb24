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

/// `tailguard_retry_retries_total{name}`: retries started (attempts after the first).
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
/// `tailguard_breaker_state{name, host, state}` (a gauge): 1 for the breaker's state, 0 for the
/// others.
pub const BREAKER_STATE: &str = "tailguard_breaker_state";
/// `tailguard_bulkhead_rejections_total{name, reason}`: calls a bulkhead refused (`reason`:
/// `full` or `deadline`).
pub const BULKHEAD_REJECTIONS: &str = "tailguard_bulkhead_rejections_total";
/// `tailguard_rate_rejections_total{name}`: calls a rate limiter refused.
pub const RATE_REJECTIONS: &str = "tailguard_rate_rejections_total";
/// `tailguard_limit_rejections_total{name, reason}`: calls an adaptive limiter refused
/// (`reason`: `limit`, `shed` or `probe`).
pub const LIMIT_REJECTIONS: &str = "tailguard_limit_rejections_total";
/// `tailguard_limit_limit{name}` (a gauge): an adaptive limiter's current limit.
pub const LIMIT_LIMIT: &str = "tailguard_limit_limit";
/// `tailguard_throttle_rejections_total{name}`: calls a throttle refused.
pub const THROTTLE_REJECTIONS: &str = "tailguard_throttle_rejections_total";
/// `tailguard_pipeline_deadline_refusals_total{name, reason}`: attempts a pipeline did not
/// start for the deadline (`reason`: `passed` or `too_short`).
pub const PIPELINE_DEADLINE_REFUSALS: &str = "tailguard_pipeline_deadline_refusals_total";

/// Every metric above, in the order of the table.
pub const ALL: [&str; 15] = [
    RETRY_RETRIES,
    RETRY_BUDGET_REFUSALS,
    HEDGE_PRIMARIES,
    HEDGE_SENT,
    HEDGE_WON,
    HEDGE_BUDGET_REFUSALS,
    BREAKER_TRANSITIONS,
    BREAKER_REJECTIONS,
    BREAKER_STATE,
    BULKHEAD_REJECTIONS,
    RATE_REJECTIONS,
    LIMIT_REJECTIONS,
    LIMIT_LIMIT,
    THROTTLE_REJECTIONS,
    PIPELINE_DEADLINE_REFUSALS,
];

/// The `name` label of a policy built without a name.
pub const DEFAULT_NAME: &str = "default";

/// The `host` label of a breaker that is not kept per host: every Rust breaker (Python's HTTP
/// integrations keep one per host and label it).
pub const NO_HOST: &str = "";

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

    /// Registers a breaker's `metric{name, host=""}` with the recorder installed now.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn breaker(metric: &'static str, name: &PolicyName) -> Self {
        Counter {
            #[cfg(feature = "metrics")]
            handle: ::metrics::counter!(metric, "name" => name.label(), "host" => NO_HOST),
        }
    }

    /// Registers `metric{name, reason}` with the recorder installed now.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn with_reason(
        metric: &'static str,
        name: &PolicyName,
        reason: &'static str,
    ) -> Self {
        Counter {
            #[cfg(feature = "metrics")]
            handle: ::metrics::counter!(metric, "name" => name.label(), "reason" => reason),
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

/// A gauge handle registered when its policy is built (`metric{name}`); nothing with the
/// feature off.
#[derive(Clone)]
pub(crate) struct Gauge {
    #[cfg(feature = "metrics")]
    handle: ::metrics::Gauge,
}

impl Gauge {
    /// Registers `metric{name}` with the recorder installed now.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn new(metric: &'static str, name: &PolicyName) -> Self {
        Gauge {
            #[cfg(feature = "metrics")]
            handle: ::metrics::gauge!(metric, "name" => name.label()),
        }
    }

    /// Sets the gauge.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn set(&self, value: f64) {
        #[cfg(feature = "metrics")]
        self.handle.set(value);
    }
}

impl std::fmt::Debug for Gauge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gauge")
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

/// A breaker's `tailguard_breaker_transitions_total` counters, one per transition the breaker
/// can make (15 of the 20 pairs of different states), registered when it is built: a
/// transition is then an atomic add, no lookup and no allocation. Nothing at all with the
/// feature off.
pub(crate) struct TransitionCounters {
    #[cfg(feature = "metrics")]
    table: [[::metrics::Counter; 5]; 5],
}

impl TransitionCounters {
    /// Registers the transition counters of breaker `name`.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn new(name: &PolicyName) -> Self {
        #[cfg(feature = "metrics")]
        {
            use crate::breaker::State;
            let states = [
                State::Closed,
                State::Open,
                State::HalfOpen,
                State::ForcedOpen,
                State::Disabled,
            ];
            let table = states.map(|from| {
                states.map(|to| {
                    if Self::possible(from, to) {
                        ::metrics::counter!(
                            BREAKER_TRANSITIONS,
                            "name" => name.label(),
                            "host" => NO_HOST,
                            "from" => from.as_str(),
                            "to" => to.as_str()
                        )
                    } else {
                        ::metrics::Counter::noop()
                    }
                })
            });
            TransitionCounters { table }
        }
        #[cfg(not(feature = "metrics"))]
        TransitionCounters {}
    }

    /// Whether a breaker can go from `from` to `to` (a transition changes the state): a reset
    /// closes it from any other state, `force_open` and `disable` reach their state from any
    /// other, and the rest is the closed → open → half-open → closed or open cycle.
    #[cfg(feature = "metrics")]
    fn possible(from: crate::breaker::State, to: crate::breaker::State) -> bool {
        use crate::breaker::State;
        match to {
            State::Closed => from != to,
            State::ForcedOpen | State::Disabled => from != to,
            State::Open => matches!(from, State::Closed | State::HalfOpen),
            State::HalfOpen => from == State::Open,
        }
    }

    /// Counts a transition from `from` to `to`.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn count(&self, from: crate::breaker::State, to: crate::breaker::State) {
        #[cfg(feature = "metrics")]
        self.table[from.code() as usize][to.code() as usize].increment(1);
    }
}

impl std::fmt::Debug for TransitionCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TransitionCounters")
    }
}

/// A breaker's `tailguard_breaker_state` gauges, one per state, registered when it is built
/// (closed at 1); a transition moves the 1. Nothing at all with the feature off.
pub(crate) struct StateGauges {
    #[cfg(feature = "metrics")]
    gauges: [::metrics::Gauge; 5],
}

impl StateGauges {
    /// Registers the five gauges of breaker `name`, the breaker closed.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn new(name: &PolicyName) -> Self {
        #[cfg(feature = "metrics")]
        {
            use crate::breaker::State;
            let gauges = [
                State::Closed,
                State::Open,
                State::HalfOpen,
                State::ForcedOpen,
                State::Disabled,
            ]
            .map(|state| {
                ::metrics::gauge!(
                    BREAKER_STATE,
                    "name" => name.label(),
                    "host" => NO_HOST,
                    "state" => state.as_str()
                )
            });
            gauges[0].set(1.0);
            StateGauges { gauges }
        }
        #[cfg(not(feature = "metrics"))]
        StateGauges {}
    }

    /// The breaker left `from` for `to`.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn moved(&self, from: crate::breaker::State, to: crate::breaker::State) {
        #[cfg(feature = "metrics")]
        {
            self.gauges[from.code() as usize].set(0.0);
            self.gauges[to.code() as usize].set(1.0);
        }
    }
}

impl std::fmt::Debug for StateGauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateGauges")
    }
}

#[cfg(test)]
mod tests {
    /// Every metric of the table in docs/metrics.md, in its order.
    fn documented() -> Vec<String> {
        include_str!("../../docs/metrics.md")
            .lines()
            .filter_map(|line| line.strip_prefix("| `tailguard_"))
            .filter_map(|rest| rest.split('`').next())
            .map(|name| format!("tailguard_{name}"))
            .collect()
    }

    #[test]
    fn the_constants_are_the_documented_table() {
        assert_eq!(documented(), super::ALL);
    }
}
