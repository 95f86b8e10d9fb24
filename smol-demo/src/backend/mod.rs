//! Simulated replicas: a latency profile, stalls, errors and outages, over real HTTP.
//!
//! [`Backends::start`] starts N replicas in one process, replica `i` on port `base_port + i`
//! (or any free port with `base_port` 0), each an HTTP/1 server on the given executor. Every
//! request (any `GET` path; `/healthz` excepted) is answered after a service time:
//!
//! 1. a **base latency** drawn from the replica's [`LatencyDist`] (fixed, exponential or
//!    log-normal);
//! 2. stretched by **stalls** ([`Stalls`]): about every `every` the replica pauses for about
//!    `length`, like a garbage collector, and does no work; a request arriving during a stall
//!    waits for its end, and one in service when it starts is paused until it ends;
//! 3. then answered `200` with the body `"{path} from replica {i}"` and an `x-replica: {i}`
//!    header, or `500` with probability `error_rate`.
//!
//! A request may carry its caller's deadline in the `tailguard-timeout` header (see
//! [`wire_deadline`](crate::wire_deadline)). A replica answers `400` to a malformed one, and
//! `504` at once, without doing the work, when the deadline has passed or is nearer than the
//! request's drawn base latency (a replica knows what its work takes, not that a stall will
//! stretch it); a request a stall would take past the deadline is answered `504` at the
//! deadline. [`ReplicaStats`] counts them (`deadline_refused`, `deadline_stopped`,
//! `malformed`).
//!
//! With a `capacity`, a replica serving that many requests answers more with `503` at once.
//!
//! Every request waits in the replica's **queue** (tailguard's
//! [`TiedQueue`](tailguard::tied::TiedQueue), at most [`QUEUE_LIMIT`]) until one of its
//! `workers` is free ([`Profile::workers`]; by default one per request) and the replica is not
//! stalled. **Tied requests**: a request with a `tailguard-request-id: ID` header ([`REQUEST_ID`])
//! can be cancelled while it waits by `POST /cancel/ID`, which answers 200 with a
//! `tailguard-cancel` header: `in-queue` (removed; the request is answered 409), `too-late` (it
//! started) or `not-here` (remembered: the request is refused with 409 if it arrives). With
//! `tailguard-tied-to: ADDR/TWIN` too ([`TIED_TO`]) it is one copy of a tied pair: when a worker
//! starts it, the replica sends `POST /cancel/TWIN` to `ADDR` in a task of its own, within
//! [`CANCEL_TIMEOUT`]. A malformed header is answered 400. `GET /metrics` gives the replica's
//! counters in the Prometheus text format.
//!
//! Everything random comes from the seed: each replica has its own seeded generator for
//! latency and errors, and its stall schedule is a function of the seed, its index and the
//! time since the start. (Concurrent requests draw from a replica's generator in arrival
//! order, so the same seed gives the same sequence of draws, not necessarily to the same
//! requests.)
//!
//! A replica can be **down**: by a scheduled [`Outage`], or by hand with
//! [`Backends::set_down`] or the control endpoint. What a down replica does is the
//! [`OutageMode`]: `Refuse` (default) closes its listener and drops its open connections, like
//! a crashed process, and listens on the same port again when it comes back; `Unavailable`
//! answers every request `503` at once.
//!
//! The **control endpoint** (on `base_port + N`, or any free port) serves `GET /replicas` (the
//! state and counters of every replica, as JSON) and `POST /replicas/{i}/down` and
//! `POST /replicas/{i}/up`.
//!
//! ```
//! use tailguard_demo::backend::{BackendConfig, Backends, Profile};
//! use tailguard_demo::rt::Runtime;
//!
//! let rt = Runtime::new(2.try_into().unwrap());
//! let backends = rt
//!     .block_on(Backends::start(BackendConfig::uniform(3, Profile::default()), rt.executor()))
//!     .unwrap();
//! println!("replicas on {:?}", backends.addrs());
//! backends.set_down(1, true).unwrap(); // replica 1 now refuses connections
//! assert!(backends.is_down(1).unwrap());
//! rt.block_on(backends.stop());
//! ```

pub mod command;
mod config;
mod control;
mod profile;
mod queue;
mod replica;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tailguard::shutdown::{Shutdown, TaskTracker};

