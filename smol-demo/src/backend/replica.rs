//! One simulated replica: its listener's life through outages, its connections, its requests.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use event_listener::Event;
use futures_lite::future;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use smol::net::{TcpListener, TcpStream};
use smol_hyper::rt::{FuturesIo, SmolTimer};
use tailguard::shutdown::{ShutdownSignal, TaskTracker};
use tailguard::tied::{Cancelled, Refusal as QueueRefusal};
use tailguard::timeout::timeout_until;

use super::profile::{nanos, Profile, StallSchedule};
use super::queue::{self, NotStarted, Queue};
use super::{OutageMode, ReplicaStats, Shared};
use crate::metrics::{Counter, Kind, PromText};
use crate::respond::{text, with_type, Body};
use crate::rt::Exec;
use crate::wire_deadline::{admit_at, stopped, Reason, Refusal};

pub(super) struct Replica {
    index: usize,
    addr: SocketAddr,
    seed: u64,
    down: AtomicBool,
    changed: Event,
    behaviour: Mutex<Behaviour>,
    connections: Counter,
    requests: Counter,
    ok: Counter,
    errors: Counter,
    unavailable: Counter,
    stalled: Counter,
    deadline_refused: Counter,
    deadline_stopped: Counter,
    malformed: Counter,
    in_flight: AtomicU64,
    pub(super) queue: Queue,
}

struct Behaviour {
    profile: Profile,
    schedule: Option<StallSchedule>,
    rng: fastrand::Rng,
}

/// What happens to one request: when it is answered, and how.
struct Plan {
    /// The work itself, stalls aside: what the replica knows it will take.
    work: Duration,
    finish: Duration,
    stalled: bool,
    fail: bool,
}

impl Replica {
    pub(super) fn new(index: usize, addr: SocketAddr, profile: Profile, seed: u64) -> Self {
        let schedule = profile
            .stalls
            .map(|stalls| StallSchedule::new(stalls, seed, index));
        Replica {
            index,
            addr,
            seed,
            down: AtomicBool::new(false),
            changed: Event::new(),
            behaviour: Mutex::new(Behaviour {
                profile,
                schedule,
                rng: fastrand::Rng::with_seed(
                    seed.wrapping_mul(0x9e37_79b9).wrapping_add(index as u64),
                ),
            }),
            connections: Counter::default(),
            requests: Counter::default(),
            ok: Counter::default(),
            errors: Counter::default(),
            unavailable: Counter::default(),
            stalled: Counter::default(),
            deadline_refused: Counter::default(),
            deadline_stopped: Counter::default(),
            malformed: Counter::default(),
            in_flight: AtomicU64::new(0),
            queue: Queue::new(),
        }
    }

    pub(super) fn set_down(&self, down: bool) {
        if self.down.swap(down, Ordering::SeqCst) != down {
            self.changed.notify(usize::MAX);
        }
    }

    pub(super) fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    pub(super) fn set_profile(&self, profile: Profile) {
        let mut behaviour = self.behaviour.lock().unwrap_or_else(|e| e.into_inner());
        behaviour.schedule = profile
            .stalls
            .map(|stalls| StallSchedule::new(stalls, self.seed, self.index));
        behaviour.profile = profile;
    }

    pub(super) fn stats(&self) -> ReplicaStats {
        let q = self.queue.counts();
        ReplicaStats {
            replica: self.index,
            down: self.is_down(),
            connections: self.connections.get(),
            requests: self.requests.get(),
            ok: self.ok.get(),
            errors: self.errors.get(),
            unavailable: self.unavailable.get(),
            stalled: self.stalled.get(),
            deadline_refused: self.deadline_refused.get(),
            deadline_stopped: self.deadline_stopped.get(),
            malformed: self.malformed.get(),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            queued: q.queued,
            started: q.started,
            cancelled_in_queue: q.cancelled_in_queue,
            cancels_received: self.queue.cancels_received.get(),
            cancels_too_late: q.cancels_too_late,
            cancels_early: q.cancels_early,
            refused_cancelled: q.refused_cancelled,
            cancels_sent: self.queue.cancels_sent.get(),
            cancel_failures: self.queue.cancel_failures.get(),
            work_us: self.queue.work_ns.load(Ordering::Relaxed) / 1000,
        }
    }

