//! One fan-out: every key through the pipeline (retry, hedging, the deadline), each attempt
//! through a replica's breaker and the call timeout, gathered under the fan-out's deadline.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use serde::Serialize;
use smol::lock::Semaphore;
use tailguard::fanout::scatter_gather_with;
use tailguard::pipeline::{Attempt, PipelineError};
use tailguard::retry::{Classify, Decision};
use tailguard::time::DefaultTimer;
use tailguard::timeout::Deadline;

use tailguard::priority::Criticality;

use super::balanced::KeyReplicas;
use super::overload::Verdict;
use super::{Gateway, Inner};
use crate::client::{ClientError, Limits};
use crate::metrics::Counter;
use crate::wire_deadline::is_deadline_504;

/// Why one key got no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// The replica answered with this (non-2xx) status.
    Status(u16),
    /// The call took longer than `call_timeout`.
    CallTimeout,
    /// The call got no response: the client error's kind (`connect`, `request`, ...).
    Client(&'static str),
    /// Every replica's breaker was open.
    AllBreakersOpen,
    /// Every replica whose breaker admitted the call was refused locally, by its adaptive
    /// concurrency limit (`replica_limit`) or its client-side throttle (`throttled`; the
    /// kind of the last refusal). Nothing was sent: not retried (another call would add to the
    /// overload), and not held against any breaker.
    LocalLimit(&'static str),
    /// The gateway's own limits stopped the call before it was sent: the client error's kind
    /// (`pool_exhausted`: no pooled connection came free within `pool_timeout`;
    /// `timeout_unsent`: `call_timeout` ran out before the request was sent). Not the
    /// replica's doing: not retried, and not held against its breaker.
    Unsent(&'static str),
    /// The call was in flight when its caller's deadline (the fan-out's, nearer than
    /// `call_timeout`) came: not retried (there is no time left), and not held against the
    /// replica.
    Deadline,
    /// The replica answered 504 for the caller's deadline (the fan-out's, nearer than
    /// `call_timeout`): it had too little time left for the work, or a stall took it to the
    /// deadline. Another replica may be faster: retried, but not held against this one.
    DeadlineRefused,
}

impl KeyError {
    /// A short name for reports: `status_503`, `call_timeout`, `connect`, `all_breakers_open`,
    /// `pool_exhausted`.
    pub fn name(&self) -> String {
        match self {
            KeyError::Status(status) => format!("status_{status}"),
            KeyError::CallTimeout => "call_timeout".into(),
            KeyError::Client(kind) | KeyError::Unsent(kind) | KeyError::LocalLimit(kind) => {
                (*kind).into()
            }
            KeyError::AllBreakersOpen => "all_breakers_open".into(),
            KeyError::Deadline => "deadline".into(),
            KeyError::DeadlineRefused => "deadline_refused".into(),
        }
    }

    /// Whether another try may help: not for a 4xx (the request is wrong), nor when every
    /// breaker is open (failing fast is the point), nor when the gateway itself is saturated
    /// (another call would add to it).
    fn is_retryable(&self) -> bool {
        match self {
            KeyError::Status(status) => *status >= 500,
            KeyError::AllBreakersOpen
            | KeyError::Unsent(_)
            | KeyError::LocalLimit(_)
            | KeyError::Deadline => false,
            KeyError::CallTimeout | KeyError::Client(_) | KeyError::DeadlineRefused => true,
        }
    }
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Status(status) => write!(f, "the replica answered {status}"),
            KeyError::CallTimeout => f.write_str("the call timed out (call_timeout)"),
            KeyError::Client(kind) => write!(f, "the call failed ({kind})"),
            KeyError::AllBreakersOpen => f.write_str("every replica's circuit breaker is open"),
            KeyError::Unsent(kind) => write!(
                f,
                "the gateway's own limits stopped the call before it was sent ({kind})"
            ),
            KeyError::LocalLimit(kind) => write!(
                f,
                "every replica was refused locally by its overload control ({kind}): nothing sent"
            ),
            KeyError::Deadline => f.write_str("the fan-out's deadline came during the call"),
            KeyError::DeadlineRefused => {
                f.write_str("the replica answered 504 for the fan-out's deadline")
            }
        }
    }
}

/// Retries a key when its last attempt failed in a way another try may fix.
pub(super) struct KeyClassifier;

impl Classify<KeyError> for KeyClassifier {
    fn classify(&self, error: &KeyError) -> Decision {
        if error.is_retryable() {
            Decision::Retry
        } else {
            Decision::Stop
        }
    }
}

