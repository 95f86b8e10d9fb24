//! A replica's request queue: a fixed number of workers (or as many as there are requests) in
//! front of the work, and tied requests cancelled in it by their twin, over tailguard's
//! [`TiedQueue`].
//!
//! A request waits in the queue until a worker is free and the replica is not stalled. A
//! request tagged `tailguard-request-id: ID` can be cancelled while it waits with
//! `POST /cancel/ID`; one also tagged `tailguard-tied-to: ADDR/TWIN` is one copy of a tied
//! pair: when a worker starts it, the replica sends `POST /cancel/TWIN` to `ADDR` (in its own
//! task, within [`CANCEL_TIMEOUT`]: the worker never waits for it).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method};
use smol::channel::{Receiver, Sender};
use tailguard::tied::{Cancelled, Rejected, Tag, Ticket, TiedQueue, Twin};

use super::{Replica, Shared};
use crate::client::{ClientConfig, Limits, Pool};
use crate::metrics::Counter;

/// The header naming a request, so that it can be cancelled while queued (a decimal `u64`).
pub const REQUEST_ID: &str = "tailguard-request-id";
/// The header naming a request's twin: `ADDR/ID` (`127.0.0.1:9001/42`), cancelled at `ADDR`
/// when this copy starts.
pub const TIED_TO: &str = "tailguard-tied-to";
/// The most requests one replica queues; more are answered 503.
pub const QUEUE_LIMIT: usize = 4096;
/// How long a replica tries to deliver one cancel to a twin's replica.
pub const CANCEL_TIMEOUT: Duration = Duration::from_millis(250);
/// Twins' replicas the cancel sender keeps a connection pool for; others get a fresh one.
const MAX_CANCEL_POOLS: usize = 64;

pub(super) struct Queue {
    state: Mutex<State>,
    pub(super) cancels_sent: Counter,
    pub(super) cancel_failures: Counter,
    pub(super) cancels_received: Counter,
    pub(super) work_ns: AtomicU64,
}

struct State {
    tied: TiedQueue<Sender<()>, SocketAddr>,
    busy: usize,
    /// A wake-up at the end of the current stall is scheduled.
    waking: bool,
}

/// The queue's counters, for the stats and `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct QueueCounts {
    pub(super) queued: u64,
    pub(super) started: u64,
    pub(super) cancelled_in_queue: u64,
    pub(super) cancels_too_late: u64,
    pub(super) cancels_early: u64,
    pub(super) refused_cancelled: u64,
    pub(super) waiting: u64,
    pub(super) busy: u64,
}

impl Queue {
    pub(super) fn new() -> Queue {
        Queue {
            state: Mutex::new(State {
                tied: TiedQueue::new(QUEUE_LIMIT).expect("QUEUE_LIMIT is a valid capacity"),
                busy: 0,
                waking: false,
            }),
            cancels_sent: Counter::default(),
            cancel_failures: Counter::default(),
            cancels_received: Counter::default(),
            work_ns: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn counts(&self) -> QueueCounts {
        let state = self.lock();
        let stats = state.tied.stats();
        QueueCounts {
            queued: stats.queued,
            started: stats.started,
            cancelled_in_queue: stats.cancelled_in_queue,
            cancels_too_late: stats.cancels_too_late,
            cancels_early: stats.cancels_early,
            refused_cancelled: stats.refused_cancelled,
            waiting: state.tied.len() as u64,
            busy: state.busy as u64,
        }
    }

    /// A cancel arrived for `id`.
    pub(super) fn cancel(&self, id: u64) -> Cancelled<()> {
        self.cancels_received.bump();
        match self.lock().tied.cancel(id) {
            // Dropping the sender tells the waiting request it was cancelled.
            Cancelled::InQueue(_sender) => Cancelled::InQueue(()),
            Cancelled::TooLate => Cancelled::TooLate,
            Cancelled::NotHere => Cancelled::NotHere,
        }
    }
}

/// The tied-request headers of a request: `None` if it has none, an error (for a 400) if they
/// are malformed.
pub fn parse_tag(headers: &HeaderMap) -> Result<Option<Tag<SocketAddr>>, String> {
    let text = |name: &str| -> Result<Option<&str>, String> {
        match headers.get(name) {
            None => Ok(None),
            Some(value) => value
                .to_str()
                .map(|v| Some(v.trim()))
                .map_err(|_| format!("{name} is not text")),
        }
    };
    let id = match text(REQUEST_ID)? {
        None => None,
        Some(id) => Some(id.parse::<u64>().map_err(|_| {
            format!("{REQUEST_ID} must be a whole number (0 to 2^64 - 1), got `{id}`")
        })?),
    };
    let twin = match text(TIED_TO)? {
        None => None,
        Some(value) => Some(parse_twin(value)?),
    };
    match (id, twin) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(format!("{TIED_TO} needs a {REQUEST_ID} too")),
        (Some(id), twin) => Ok(Some(Tag { id, twin })),
    }
}

/// `127.0.0.1:9001/42`.
fn parse_twin(value: &str) -> Result<Twin<SocketAddr>, String> {
    let usage = || format!("{TIED_TO} must be ADDR/ID, like 127.0.0.1:9001/42, got `{value}`");
    let (addr, id) = value.rsplit_once('/').ok_or_else(usage)?;
    Ok(Twin {
        replica: addr.parse().map_err(|_| usage())?,
        id: id.parse().map_err(|_| usage())?,
    })
}

/// A queued request, waiting for a worker. Dropping it (the client went away) takes it out of
/// the queue.
pub(super) struct Waiting<'a> {
    shared: &'a Arc<Shared>,
    index: usize,
    ticket: Option<Ticket>,
    started: Receiver<()>,
}