    /// The workers (`None`: one per request) and, if the replica is stalled at `now`, when the
    /// stall ends: no request starts before then.
    pub(super) fn gate(&self, now: Instant, origin: Instant) -> (Option<usize>, Option<Instant>) {
        let b = self.behaviour.lock().unwrap_or_else(|e| e.into_inner());
        let stalled_until = b.schedule.and_then(|schedule| {
            let at = nanos(now.saturating_duration_since(origin));
            let free = schedule.finish(at, 0);
            (free > at).then(|| origin + Duration::from_nanos(free))
        });
        (b.profile.workers, stalled_until)
    }

    /// Waits until the replica is down (`true`) or up (`false`).
    async fn wait_until(&self, down: bool) {
        loop {
            if self.is_down() == down {
                return;
            }
            let listener = self.changed.listen();
            if self.is_down() == down {
                return;
            }
            listener.await;
        }
    }

    fn capacity(&self) -> Option<usize> {
        self.behaviour
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .profile
            .capacity
    }

    /// Draws the service time of a request that arrived `arrival` after the origin and
    /// started (left the queue) at `start`: it is stalled if a stall held it in the queue or
    /// froze it in service.
    fn plan(&self, arrival: Duration, start: Duration) -> Plan {
        let mut guard = self.behaviour.lock().unwrap_or_else(|e| e.into_inner());
        let b = &mut *guard;
        let work = b.profile.latency.sample(&mut b.rng);
        let fail = b.profile.error_rate > 0.0 && b.rng.f64() < b.profile.error_rate;
        let finish = match b.schedule {
            None => start + work,
            Some(schedule) => Duration::from_nanos(schedule.finish(nanos(start), nanos(work))),
        };
        let held = match b.schedule {
            None => false,
            Some(schedule) => schedule.finish(nanos(arrival), 0) > nanos(arrival),
        };
        Plan {
            work,
            stalled: held || finish > start + work,
            finish,
            fail,
        }
    }
}

/// Serves replica `index` until `stop`: accepts while up; in [`OutageMode::Refuse`], closes the
/// listener and drops every connection while down, and binds the same port again when back.
pub(super) async fn run(
    shared: Arc<Shared>,
    index: usize,
    listener: TcpListener,
    ex: Exec,
    stop: ShutdownSignal,
    tasks: TaskTracker,
) {
    let replica = &shared.replicas[index];
    let mut listener = Some(listener);
    loop {
        let bound = match listener.take() {
            Some(bound) => bound,
            None => match rebind(replica, &stop).await {
                Some(bound) => bound,
                None => return,
            },
        };
        // This up period's connections end with it (or with the whole backend).
        let period = stop.child();
        enum Next {
            Accepted(io::Result<(TcpStream, SocketAddr)>),
            Down,
            Stop,
        }
        loop {
            let next = future::or(
                async { Next::Accepted(bound.accept().await) },
                future::or(
                    async {
                        match shared.mode {
                            OutageMode::Refuse => replica.wait_until(true).await,
                            OutageMode::Unavailable => future::pending::<()>().await,
                        }
                        Next::Down
                    },
                    async {
                        stop.clone().await;
                        Next::Stop
                    },
                ),
            )
            .await;
            match next {
                Next::Accepted(Ok((stream, _))) => {
                    let _ = stream.set_nodelay(true);
                    replica.connections.bump();
                    let connection = serve_connection(shared.clone(), index, stream);
                    let ends = period.signal();
                    ex.spawn(tasks.track_future(future::or(connection, ends)))
                        .detach();
                }
                Next::Accepted(Err(_)) => {
                    smol::Timer::after(Duration::from_millis(20)).await;
                }
                Next::Down => break,
                Next::Stop => return,
            }
        }
        drop(bound);
        period.trigger();
    }
}

/// Waits until the replica is up again and binds its port; `None` on stop.
async fn rebind(replica: &Replica, stop: &ShutdownSignal) -> Option<TcpListener> {
    let up_and_bound = async {
        replica.wait_until(false).await;
        let mut logged = false;
        loop {
            match TcpListener::bind(replica.addr).await {
                Ok(listener) => return listener,
                Err(error) => {
                    if !logged {
                        crate::server::log(format_args!(
                            "replica {} cannot listen on {} again ({error}); retrying every 100ms",
                            replica.index, replica.addr
                        ));
                        logged = true;
                    }
                    smol::Timer::after(Duration::from_millis(100)).await;
                }
            }
        }
    };
    future::or(async { Some(up_and_bound.await) }, async {
        stop.clone().await;
        None
    })
    .await
}