/// What one `/fanout` got, and how.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FanoutReport {
    /// Keys asked for.
    pub keys: usize,
    /// Keys answered.
    pub ok: usize,
    /// Keys that failed every try.
    pub failed: usize,
    /// Keys still running, or still waiting for their turn, at the deadline (cancelled).
    pub timed_out: usize,
    /// Whether some keys are missing from the answer.
    pub partial: bool,
    /// Retries made (tries after the first, over all keys).
    pub retries: u64,
    /// Retries the shared budget refused.
    pub retry_budget_refusals: u64,
    /// Backup calls sent by hedging (including the immediate failover of a failed call).
    pub hedges_sent: u64,
    /// Keys whose answer came from a backup call.
    pub hedges_won: u64,
    /// Times a call skipped a replica because its breaker was open.
    pub breaker_rejections: u64,
    /// Times a call skipped a replica because its adaptive limit or its throttle refused it.
    pub limit_rejections: u64,
    /// Keys answered, by replica index (in JSON, an object keyed by the index: `{"0": 5,
    /// "1": 3}`, the numbering of the gateway's logs and the backends' control endpoint).
    #[serde(serialize_with = "by_replica")]
    pub served_by: Vec<u64>,
    /// Why keys are missing, by error name: the last error of each failed key
    /// ([`KeyError::name`]), or `deadline` for a key cut by the fan-out's deadline.
    pub errors: BTreeMap<String, u64>,
    /// How long the fan-out took, in milliseconds.
    pub elapsed_ms: f64,
    /// The value of each key (`null` if missing).
    pub values: Vec<Option<String>>,
}

/// `counts` as a JSON object keyed by replica index, in index order.
fn by_replica<S: serde::Serializer>(counts: &[u64], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(counts.len()))?;
    for (replica, n) in counts.iter().enumerate() {
        map.serialize_entry(&replica.to_string(), n)?;
    }
    map.end()
}

/// One key's answer.
pub(super) struct Served {
    pub(super) replica: usize,
    /// Which attempt of the hedged call answered, from 1 (the primary).
    pub(super) hedge: u32,
    pub(super) value: String,
}

/// Counters of one fan-out, shared by its keys.
#[derive(Default)]
pub(super) struct FanoutCounts {
    retries: Counter,
    budget_refusals: Counter,
    pub(super) hedges_sent: Counter,
    pub(super) breaker_rejections: Counter,
    limit_rejections: Counter,
}

impl Gateway {
    /// Reads keys `0..keys` from the replicas (see the [module documentation](super)) and
    /// answers within the fan-out deadline, partially if need be.
    pub async fn fanout(&self, keys: usize) -> FanoutReport {
        self.fanout_until(keys, Deadline::after(self.inner.config.fanout_deadline))
            .await
    }

    /// Like [`fanout`](Gateway::fanout), by the caller's `deadline` when it is nearer than the
    /// fan-out deadline: every call's `tailguard-timeout` header then carries the time left
    /// until the nearer of the two (and its own `call_timeout`).
    pub async fn fanout_until(&self, keys: usize, deadline: Deadline) -> FanoutReport {
        self.fanout_as_until(keys, Criticality::Default, deadline)
            .await
    }

    /// Like [`fanout_until`](Gateway::fanout_until), for a caller of `class` (its
    /// `tailguard-criticality` header): the class the replicas' adaptive limits admit each
    /// call in, forwarded to the replicas in the same header.
    pub async fn fanout_as_until(
        &self,
        keys: usize,
        class: Criticality,
        deadline: Deadline,
    ) -> FanoutReport {
        let inner = &*self.inner;
        let started = Instant::now();
        let counts = FanoutCounts::default();
        let deadline = deadline.min(Deadline::after(inner.config.fanout_deadline));
        // At most `fanout_concurrency` keys at once: a key's call timeout starts with its turn.
        let turns = Semaphore::new(inner.config.fanout_concurrency);
        let (turns, counts_ref) = (&turns, &counts);
        let reads = (0..keys).map(|key| async move {
            let _turn = turns.acquire().await;
            inner.read_key(key, class, counts_ref, deadline).await
        });
        let results = scatter_gather_with(DefaultTimer::default(), reads, deadline).await;

        inner.totals.fanouts.bump();
        let mut report = FanoutReport {
            keys,
            ok: 0,
            failed: 0,
            timed_out: 0,
            partial: false,
            retries: counts.retries.get(),
            retry_budget_refusals: counts.budget_refusals.get(),
            hedges_sent: counts.hedges_sent.get(),
            hedges_won: 0,
            breaker_rejections: counts.breaker_rejections.get(),
            limit_rejections: counts.limit_rejections.get(),
            served_by: vec![0; inner.replicas.len()],
            errors: BTreeMap::new(),
            elapsed_ms: 0.0,
            values: Vec::with_capacity(keys),
        };
        for result in results {
            match result {
                Ok(Ok(served)) => {
                    report.ok += 1;
                    report.served_by[served.replica] += 1;
                    if served.hedge > 1 {
                        report.hedges_won += 1;
                    }
                    report.values.push(Some(served.value));
                    inner.totals.keys_ok.bump();
                }
                // Cut in flight by the deadline, or cut waiting: both timed out.
                Ok(Err(KeyError::Deadline)) | Err(_) => {
                    report.timed_out += 1;
                    *report.errors.entry("deadline".into()).or_default() += 1;
                    report.values.push(None);
                    inner.totals.keys_timed_out.bump();
                }
                Ok(Err(error)) => {
                    report.failed += 1;
                    *report.errors.entry(error.name()).or_default() += 1;
                    report.values.push(None);
                    inner.totals.keys_failed.bump();
                }
            }
        }
        report.partial = report.ok < keys;
        // Whole microseconds: no float noise like 12.976602999999999 in the JSON.
        report.elapsed_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
        report
    }
}

