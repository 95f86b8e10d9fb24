//! The gateway's running totals, as data and in the Prometheus text format.

use std::net::SocketAddr;

use tailguard::breaker::State;
use tailguard::hedge::HedgeStats;

use super::{Gateway, STATES};
use crate::metrics::{Kind, PromText};

/// The gateway's running totals, from [`Gateway::stats`].
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayStats {
    /// Fan-outs answered.
    pub fanouts: u64,
    /// Keys answered.
    pub keys_ok: u64,
    /// Keys that failed every try.
    pub keys_failed: u64,
    /// Keys cut by a fan-out's deadline.
    pub keys_timed_out: u64,
    /// Retries made.
    pub retries: u64,
    /// Retries refused by the shared retry budget.
    pub retry_budget_refusals: u64,
    /// The hedging policy's counters.
    pub hedge: HedgeStats,
    /// Each replica, by index.
    pub replicas: Vec<ReplicaView>,
}

/// One replica as the gateway sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaView {
    /// Its index.
    pub index: usize,
    /// Its address.
    pub addr: SocketAddr,
    /// Its breaker's state now.
    pub state: State,
    /// Calls answered 2xx or 4xx.
    pub ok: u64,
    /// Calls that failed (5xx, connection errors).
    pub failed: u64,
    /// Calls cut by `call_timeout`.
    pub timed_out: u64,
    /// Calls that skipped it because its breaker was open.
    pub rejected: u64,
    /// Calls the gateway's own limits stopped before they were sent (no pooled connection in
    /// time, or `call_timeout` ran out while connecting): not held against the replica.
    pub unsent: u64,
    /// Calls ended by the fan-out's deadline (nearer than `call_timeout`): cut in flight, or
    /// answered 504 by the replica for it (see [`wire_deadline`](crate::wire_deadline)). Not
    /// held against the replica.
    pub deadline: u64,
    /// Breaker transitions so far, as `(from, to, count)`.
    pub transitions: Vec<(State, State, u64)>,
    /// Connections open to it now.
    pub connections_open: u64,
    /// The most connections open to it at once so far (at most the pool size).
    pub connections_peak: u64,
}

impl ReplicaView {
    /// Transitions from `from` to `to` so far.
    pub fn transitions(&self, from: State, to: State) -> u64 {
        self.transitions
            .iter()
            .find(|(f, t, _)| *f == from && *t == to)
            .map_or(0, |(_, _, count)| *count)
    }
}

impl Gateway {
    /// The running totals.
    pub fn stats(&self) -> GatewayStats {
        let inner = &*self.inner;
        let t = &inner.totals;
        GatewayStats {
            fanouts: t.fanouts.get(),
            keys_ok: t.keys_ok.get(),
            keys_failed: t.keys_failed.get(),
            keys_timed_out: t.keys_timed_out.get(),
            retries: t.retries.get(),
            retry_budget_refusals: t.retry_budget_refusals.get(),
            hedge: inner.hedge.stats(),
            replicas: inner
                .replicas
                .iter()
                .map(|replica| {
                    let c = &replica.counts;
                    let pool = replica.pool.stats();
                    let mut transitions = Vec::new();
                    for (i, from) in STATES.iter().enumerate() {
                        for (j, to) in STATES.iter().enumerate() {
                            let count = c.transitions[i][j].get();
                            if count > 0 {
                                transitions.push((*from, *to, count));
                            }
                        }
                    }
                    ReplicaView {
                        index: replica.index,
                        addr: replica.pool.addr(),
                        state: replica.breaker.state(),
                        ok: c.ok.get(),
                        failed: c.failed.get(),
                        timed_out: c.timed_out.get(),
                        rejected: c.rejected.get(),
                        unsent: c.unsent.get(),
                        deadline: c.deadline.get(),
                        transitions,
                        connections_open: pool.open,
                        connections_peak: pool.peak_open,
                    }
                })
                .collect(),
        }
    }