async fn serve_connection(shared: Arc<Shared>, index: usize, stream: TcpStream) {
    let service = service_fn(move |request| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(handle(&shared, index, request).await) }
    });
    let _ = http1::Builder::new()
        .timer(SmolTimer::new())
        .keep_alive(true)
        .serve_connection(FuturesIo::new(stream), service)
        .await;
}

/// Counts a request in service for as long as it lives.
struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn handle(shared: &Arc<Shared>, index: usize, request: Request<Incoming>) -> Response<Body> {
    let replica = &shared.replicas[index];
    let path = request.uri().path();
    if path == "/healthz" {
        return if replica.is_down() {
            text(StatusCode::SERVICE_UNAVAILABLE, "down\n")
        } else {
            text(StatusCode::OK, "ok\n")
        };
    }
    if path == "/metrics" {
        return metrics(replica);
    }
    if let Some(id) = path.strip_prefix("/cancel/") {
        return cancel(replica, request.method(), id);
    }
    replica.requests.bump();
    if replica.is_down() {
        replica.unavailable.bump();
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("replica {index} is down\n"),
        );
    }
    // The caller's deadline: a malformed header or one already passed is refused before
    // anything else.
    let arrival = Instant::now();
    let deadline = match admit_at(request.headers(), arrival, Duration::ZERO) {
        Ok(deadline) => deadline,
        Err(refusal) => return refused(replica, index, refusal),
    };
    let tag = match queue::parse_tag(request.headers()) {
        Ok(tag) => tag,
        Err(message) => return text(StatusCode::BAD_REQUEST, format!("{message}\n")),
    };
    let in_flight = replica.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
    let _guard = InFlight(&replica.in_flight);
    if let Some(capacity) = replica.capacity() {
        if in_flight > capacity as u64 {
            replica.unavailable.bump();
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("replica {index} is over capacity ({capacity} requests at once)\n"),
            );
        }
    }
    let started = match queue::enter(shared, index, arrival, tag) {
        // The wait for a worker ends at the caller's deadline too.
        Ok(waiting) => match deadline {
            None => waiting.started().await,
            Some(deadline) => match timeout_until(deadline.instant(), waiting.started()).await {
                Ok(started) => started,
                Err(_) => {
                    replica.deadline_stopped.bump();
                    return tagged(stopped(arrival.elapsed()), index);
                }
            },
        },
        Err(refused) => Err(refused),
    };
    let _worker = match started {
        Ok(worker) => worker,
        Err(NotStarted::Cancelled) => {
            return text(
                StatusCode::CONFLICT,
                format!("replica {index}: cancelled in the queue by its twin\n"),
            )
        }
        Err(NotStarted::Refused(rejected)) => {
            let status = match rejected.reason {
                QueueRefusal::Full { .. } => {
                    replica.unavailable.bump();
                    StatusCode::SERVICE_UNAVAILABLE
                }
                QueueRefusal::DuplicateId(_) | QueueRefusal::Cancelled(_) => StatusCode::CONFLICT,
            };
            return text(status, format!("replica {index}: {rejected}\n"));
        }
    };
    let start = Instant::now();
    let plan = replica.plan(
        arrival.saturating_duration_since(shared.origin),
        start.saturating_duration_since(shared.origin),
    );
    // Work longer than the caller has left (after the wait for a worker) is refused at once:
    // the replica knows what its work takes (the draw), though not that a stall may come and
    // stretch it.
    if let Some(deadline) = deadline {
        let left = deadline.instant().saturating_duration_since(start);
        if left < plan.work {
            return refused(replica, index, Refusal::too_short(left, plan.work));
        }
    }
    if plan.stalled {
        replica.stalled.bump();
    }
    let finish = shared.origin + plan.finish;
    if let Some(deadline) = deadline.filter(|d| d.instant() < finish) {
        // A stall would take the work past the caller's deadline: stop there.
        smol::Timer::at(deadline.instant()).await;
        replica.deadline_stopped.bump();
        return tagged(stopped(arrival.elapsed()), index);
    }
    smol::Timer::at(finish).await;
    let response = if plan.fail {
        replica.errors.bump();
        text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("replica {index} failed (simulated error)\n"),
        )
    } else {
        replica.ok.bump();
        text(StatusCode::OK, format!("{path} from replica {index}"))
    };
    tagged(response, index)
}

