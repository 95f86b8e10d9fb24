//! One fan-out: every key through retry, hedging, breakers and per-call timeouts, gathered under
//! a deadline.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use serde::Serialize;
use smol::lock::Semaphore;
use tailguard::fanout::scatter_gather_with;
use tailguard::hedge::HedgeError;
use tailguard::retry::{Classify, Decision, GaveUp, RetryError};
use tailguard::time::AsyncIoTimer;
use tailguard::timeout::Deadline;

use super::{Gateway, Inner};
use crate::client::{ClientError, Limits};
use crate::metrics::Counter;

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
    /// The gateway's own limits stopped the call before it was sent: the client error's kind
    /// (`pool_exhausted`: no pooled connection came free within `pool_timeout`;
    /// `timeout_unsent`: `call_timeout` ran out before the request was sent). Not the
    /// replica's doing: not retried, and not held against its breaker.
    Unsent(&'static str),
}

impl KeyError {
    /// A short name for reports: `status_503`, `call_timeout`, `connect`, `all_breakers_open`,
    /// `pool_exhausted`.
    pub fn name(&self) -> String {
        match self {
            KeyError::Status(status) => format!("status_{status}"),
            KeyError::CallTimeout => "call_timeout".into(),
            KeyError::Client(kind) | KeyError::Unsent(kind) => (*kind).into(),
            KeyError::AllBreakersOpen => "all_breakers_open".into(),
        }
    }

    /// Whether another try may help: not for a 4xx (the request is wrong), nor when every
    /// breaker is open (failing fast is the point), nor when the gateway itself is saturated
    /// (another call would add to it).
    fn is_retryable(&self) -> bool {
        match self {
            KeyError::Status(status) => *status >= 500,
            KeyError::AllBreakersOpen | KeyError::Unsent(_) => false,
            KeyError::CallTimeout | KeyError::Client(_) => true,
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
        }
    }
}

/// Retries a key when any of its hedged attempts failed in a way another try may fix.
pub(super) struct KeyClassifier;