pub use self::config::{BackendConfig, Outage, OutageMode, MAX_REPLICAS};
pub(crate) use self::profile::{mix, nanos};
pub use self::profile::{LatencyDist, Profile, StallSchedule, Stalls, MAX_SAMPLE};
pub use self::queue::{parse_tag, CANCEL_TIMEOUT, QUEUE_LIMIT, REQUEST_ID, TIED_TO};
use self::replica::Replica;
use crate::rt::Exec;

/// Running replicas. Dropping the handle stops them too, without waiting.
pub struct Backends {
    shared: Arc<Shared>,
    addrs: Vec<SocketAddr>,
    control_addr: Option<SocketAddr>,
    stop: Shutdown,
    tasks: TaskTracker,
}

struct Shared {
    origin: Instant,
    mode: OutageMode,
    replicas: Vec<Replica>,
    /// Runs the replicas' own tasks: cancels sent to twins, wake-ups at the end of stalls.
    ex: Exec,
    cancel_pools: queue::CancelPools,
}

/// What one replica has done, from [`Backends::stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ReplicaStats {
    /// The replica's index.
    pub replica: usize,
    /// Whether it is down now.
    pub down: bool,
    /// Connections accepted.
    pub connections: u64,
    /// Requests received.
    pub requests: u64,
    /// Answered 200.
    pub ok: u64,
    /// Answered 500 (the error rate).
    pub errors: u64,
    /// Answered 503 (down, or over capacity).
    pub unavailable: u64,
    /// Requests whose service was stretched by a stall.
    pub stalled: u64,
    /// Answered 504 at once, nothing done: the caller's deadline (`tailguard-timeout`) had
    /// passed, or left less time than the request's work.
    pub deadline_refused: u64,
    /// Answered 504 when the caller's deadline passed during a stall (the work was stopped).
    pub deadline_stopped: u64,
    /// Answered 400: a malformed or repeated `tailguard-timeout` header.
    pub malformed: u64,
    /// Requests in service or queued now.
    pub in_flight: u64,
    /// Requests that entered the queue.
    pub queued: u64,
    /// Requests a worker started.
    pub started: u64,
    /// Requests cancelled by their twin while they waited in the queue.
    pub cancelled_in_queue: u64,
    /// Cancels received (`POST /cancel/{id}`).
    pub cancels_received: u64,
    /// Cancels received after their request had started (both copies ran).
    pub cancels_too_late: u64,
    /// Cancels received before their request (which is refused when it arrives).
    pub cancels_early: u64,
    /// Copies refused on arrival because their twin had cancelled them already.
    pub refused_cancelled: u64,
    /// Cancels sent to a twin's replica and acknowledged.
    pub cancels_sent: u64,
    /// Cancels that could not be delivered within the timeout.
    pub cancel_failures: u64,
    /// Time workers spent on requests, in microseconds (stalls included).
    pub work_us: u64,
}

/// A replica index that does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoSuchReplica {
    /// The index asked for.
    pub replica: usize,
    /// How many replicas there are.
    pub replicas: usize,
}

impl fmt::Display for NoSuchReplica {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "there is no replica {}: replicas are numbered 0 to {}",
            self.replica,
            self.replicas.saturating_sub(1)
        )
    }
}

impl std::error::Error for NoSuchReplica {}

/// `error` from binding `listener` on `host:port`, saying which listener and which port.
fn bind_error(error: io::Error, listener: &str, host: std::net::IpAddr, port: u16) -> io::Error {
    let why = if error.kind() == io::ErrorKind::AddrInUse {
        format!("port {port} is already in use")
    } else {
        error.to_string()
    };
    io::Error::new(
        error.kind(),
        format!("{listener} cannot listen on {host}:{port}: {why}"),
    )
}