/// `response` with the `x-replica` header.
fn tagged(mut response: Response<Body>, index: usize) -> Response<Body> {
    response
        .headers_mut()
        .insert("x-replica", HeaderValue::from(index));
    response
}

/// Counts a request refused for its deadline, and answers it.
fn refused(replica: &Replica, index: usize, refusal: Refusal) -> Response<Body> {
    match refusal.reason {
        Reason::Malformed => replica.malformed.bump(),
        Reason::Expired | Reason::TooShort => replica.deadline_refused.bump(),
    }
    tagged(refusal.into_response(), index)
}

/// `POST /cancel/{id}`: cancels request `id` if it is still queued; says what it found in the
/// body and the `tailguard-cancel` header (`in-queue`, `too-late`, `not-here`).
fn cancel(replica: &Replica, method: &Method, id: &str) -> Response<Body> {
    if method != Method::POST {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "POST /cancel/{id} cancels a queued request\n",
        );
    }
    let Ok(id) = id.parse::<u64>() else {
        return text(
            StatusCode::BAD_REQUEST,
            format!("`{id}` is not a request id (a whole number, 0 to 2^64 - 1)\n"),
        );
    };
    let (found, body) = match replica.queue.cancel(id) {
        Cancelled::InQueue(()) => ("in-queue", "cancelled while queued\n"),
        Cancelled::TooLate => ("too-late", "already started: it runs\n"),
        Cancelled::NotHere => ("not-here", "not here: refused if it arrives\n"),
    };
    let mut response = text(StatusCode::OK, body);
    response
        .headers_mut()
        .insert("tailguard-cancel", HeaderValue::from_static(found));
    response
}

/// `GET /metrics`: the replica's counters in the Prometheus text format.
fn metrics(replica: &Replica) -> Response<Body> {
    let stats = replica.stats();
    let mut out = PromText::new();
    let counters: [(&str, &str, u64); 14] = [
        (
            "tailguard_backend_requests_total",
            "Requests received.",
            stats.requests,
        ),
        (
            "tailguard_backend_deadline_refusals_total",
            "Requests answered 504 at once for the caller's deadline (tailguard-timeout): passed, or shorter than the work.",
            stats.deadline_refused,
        ),
        (
            "tailguard_backend_deadline_stopped_total",
            "Requests answered 504 when the caller's deadline passed while they waited or stalled.",
            stats.deadline_stopped,
        ),
        (
            "tailguard_backend_deadline_malformed_total",
            "Requests answered 400 for a malformed or repeated tailguard-timeout header.",
            stats.malformed,
        ),
        (
            "tailguard_backend_queued_total",
            "Requests that entered the queue.",
            stats.queued,
        ),
        (
            "tailguard_backend_started_total",
            "Requests a worker started.",
            stats.started,
        ),
        (
            "tailguard_backend_cancelled_in_queue_total",
            "Requests cancelled by their twin while queued.",
            stats.cancelled_in_queue,
        ),
        (
            "tailguard_backend_cancels_received_total",
            "Cancels received.",
            stats.cancels_received,
        ),
        (
            "tailguard_backend_cancels_too_late_total",
            "Cancels received after their request started.",
            stats.cancels_too_late,
        ),
        (
            "tailguard_backend_cancels_early_total",
            "Cancels received before their request.",
            stats.cancels_early,
        ),
        (
            "tailguard_backend_cancels_sent_total",
            "Cancels sent to a twin's replica and acknowledged.",
            stats.cancels_sent,
        ),
        (
            "tailguard_backend_cancel_failures_total",
            "Cancels not delivered within the timeout.",
            stats.cancel_failures,
        ),
        (
            "tailguard_backend_ok_total",
            "Requests answered 200.",
            stats.ok,
        ),
        (
            "tailguard_backend_errors_total",
            "Requests answered 500.",
            stats.errors,
        ),
    ];
    for (name, help, value) in counters {
        out.single(name, Kind::Counter, help, value as f64);
    }
    let q = replica.queue.counts();
    out.single(
        "tailguard_backend_queue_length",
        Kind::Gauge,
        "Requests waiting for a worker.",
        q.waiting as f64,
    );
    out.single(
        "tailguard_backend_busy_workers",
        Kind::Gauge,
        "Requests in service.",
        q.busy as f64,
    );
    with_type(
        StatusCode::OK,
        out.finish().into(),
        "text/plain; version=0.0.4; charset=utf-8",
    )
}
