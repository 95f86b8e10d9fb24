//! Tied requests through the gateway (`--hedge tied:1ms`): one key, two copies to two
//! replicas, each tagged with the other, the first answer wins; and a backup to a third
//! replica, within the hedging budget (`--hedge-budget`), when the copy that started has not
//! answered [`BACKUP_AFTER`] after its twin said it started (the twin's 409), or when neither
//! copy has started [`BACKUP_AFTER`] after the second was sent (both replicas stalled: no 409
//! comes, and without this the key waits out the shorter stall).

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::Either;
use http::{HeaderMap, HeaderValue, Method};
use tailguard::breaker::Permit;
use tailguard::hedge::Hedge;
use tailguard::tied::{Backup, Leg, Outgoing, Tied};
use tailguard::time::DefaultTimer;
use tailguard::timeout::Deadline;
use tailguard::ConfigError;

use super::fanout::{FanoutCounts, KeyError, Served};
use super::{Inner, Replica};
use crate::backend::{REQUEST_ID, TIED_TO};
use crate::client::{ClientError, Limits};
use crate::wire_deadline::is_deadline_504;

/// How long after a tied copy is known to have started (its twin answered 409) the gateway
/// sends a backup to a third replica, if the copy has not answered: several times the demo
/// replicas' usual service time (a few ms), well short of their stalls (tens of ms). Also how
/// long after the second copy was sent a call none of whose copies has started is backed up.
pub const BACKUP_AFTER: Duration = Duration::from_millis(10);

/// The tied policy of `--hedge tied:DELAY`: the second copy after `delay`, and a backup
/// `backup_after` (`None`: never) after a copy started, or after the second copy was sent if
/// none has started, drawn from `hedge`'s budget (the gateway's hedging budget, which tied
/// calls otherwise leave unused); with `percentile`, the delay after a start is learnt as
/// that percentile of started copies' run times, at most `backup_after`.
pub(super) fn policy(
    delay: Duration,
    backup_after: Option<Duration>,
    percentile: Option<f64>,
    hedge: &Hedge,
) -> Result<Tied, ConfigError> {
    let tied = Tied::new(delay)?;
    let Some(after) = backup_after else {
        return Ok(tied);
    };
    let backup = match hedge.budget() {
        Some(budget) => Backup::new(after, budget.clone())?,
        None => Backup::unbudgeted(after)?,
    };
    let backup = backup.with_unstarted(after)?;
    let backup = match percentile {
        Some(p) => backup.with_learnt_after(p)?,
        None => backup,
    };
    Ok(tied.with_backup(backup))
}

/// A task awaited, detached rather than cancelled if dropped first.
struct Detach<T>(Option<smol::Task<T>>);

impl<T> std::future::Future for Detach<T> {
    type Output = T;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<T> {
        let task = self.0.as_mut().expect("polled after completion");
        let out = std::pin::Pin::new(task).poll(cx);
        if out.is_ready() {
            self.0 = None;
        }
        out
    }
}

impl<T> Drop for Detach<T> {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.detach();
        }
    }
}