impl Backends {
    /// Validates `config`, binds every replica (and the control endpoint), and starts serving
    /// on `ex`. Scheduled outages count from now.
    pub async fn start(config: BackendConfig, ex: &Exec) -> io::Result<Backends> {
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let n = config.replicas();
        let mut listeners = Vec::with_capacity(n);
        let mut addrs = Vec::with_capacity(n);
        for i in 0..n {
            let port = if config.base_port == 0 {
                0
            } else {
                config.base_port + i as u16
            };
            let listener = smol::net::TcpListener::bind((config.host, port))
                .await
                .map_err(|e| bind_error(e, &format!("replica {i}"), config.host, port))?;
            addrs.push(listener.local_addr()?);
            listeners.push(listener);
        }
        let control = if config.control {
            let port = if config.base_port == 0 {
                0
            } else {
                config.base_port + n as u16
            };
            Some(
                smol::net::TcpListener::bind((config.host, port))
                    .await
                    .map_err(|e| bind_error(e, "the control endpoint", config.host, port))?,
            )
        } else {
            None
        };
        let control_addr = control.as_ref().map(|l| l.local_addr()).transpose()?;

        let shared = Arc::new(Shared {
            origin: Instant::now(),
            mode: config.outage_mode,
            replicas: config
                .profiles
                .iter()
                .enumerate()
                .map(|(i, profile)| Replica::new(i, addrs[i], profile.clone(), config.seed))
                .collect(),
            ex: ex.clone(),
            cancel_pools: Default::default(),
        });
        let stop = Shutdown::new();
        let tasks = TaskTracker::new();
        for (i, listener) in listeners.into_iter().enumerate() {
            let run = replica::run(
                shared.clone(),
                i,
                listener,
                ex.clone(),
                stop.signal(),
                tasks.clone(),
            );
            ex.spawn(tasks.track_future(run)).detach();
        }
        for outage in config.outages.iter().copied() {
            let shared = shared.clone();
            let stop = stop.signal();
            let scheduled = async move {
                smol::Timer::at(shared.origin + outage.from).await;
                shared.replicas[outage.replica].set_down(true);
                smol::Timer::at(shared.origin + outage.to).await;
                shared.replicas[outage.replica].set_down(false);
            };
            ex.spawn(tasks.track_future(futures_lite::future::or(scheduled, stop)))
                .detach();
        }
        if let Some(listener) = control {
            let run = control::run(
                shared.clone(),
                listener,
                ex.clone(),
                stop.signal(),
                tasks.clone(),
            );
            ex.spawn(tasks.track_future(run)).detach();
        }
        Ok(Backends {
            shared,
            addrs,
            control_addr,
            stop,
            tasks,
        })
    }

    /// Where the replicas listen, by index.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Where the control endpoint listens, if it was asked for.
    pub fn control_addr(&self) -> Option<SocketAddr> {
        self.control_addr
    }

    /// When the backends started; scheduled outages count from here.
    pub fn origin(&self) -> Instant {
        self.shared.origin
    }

    /// Takes replica `replica` down (`true`) or brings it back (`false`).
    pub fn set_down(&self, replica: usize, down: bool) -> Result<(), NoSuchReplica> {
        self.shared.replica(replica)?.set_down(down);
        Ok(())
    }

    /// Whether replica `replica` is down.
    pub fn is_down(&self, replica: usize) -> Result<bool, NoSuchReplica> {
        Ok(self.shared.replica(replica)?.is_down())
    }

    /// Replaces replica `replica`'s profile (latency, stalls, errors, capacity) from now on.
    pub fn set_profile(&self, replica: usize, profile: Profile) -> io::Result<()> {
        profile
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        self.shared
            .replica(replica)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?
            .set_profile(profile);
        Ok(())
    }

    /// The counters of every replica.
    pub fn stats(&self) -> Vec<ReplicaStats> {
        self.shared.replicas.iter().map(Replica::stats).collect()
    }

    /// Stops every replica and the control endpoint: listeners close and open connections are
    /// dropped (calls in flight fail). Waits up to a second for the tasks to end.
    pub async fn stop(self) {
        self.stop.trigger();
        let _ = self.tasks.graceful(Duration::from_secs(1)).await;
    }
}

impl Drop for Backends {
    fn drop(&mut self) {
        self.stop.trigger();
    }
}

impl fmt::Debug for Backends {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backends")
            .field("addrs", &self.addrs)
            .field("control_addr", &self.control_addr)
            .field("mode", &self.shared.mode)
            .finish()
    }
}

impl Shared {
    fn replica(&self, replica: usize) -> Result<&Replica, NoSuchReplica> {
        self.replicas.get(replica).ok_or(NoSuchReplica {
            replica,
            replicas: self.replicas.len(),
        })
    }
}