    /// Writes the gateway's series: fan-outs and keys, retries and budget refusals, hedges
    /// sent, won and refused, and per replica calls by outcome, breaker state and transitions,
    /// and open connections (now and at the peak); with `replica_limit` or `throttle_k` on, each
    /// replica's limit, calls in flight, local refusals by reason and class, and throttle
    /// probability. With a [`PolicyMetrics`](crate::metrics::PolicyMetrics) installed before
    /// the gateway was built, the breakers' and the hedging policy's own series replace the
    /// gateway's of the same names.
    pub fn write_metrics(&self, out: &mut PromText) {
        let stats = self.stats();
        let inner = &*self.inner;
        out.single(
            "tailguard_fanouts_total",
            Kind::Counter,
            "Fan-outs answered.",
            stats.fanouts as f64,
        );
        out.family(
            "tailguard_fanout_keys_total",
            Kind::Counter,
            "Keys read by fan-outs, by outcome (ok, failed, or timed_out at the deadline).",
        );
        for (outcome, count) in [
            ("ok", stats.keys_ok),
            ("failed", stats.keys_failed),
            ("timed_out", stats.keys_timed_out),
        ] {
            out.sample(
                "tailguard_fanout_keys_total",
                &[("outcome", outcome)],
                count as f64,
            );
        }
        out.single(
            "tailguard_retries_total",
            Kind::Counter,
            "Retries made (tries after a key's first).",
            stats.retries as f64,
        );
        // With a `PolicyMetrics` installed, the pipeline's retries (named `default`: the
        // pipeline takes no name), the hedging policy (`gateway`) and each replica's breaker
        // (`replica-N`) write these families themselves, with a `name` label
        // (docs/metrics.md); writing them here too would repeat a family.
        let policies = inner.policy_metrics;
        if !policies {
            out.single(
                "tailguard_retry_budget_refusals_total",
                Kind::Counter,
                "Retries the shared retry budget refused.",
                stats.retry_budget_refusals as f64,
            );
        }
        if !policies {
            out.single(
                "tailguard_hedge_primaries_total",
                Kind::Counter,
                "First calls made under the hedging policy.",
                stats.hedge.primaries as f64,
            );
        }
        out.single(
            "tailguard_hedges_sent_total",
            Kind::Counter,
            "Backup calls sent by hedging.",
            stats.hedge.hedges_sent as f64,
        );
        out.single(
            "tailguard_hedges_won_total",
            Kind::Counter,
            "Hedged calls whose backup answered first.",
            stats.hedge.hedges_won as f64,
        );
        if !policies {
            out.single(
                "tailguard_hedge_budget_refusals_total",
                Kind::Counter,
                "Backup calls the hedge budget refused.",
                stats.hedge.budget_refusals as f64,
            );
        }
        if let Some(delay) = inner.hedge.delay_at(std::time::Instant::now()) {
            out.single(
                "tailguard_hedge_delay_seconds",
                Kind::Gauge,
                "The delay after which a slow call is hedged now.",
                delay.as_secs_f64(),
            );
        }

        out.family(
            "tailguard_backend_calls_total",
            Kind::Counter,
            "Calls to each replica, by outcome (rejected: skipped by its open breaker; unsent: \
             stopped by the gateway's own limits before sending; deadline: ended by the fan-out's \
             deadline, or refused by the replica for it; neither held against the replica).",
        );
        for r in &stats.replicas {
            let index = r.index.to_string();
            for (outcome, count) in [
                ("ok", r.ok),
                ("failed", r.failed),
                ("timed_out", r.timed_out),
                ("rejected", r.rejected),
                ("unsent", r.unsent),
                ("deadline", r.deadline),
            ] {
                out.sample(
                    "tailguard_backend_calls_total",
                    &[("replica", &index), ("outcome", outcome)],
                    count as f64,
                );
            }
        }
        if !policies {
            out.family(
                "tailguard_breaker_state",
                Kind::Gauge,
                "Each replica's circuit breaker state: 1 for the current state, 0 for the others.",
            );
            for r in &stats.replicas {
                let index = r.index.to_string();
                for state in STATES {
                    out.sample(
                        "tailguard_breaker_state",
                        &[("replica", &index), ("state", state.as_str())],
                        if r.state == state { 1.0 } else { 0.0 },
                    );
                }
            }
            out.family(
                "tailguard_breaker_transitions_total",
                Kind::Counter,
                "Circuit breaker state changes, by replica and states left and entered.",
            );
            for r in &stats.replicas {
                let index = r.index.to_string();
                for (from, to, count) in &r.transitions {
                    out.sample(
                        "tailguard_breaker_transitions_total",
                        &[
                            ("replica", &index),
                            ("from", from.as_str()),
                            ("to", to.as_str()),
                        ],
                        *count as f64,
                    );
                }
            }
        }
        out.family(
            "tailguard_backend_connections_open",
            Kind::Gauge,
            "Keep-alive connections open to each replica.",
        );
        for r in &stats.replicas {
            out.sample(
                "tailguard_backend_connections_open",
                &[("replica", &r.index.to_string())],
                r.connections_open as f64,
            );
        }
        out.family(
            "tailguard_backend_connections_peak",
            Kind::Gauge,
            "The most keep-alive connections open to each replica at once (at most the pool size).",
        );
        for r in &stats.replicas {
            out.sample(
                "tailguard_backend_connections_peak",
                &[("replica", &r.index.to_string())],
                r.connections_peak as f64,
            );
        }
        super::overload::write_metrics(&inner.replicas, out);
    }
}