impl Inner {
    /// One tied call for `key`: copies to the first two replicas from `home + offset` whose
    /// breakers admit a call (a plain call when only one does). The second copy counts as a
    /// hedge in the statistics; a copy its twin cancelled answers 409, and the other's answer
    /// is the key's. Each copy carries the time left until the nearer of `call_timeout` and
    /// the fan-out's `deadline` in `tailguard-timeout`, so a replica neither queues nor starts
    /// a copy nobody will wait for.
    pub(super) async fn call_tied(
        &self,
        tied: &Tied,
        key: usize,
        offset: usize,
        counts: &FanoutCounts,
        deadline: Deadline,
    ) -> Result<Served, KeyError> {
        let n = self.replicas.len();
        let first = first_index(key, offset, n);
        // The two replicas whose breakers admit the copies, in order (no allocation per call).
        let mut chosen: [Option<(&Replica, Permit<'_, DefaultTimer>)>; 2] = [None, None];
        let mut found = 0;
        let mut last = 0;
        for step in 0..n {
            last = step;
            let replica = &self.replicas[(first + step) % n];
            match replica.breaker.try_acquire() {
                Ok(permit) => {
                    chosen[found] = Some((replica, permit));
                    found += 1;
                    if found == 2 {
                        break;
                    }
                }
                Err(_) => {
                    counts.breaker_rejections.bump();
                    replica.counts.rejected.bump();
                }
            }
        }
        let [first, second] = chosen;
        let Some(first) = first else {
            return Err(KeyError::AllBreakersOpen);
        };
        let Some(second) = second else {
            // One replica admits calls: an untied call to it.
            let (replica, permit) = first;
            return self
                .send_copy(replica, permit, key, 1, None, deadline)
                .await;
        };
        // The backup's replica: the next one after the two chosen (its breaker is asked only
        // if a backup is sent).
        let third =
            (last + 1 < n).then(|| &self.replicas[(first_index(key, offset, n) + last + 1) % n]);
        let call = match third {
            Some(third) if tied.backup().is_some() => {
                tied.call_backed(first.0.index, second.0.index, third.index)
            }
            _ => tied.call(first.0.index, second.0.index),
        };
        let mut permits = [Some(first), Some(second)];
        // The backup, once sent: its replica and id, to cancel it if it loses.
        let mut backup_sent: Option<(usize, u64)> = None;
        // A copy cancelled by its twin answers 409: the twin has started.
        let started = AtomicBool::new(false);
        let twin_started = |error: &KeyError| {
            let cancelled = *error == KeyError::Status(409);
            if cancelled {
                started.store(true, Relaxed);
            }
            cancelled
        };
        let result = tied
            .run_backed_with(
                DefaultTimer::default(),
                call,
                twin_started,
                |copy: Outgoing<usize>| {
                    let leg = match copy.leg {
                        Leg::First => 0,
                        Leg::Second => {
                            counts.hedges_sent.bump();
                            1
                        }
                        Leg::Backup => {
                            let replica = &self.replicas[copy.replica];
                            let Ok(permit) = replica.breaker.try_acquire() else {
                                counts.breaker_rejections.bump();
                                replica.counts.rejected.bump();
                                return Either::Right(std::future::ready(Err(
                                    KeyError::AllBreakersOpen,
                                )));
                            };
                            counts.hedges_sent.bump();
                            backup_sent = Some((copy.replica, copy.id));
                            let headers = HeaderMap::from_iter([(
                                http::header::HeaderName::from_static(REQUEST_ID),
                                HeaderValue::from(copy.id),
                            )]);
                            return Either::Left(self.send_copy(
                                replica,
                                permit,
                                key,
                                3,
                                Some(headers),
                                deadline,
                            ));
                        }
                    };
                    let (replica, permit) = permits[leg].take().expect("each copy is sent once");
                    let mut headers = HeaderMap::with_capacity(2);
                    headers.insert(REQUEST_ID, HeaderValue::from(copy.id));
                    if let Some(twin) = copy.tied_to {
                        let addr = self.replicas[twin.replica].pool.addr();
                        let tied_to = format!("{addr}/{}", twin.id);
                        if let Ok(value) = HeaderValue::from_str(&tied_to) {
                            headers.insert(TIED_TO, value);
                        }
                    }
                    Either::Left(self.send_copy(
                        replica,
                        permit,
                        key,
                        leg as u32 + 1,
                        Some(headers),
                        deadline,
                    ))
                },
            )
            .await;
        match result {
            Ok(won) => {
                // A losing backup may still wait in its replica's queue: cancel it there (the
                // tied copies' own cancels are their replicas' business, while one of them
                // runs).
                if let Some((replica, id)) = backup_sent {
                    let lost = won.cancel.iter().flatten().any(|loser| loser.id == id);
                    if won.leg != Leg::Backup && lost {
                        self.cancel_copy(replica, id);
                    }
                }
                // A backup that won before either tied copy started: both still wait in
                // their stalled replicas' queues, and the first to start would run for
                // nothing. Cancel them there.
                if won.leg == Leg::Backup && !started.load(Relaxed) {
                    for loser in won.cancel.iter().flatten() {
                        self.cancel_copy(loser.replica, loser.id);
                    }
                }
                Ok(won.value)
            }
            // A copy cancelled by its twin (409) says less than the other's error.
            Err(both) if both.first == KeyError::Status(409) => Err(both.second),
            Err(both) => Err(both.first),
        }
    }

    /// Sends `POST /cancel/{id}` to `replica` in a task of its own, within 250 ms: a copy
    /// that lost is dropped from the replica's queue if it is still there.
    fn cancel_copy(&self, replica: usize, id: u64) {
        let pool = self.replicas[replica].pool.clone();
        let cancel = async move {
            let limits = Limits {
                pool_wait: Duration::from_millis(250),
                total: Duration::from_millis(250),
            };
            let path = format!("/cancel/{id}");
            // Best effort: a cancel that fails leaves the backup to run, as without it.
            let _ = pool
                .send_within(limits, Method::POST, &path, Bytes::new())
                .await;
        };
        self.ex.spawn(cancel).detach();
    }

    /// Sends one copy of `key` to `replica` with `headers`, never past `deadline`, and records
    /// the outcome against its breaker (nothing that the caller's deadline caused, as in a
    /// plain call).
    async fn send_copy(
        &self,
        replica: &Replica,
        permit: Permit<'_, DefaultTimer>,
        key: usize,
        hedge: u32,
        headers: Option<HeaderMap>,
        deadline: Deadline,
    ) -> Result<Served, KeyError> {
        let path = format!("/key/{key}");
        let limits = Limits {
            pool_wait: if hedge == 1 {
                self.config.pool_timeout
            } else {
                Duration::ZERO
            },
            total: self.config.call_timeout,
        };
        // The exchange runs in a task of its own: when the other copy wins and this one's
        // future is dropped, the request still ends on its own (most often at once, with a
        // 409 from the queue that cancelled it), so its pooled connection is reused instead of
        // closed mid-request.
        // Whose limit ends the copy: the fan-out's deadline, or the call's own timeout. Only
        // the second says anything about the replica.
        let by_caller = Instant::now()
            .checked_add(self.config.call_timeout)
            .is_none_or(|own| deadline.instant() <= own);
        let pool = replica.pool.clone();
        let exchange = self.ex.spawn(async move {
            pool.send_headed_until(
                deadline,
                limits,
                Method::GET,
                &path,
                Bytes::new(),
                headers.as_ref(),
            )
            .await
        });
        let reply = Detach(Some(exchange)).await;
        match reply {
            Err(error) if error.is_local() => {
                drop(permit);
                replica.counts.unsent.bump();
                Err(KeyError::Unsent(error.kind()))
            }
            // The caller's deadline, not the replica's: uncounted.
            Err(ClientError::TimedOut { .. }) if by_caller => {
                drop(permit);
                replica.counts.deadline.bump();
                Err(KeyError::Deadline)
            }
            Ok(reply) if is_deadline_504(reply.status, &reply.headers) => {
                if by_caller {
                    drop(permit);
                    replica.counts.deadline.bump();
                    Err(KeyError::DeadlineRefused)
                } else {
                    permit.failure();
                    replica.counts.timed_out.bump();
                    Err(KeyError::CallTimeout)
                }
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
                if reply.status.is_server_error() {
                    permit.failure();
                    replica.counts.failed.bump();
                } else {
                    // 409: cancelled by its twin; the replica is fine.
                    permit.success();
                    replica.counts.ok.bump();
                }
                Err(KeyError::Status(reply.status.as_u16()))
            }
        }
    }
}

/// The replica a key's first copy goes to.
fn first_index(key: usize, offset: usize, n: usize) -> usize {
    (key + offset) % n
}
