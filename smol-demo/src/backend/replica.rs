//! One simulated replica: its listener's life through outages, its connections, its requests.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use event_listener::Event;
use futures_lite::future;
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use smol::net::{TcpListener, TcpStream};
use smol_hyper::rt::{FuturesIo, SmolTimer};
use tailguard::shutdown::{ShutdownSignal, TaskTracker};

use super::profile::{nanos, Profile, StallSchedule};
use super::{OutageMode, ReplicaStats, Shared};
use crate::metrics::Counter;
use crate::respond::{text, Body};
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
        }
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

    /// Draws the service time of a request arriving `arrival` after the origin.
    fn plan(&self, arrival: Duration) -> Plan {
        let mut guard = self.behaviour.lock().unwrap_or_else(|e| e.into_inner());
        let b = &mut *guard;
        let work = b.profile.latency.sample(&mut b.rng);
        let fail = b.profile.error_rate > 0.0 && b.rng.f64() < b.profile.error_rate;
        let finish = match b.schedule {
            None => arrival + work,
            Some(schedule) => Duration::from_nanos(schedule.finish(nanos(arrival), nanos(work))),
        };
        Plan {
            work,
            stalled: finish > arrival + work,
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

async fn handle(shared: &Shared, index: usize, request: Request<Incoming>) -> Response<Body> {
    let replica = &shared.replicas[index];
    let path = request.uri().path();
    if path == "/healthz" {
        return if replica.is_down() {
            text(StatusCode::SERVICE_UNAVAILABLE, "down\n")
        } else {
            text(StatusCode::OK, "ok\n")
        };
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
    let plan = replica.plan(arrival.saturating_duration_since(shared.origin));
    // Work longer than the caller has left is refused at once: the replica knows what its work
    // takes (the draw), though not that a stall may come and stretch it.
    if deadline.is_some() {
        if let Err(refusal) = admit_at(request.headers(), arrival, plan.work) {
            return refused(replica, index, refusal);
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