/// A request a worker is serving; dropping it frees the worker and starts the next.
pub(super) struct Working<'a> {
    shared: &'a Arc<Shared>,
    index: usize,
    since: Instant,
}

/// Why a request did not get a worker.
pub(super) enum NotStarted {
    /// Refused on arrival: the queue is full, the id is here already, or it was cancelled.
    Refused(Rejected<()>),
    /// Cancelled while it waited, by its twin.
    Cancelled,
}

/// Queues a request arriving at `now` and starts what can start.
pub(super) fn enter(
    shared: &Arc<Shared>,
    index: usize,
    now: Instant,
    tag: Option<Tag<SocketAddr>>,
) -> Result<Waiting<'_>, NotStarted> {
    let (sender, started) = smol::channel::bounded(1);
    let pushed = shared.replicas[index]
        .queue
        .lock()
        .tied
        .push_at(now, sender, tag);
    let ticket = pushed.map_err(|rejected| {
        NotStarted::Refused(Rejected {
            reason: rejected.reason,
            item: (),
        })
    })?;
    dispatch(shared, index);
    Ok(Waiting {
        shared,
        index,
        ticket: Some(ticket),
        started,
    })
}

impl<'a> Waiting<'a> {
    /// Waits for a worker; `Err` if the twin cancelled this request first.
    pub(super) async fn started(mut self) -> Result<Working<'a>, NotStarted> {
        let result = self.started.recv().await;
        // Started or cancelled, it is out of the queue now.
        self.ticket = None;
        match result {
            Ok(()) => Ok(Working {
                shared: self.shared,
                index: self.index,
                since: Instant::now(),
            }),
            Err(_) => Err(NotStarted::Cancelled),
        }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            let queue = &self.shared.replicas[self.index].queue;
            let removed = queue.lock().tied.remove(ticket);
            if removed.is_none() {
                // Started as it was dropped: it holds a worker, release it.
                if self.started.try_recv().is_ok() {
                    release(self.shared, self.index);
                }
            }
        }
    }
}

impl Drop for Working<'_> {
    fn drop(&mut self) {
        let queue = &self.shared.replicas[self.index].queue;
        let worked = u64::try_from(self.since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        queue
            .work_ns
            .fetch_add(worked, std::sync::atomic::Ordering::Relaxed);
        release(self.shared, self.index);
    }
}

fn release(shared: &Arc<Shared>, index: usize) {
    {
        let mut state = shared.replicas[index].queue.lock();
        state.busy = state.busy.saturating_sub(1);
    }
    dispatch(shared, index);
}

/// Starts queued requests while workers are free and the replica is not stalled; during a
/// stall, schedules this again for its end.
fn dispatch(shared: &Arc<Shared>, index: usize) {
    let replica: &Replica = &shared.replicas[index];
    let now = Instant::now();
    let (workers, stalled_until) = replica.gate(now, shared.origin);
    let mut state = replica.queue.lock();
    if let Some(until) = stalled_until {
        if !state.tied.is_empty() && !state.waking {
            state.waking = true;
            let owned = shared.clone();
            let wake = async move {
                smol::Timer::at(until).await;
                owned.replicas[index].queue.lock().waking = false;
                dispatch(&owned, index);
            };
            shared.ex.spawn(wake).detach();
        }
        return;
    }
    while workers.is_none_or(|w| state.busy < w) {
        let Some(start) = state.tied.start_next_at(now) else {
            break;
        };
        if start.item.try_send(()).is_err() {
            continue; // its request is gone
        }
        state.busy += 1;
        if let (Some(twin), Some(_)) = (start.cancel_twin, start.id) {
            send_cancel(shared, index, twin);
        }
    }
}

/// Sends `POST /cancel/{id}` to the twin's replica in a task of its own, within
/// [`CANCEL_TIMEOUT`].
fn send_cancel(shared: &Arc<Shared>, index: usize, twin: Twin<SocketAddr>) {
    let pool = {
        let mut pools = shared
            .cancel_pools
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match pools.get(&twin.replica) {
            Some(pool) => pool.clone(),
            None => {
                let pool = Pool::new(twin.replica, cancel_client(), shared.ex.clone());
                if pools.len() < MAX_CANCEL_POOLS {
                    pools.insert(twin.replica, pool.clone());
                }
                pool
            }
        }
    };
    let shared2 = shared.clone();
    let send = async move {
        let limits = Limits {
            pool_wait: CANCEL_TIMEOUT,
            total: CANCEL_TIMEOUT,
        };
        let path = format!("/cancel/{}", twin.id);
        let queue = &shared2.replicas[index].queue;
        match pool
            .send_within(limits, Method::POST, &path, Bytes::new())
            .await
        {
            Ok(reply) if reply.status.is_success() => queue.cancels_sent.bump(),
            _ => queue.cancel_failures.bump(),
        }
    };
    shared.ex.spawn(send).detach();
}

fn cancel_client() -> ClientConfig {
    ClientConfig {
        connect_timeout: CANCEL_TIMEOUT,
        ..ClientConfig::default()
    }
}

/// Pools for sending cancels, by twin replica.
pub(super) type CancelPools = Mutex<HashMap<SocketAddr, Pool>>;