impl Inner {
    /// One key through the pipeline: retried, each try hedged, by the fan-out's `deadline`;
    /// each attempt one call through a replica's breaker and the call timeout.
    async fn read_key(
        &self,
        key: usize,
        class: Criticality,
        counts: &FanoutCounts,
        deadline: Deadline,
    ) -> Result<Served, KeyError> {
        // The replicas running this key's attempts, so that a hedge goes to another one.
        let replicas = KeyReplicas::default();
        let replicas = &replicas;
        let result = self
            .pipeline
            .call_until(deadline, |attempt: Attempt| {
                if attempt.is_hedge() {
                    counts.hedges_sent.bump();
                } else if attempt.round() > 1 {
                    counts.retries.bump();
                    self.totals.retries.bump();
                }
                // Each try starts one replica further along, and so does each hedge: the first
                // attempt of the first try (both numbered from 1) goes to the key's home
                // replica.
                let offset = (attempt.round() + attempt.hedge()) as usize - 2;
                let call = Call {
                    key,
                    offset,
                    hedge: attempt.hedge(),
                    class,
                };
                self.call(call, counts, deadline, replicas)
            })
            .await;
        result.map_err(|error| match error {
            PipelineError::GaveUp { error, .. } => error,
            PipelineError::BudgetEmpty { last, .. } => {
                counts.budget_refusals.bump();
                self.totals.retry_budget_refusals.bump();
                last.unwrap_or(KeyError::CallTimeout)
            }
            // No time left for another try: the key failed with its last error.
            PipelineError::DeadlineTooShort {
                last: Some(last), ..
            } => last,
            // The deadline came during a try, or before any: timed out.
            _ => KeyError::Deadline,
        })
    }