impl Classify<HedgeError<KeyError>> for KeyClassifier {
    fn classify(&self, error: &HedgeError<KeyError>) -> Decision {
        if error.errors().iter().any(KeyError::is_retryable) {
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

/// One key's retry loop, boxed (see [`Inner::retried`]).
type Retried<'a> =
    Pin<Box<dyn Future<Output = Result<Served, RetryError<HedgeError<KeyError>>>> + Send + 'a>>;

/// Counters of one fan-out, shared by its keys.
#[derive(Default)]
pub(super) struct FanoutCounts {
    retries: Counter,
    budget_refusals: Counter,
    pub(super) hedges_sent: Counter,
    pub(super) breaker_rejections: Counter,
}

impl Gateway {
    /// Reads keys `0..keys` from the replicas (see the [module documentation](super)) and
    /// answers within the fan-out deadline, partially if need be.
    pub async fn fanout(&self, keys: usize) -> FanoutReport {
        let inner = &*self.inner;
        let started = Instant::now();
        let counts = FanoutCounts::default();
        let deadline = Deadline::after(inner.config.fanout_deadline);
        // At most `fanout_concurrency` keys at once: a key's call timeout starts with its turn.
        let turns = Semaphore::new(inner.config.fanout_concurrency);
        let (turns, counts_ref) = (&turns, &counts);
        let reads = (0..keys).map(|key| async move {
            let _turn = turns.acquire().await;
            inner.read_key(key, counts_ref).await
        });
        let results = scatter_gather_with(AsyncIoTimer, reads, deadline).await;

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
                Ok(Err(error)) => {
                    report.failed += 1;
                    *report.errors.entry(error.name()).or_default() += 1;
                    report.values.push(None);
                    inner.totals.keys_failed.bump();
                }
                Err(_elapsed) => {
                    report.timed_out += 1;
                    *report.errors.entry("deadline".into()).or_default() += 1;
                    report.values.push(None);
                    inner.totals.keys_timed_out.bump();
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
    /// One key: retried, each try hedged, each call through a breaker and a timeout.
    async fn read_key(&self, key: usize, counts: &FanoutCounts) -> Result<Served, KeyError> {
        let result = self.retried(key, counts).await;
        result.map_err(|error| {
            if error.reason() == GaveUp::BudgetExhausted {
                counts.budget_refusals.bump();
                self.totals.retry_budget_refusals.bump();
            }
            match error.into_inner() {
                Some(hedged) => hedged.last().clone(),
                None => KeyError::CallTimeout,
            }
        })
    }

    /// The retry loop of one key, boxed as `Send` here, where its lifetimes are known: inside
    /// an `async fn` the compiler cannot prove the retry and hedge futures `Send` for every
    /// lifetime, because their fields name `<Fut as TryFuture>::Error` (rust-lang/rust#64552).
    fn retried<'a>(&'a self, key: usize, counts: &'a FanoutCounts) -> Retried<'a> {
        Box::pin(self.retry.run_numbered(move |attempt| {
            if attempt > 1 {
                counts.retries.bump();
                self.totals.retries.bump();
            }
            // Each try starts one replica further along, and so does each hedge: the first
            // attempt of the first try (both numbered from 1) goes to the key's home replica.
            self.hedge.run_with(AsyncIoTimer, move |hedge| {
                if hedge > 1 {
                    counts.hedges_sent.bump();
                }
                let offset = (attempt + hedge) as usize - 2;
                self.call(key, offset, hedge, counts)
            })
        }))
    }

    /// One call for `key`, to the first replica from `home + offset` whose breaker admits it.
    async fn call(
        &self,
        key: usize,
        offset: usize,
        hedge: u32,
        counts: &FanoutCounts,
    ) -> Result<Served, KeyError> {
        if let Some(tied) = &self.tied {
            return self.call_tied(tied, key, offset, counts).await;
        }
        let n = self.replicas.len();
        let first = (key + offset) % n;
        let mut chosen = None;
        for step in 0..n {
            let replica = &self.replicas[(first + step) % n];
            match replica.breaker.try_acquire() {
                Ok(permit) => {
                    chosen = Some((replica, permit));
                    break;
                }
                Err(_) => {
                    counts.breaker_rejections.bump();
                    replica.counts.rejected.bump();
                }
            }
        }
        let Some((replica, permit)) = chosen else {
            return Err(KeyError::AllBreakersOpen);
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
        match replica.pool.get_within(&path, limits).await {
            // The gateway's own limit, not the replica's doing: the permit is released
            // uncounted (dropped), so the breaker sees neither a success nor a failure.
            Err(error) if error.is_local() => {
                drop(permit);
                replica.counts.unsent.bump();
                Err(KeyError::Unsent(error.kind()))
            }
            Err(ClientError::TimedOut { .. }) => {
                permit.failure();
                replica.counts.timed_out.bump();
                Err(KeyError::CallTimeout)
            }
            Err(error) => {
                permit.failure();
                replica.counts.failed.bump();
                Err(KeyError::Client(error.kind()))
            }
            Ok(reply) if reply.status.is_success() => {
                permit.success();
                replica.counts.ok.bump();
                Ok(Served {
                    replica: replica.index,
                    hedge,
                    value: String::from_utf8_lossy(&reply.body).into_owned(),
                })
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
                Err(KeyError::Status(reply.status.as_u16()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hedged(errors: Vec<KeyError>) -> HedgeError<KeyError> {
        // A HedgeError is only built by a hedged run: make one that fails with `errors`.
        let hedge = tailguard::hedge::Hedge::builder()
            .max_attempts(errors.len() as u32)
            .unbudgeted()
            .build()
            .unwrap();
        let timer = tailguard::time::ManualTimer::new();
        let run = hedge.run_with(timer.clone(), |attempt| {
            let error = errors[attempt as usize - 1].clone();
            async move { Err::<(), _>(error) }
        });
        timer.block_on(run).unwrap_err()
    }

    #[test]
    fn only_faults_another_try_may_fix_are_retried() {
        let classify = |errors| KeyClassifier.classify(&hedged(errors));
        assert_eq!(classify(vec![KeyError::Status(503)]), Decision::Retry);
        assert_eq!(classify(vec![KeyError::CallTimeout]), Decision::Retry);
        assert_eq!(classify(vec![KeyError::Client("connect")]), Decision::Retry);
        assert_eq!(classify(vec![KeyError::Status(404)]), Decision::Stop);
        assert_eq!(classify(vec![KeyError::AllBreakersOpen]), Decision::Stop);
        assert_eq!(
            classify(vec![KeyError::Unsent("pool_exhausted")]),
            Decision::Stop
        );
        // One retryable failure among the attempts is enough.
        assert_eq!(
            classify(vec![KeyError::AllBreakersOpen, KeyError::Status(500)]),
            Decision::Retry
        );
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