    /// One call for `key`, to the first replica from `home + offset` whose breaker, adaptive
    /// limit and throttle admit it (with [`Balance::P2c`](super::Balance::P2c), from the
    /// replica the balancer picks), within `call_timeout` and never past the fan-out's
    /// `deadline`.
    async fn call(
        &self,
        call: Call,
        counts: &FanoutCounts,
        deadline: Deadline,
        replicas: &KeyReplicas,
    ) -> Result<Served, KeyError> {
        let Call {
            key,
            offset,
            hedge,
            class,
        } = call;
        if let Some(tied) = &self.tied {
            return self.call_tied(tied, key, offset, counts, deadline).await;
        }
        let n = self.replicas.len();
        let Some(first) = self.first_replica(key, offset, hedge, replicas) else {
            return Err(KeyError::Unsent("no_replica_for_hedge"));
        };
        let mut chosen = None;
        let mut refused = None;
        for step in 0..n {
            let replica = &self.replicas[(first + step) % n];
            let permit = match replica.breaker.try_acquire() {
                Ok(permit) => permit,
                Err(_) => {
                    counts.breaker_rejections.bump();
                    replica.counts.rejected.bump();
                    continue;
                }
            };
            // A local refusal drops the breaker's permit unreported: uncounted.
            match self.admit(replica, class) {
                Ok(admitted) => {
                    chosen = Some((replica, permit, admitted));
                    break;
                }
                Err(kind) => {
                    counts.limit_rejections.bump();
                    refused = Some(kind);
                }
            }
        }
        let Some((replica, permit, admitted)) = chosen else {
            return Err(refused.map_or(KeyError::AllBreakersOpen, KeyError::LocalLimit));
        };
        let path = format!("/key/{key}");
        // A backup is only worth sending on a spare connection: waiting in line behind the
        // replica's other calls would add to a queue, not cut a tail.
        let limits = Limits {
            pool_wait: if hedge == 1 {
                self.config.pool_timeout
            } else {
                Duration::ZERO
            },
            total: self.config.call_timeout,
        };
        // Whose limit ends the call: the fan-out's deadline, or the call's own timeout. Only
        // the second says anything about the replica.
        let by_caller = Instant::now()
            .checked_add(self.config.call_timeout)
            .is_none_or(|own| deadline.instant() <= own);
        let tracked = self.track(replica.index, replicas);
        let headers = self.class_headers[class.index()].as_ref();
        let reply = replica
            .pool
            .get_headed_until(&path, limits, deadline, headers)
            .await;
        tracked.finish();
        let (verdict, result) = match reply {
            // The gateway's own limit, not the replica's doing: the permit is released
            // uncounted (dropped), so the breaker sees neither a success nor a failure.
            Err(error) if error.is_local() => {
                drop(permit);
                replica.counts.unsent.bump();
                (Verdict::Nothing, Err(KeyError::Unsent(error.kind())))
            }
            // The caller's deadline, not the replica's: uncounted too.
            Err(ClientError::TimedOut { .. }) if by_caller => {
                drop(permit);
                replica.counts.deadline.bump();
                (Verdict::Nothing, Err(KeyError::Deadline))
            }
            Ok(reply) if is_deadline_504(reply.status, &reply.headers) => {
                if by_caller {
                    drop(permit);
                    replica.counts.deadline.bump();
                    (Verdict::Nothing, Err(KeyError::DeadlineRefused))
                } else {
                    // Told it had `call_timeout`, the replica could not do the work in it:
                    // the call would have timed out, sooner said.
                    permit.failure();
                    replica.counts.timed_out.bump();
                    (Verdict::Overload, Err(KeyError::CallTimeout))
                }
            }
            Err(ClientError::TimedOut { .. }) => {
                permit.failure();
                replica.counts.timed_out.bump();
                (Verdict::Overload, Err(KeyError::CallTimeout))
            }
            Err(error) => {
                permit.failure();
                replica.counts.failed.bump();
                (Verdict::Nothing, Err(KeyError::Client(error.kind())))
            }
            Ok(reply) if reply.status.is_success() => {
                permit.success();
                replica.counts.ok.bump();
                let served = Served {
                    replica: replica.index,
                    hedge,
                    value: String::from_utf8_lossy(&reply.body).into_owned(),
                };
                (Verdict::Success, Ok(served))
            }
            Ok(reply) => {
                // A 5xx is the replica's fault; a 4xx is the request's, and the replica is fine.
                if reply.status.is_server_error() {
                    permit.failure();
                    replica.counts.failed.bump();
                } else {
                    permit.success();
                    replica.counts.ok.bump();
                }
                let verdict = Verdict::of_status(reply.status);
                (verdict, Err(KeyError::Status(reply.status.as_u16())))
            }
        };
        admitted.finish(verdict);
        result
    }
}

/// Which call of a key an attempt makes.
struct Call {
    key: usize,
    /// Replicas further along from the key's home (0 for the first try's primary).
    offset: usize,
    /// Which attempt of the try, from 1 (the primary).
    hedge: u32,
    /// The caller's class.
    class: Criticality,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_faults_another_try_may_fix_are_retried() {
        let classify = |error: KeyError| KeyClassifier.classify(&error);
        assert_eq!(classify(KeyError::Status(503)), Decision::Retry);
        assert_eq!(classify(KeyError::CallTimeout), Decision::Retry);
        assert_eq!(classify(KeyError::Client("connect")), Decision::Retry);
        assert_eq!(classify(KeyError::DeadlineRefused), Decision::Retry);
        assert_eq!(classify(KeyError::Status(404)), Decision::Stop);
        assert_eq!(classify(KeyError::AllBreakersOpen), Decision::Stop);
        assert_eq!(classify(KeyError::Unsent("pool_exhausted")), Decision::Stop);
        assert_eq!(classify(KeyError::Deadline), Decision::Stop);
        assert_eq!(classify(KeyError::LocalLimit("throttled")), Decision::Stop);
    }

    #[test]
    fn errors_have_short_names_and_say_what_happened() {
        assert_eq!(KeyError::Status(503).name(), "status_503");
        assert_eq!(KeyError::CallTimeout.name(), "call_timeout");
        assert_eq!(KeyError::Client("connect").name(), "connect");
        assert_eq!(KeyError::AllBreakersOpen.name(), "all_breakers_open");
        assert!(KeyError::CallTimeout.to_string().contains("call_timeout"));
        assert!(KeyError::AllBreakersOpen.to_string().contains("breaker"));
        assert_eq!(KeyError::Unsent("pool_exhausted").name(), "pool_exhausted");
        assert!(KeyError::Unsent("pool_exhausted")
            .to_string()
            .contains("before it was sent"));
    }
}
