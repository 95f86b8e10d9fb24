//! The overload experiment over real HTTP on 127.0.0.1: a backend with `servers` workers (a FIFO
//! semaphore) each taking about `service` per request, behind the mode's admission limit in
//! the backend itself (server-side admission: a shed request is answered 503 at once), offered
//! Poisson load by an open-loop client whose every request carries its criticality
//! (`?class=`) and gives up at its deadline.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_lite::future;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use smol::lock::Semaphore;
use smol::net::TcpListener;
use smol_hyper::rt::{FuturesIo, SmolTimer};
use tailguard::limit::AdaptiveLimiter;
use tailguard::priority::Criticality;
use tailguard::shutdown::Shutdown;

use super::sim::{SimConfig, MIX};
use super::{Mode, Point, Report};
use crate::client::{ClientConfig, Limits, Pool};
use crate::experiment::ExperimentError;
use crate::respond::{query_param, text, Body};
use crate::rt::Exec;

struct Backend {
    servers: Semaphore,
    service: Duration,
    limiter: Option<AdaptiveLimiter>,
}

async fn handle(backend: &Backend, request: Request<Incoming>) -> Response<Body> {
    let class = query_param(request.uri().query(), "class")
        .and_then(|c| c.parse().ok())
        .unwrap_or(Criticality::Default);
    let permit = match &backend.limiter {
        None => None,
        Some(limiter) => match limiter.try_acquire_class_at(class, Instant::now()) {
            Ok(permit) => Some(permit),
            Err(rejected) => {
                return text(StatusCode::SERVICE_UNAVAILABLE, format!("{rejected}\n"));
            }
        },
    };
    {
        let _worker = backend.servers.acquire().await;
        let service = backend
            .service
            .mul_f64(0.5 + 0.5 * -(1.0 - fastrand::f64()).ln());
        smol::Timer::after(service).await;
    }
    if let Some(permit) = permit {
        permit.success_at(Instant::now());
    }
    text(StatusCode::OK, "done\n")
}

async fn start_backend(
    backend: Arc<Backend>,
    ex: &Exec,
    stop: &Shutdown,
) -> Result<SocketAddr, ExperimentError> {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(ExperimentError::Io)?;
    let addr = listener.local_addr().map_err(ExperimentError::Io)?;
    let (ex2, signal) = (ex.clone(), stop.signal());
    ex.spawn(future::or(
        async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    smol::Timer::after(Duration::from_millis(5)).await;
                    continue;
                };
                let backend = backend.clone();
                let service = service_fn(move |request| {
                    let backend = backend.clone();
                    async move { Ok::<_, Infallible>(handle(&backend, request).await) }
                });
                let connection = async move {
                    let _ = http1::Builder::new()
                        .timer(SmolTimer::new())
                        .serve_connection(FuturesIo::new(stream), service)
                        .await;
                };
                ex2.spawn(future::or(connection, signal.clone())).detach();
            }
        },
        stop.signal(),
    ))
    .detach();
    Ok(addr)
}

#[derive(Default)]
struct Tally {
    offered: [u64; 3],
    good: [u64; 3],
    rejected: u64,
    latencies: Vec<u64>,
}

/// One mode at one load, live.
async fn run_one(
    config: &SimConfig,
    mode: Mode,
    load: f64,
    ex: &Exec,
) -> Result<Point, ExperimentError> {
    let stop = Shutdown::new();
    let backend = Arc::new(Backend {
        servers: Semaphore::new(config.servers as usize),
        service: config.service,
        limiter: config.limiter(mode),
    });
    let addr = start_backend(backend, ex, &stop).await?;
    let pool = Pool::new(
        addr,
        ClientConfig {
            max_idle: 512,
            ..ClientConfig::default()
        },
        ex.clone(),
    );
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut rng = fastrand::Rng::with_seed(config.seed);
    let rate = config.capacity() * load;
    let start = Instant::now() + Duration::from_millis(50);
    let end = start + config.duration;
    let mut due = start;
    let mut tasks = Vec::new();
    loop {
        due += Duration::from_secs_f64(-(1.0 - rng.f64()).ln() / rate);
        if due >= end {
            break;
        }
        let u = rng.f64();
        let class = if u < MIX[0] {
            Criticality::Sheddable
        } else if u < MIX[0] + MIX[1] {
            Criticality::Default
        } else {
            Criticality::Critical
        };
        let (pool, tally, deadline) = (pool.clone(), tally.clone(), config.deadline);
        tasks.push(ex.spawn(async move {
            smol::Timer::at(due).await;
            let limits = Limits {
                pool_wait: deadline,
                total: deadline,
            };
            let path = format!("/work?class={class}");
            let result = pool.get_within(&path, limits).await;
            let latency = due.elapsed();
            let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
            t.offered[class.index()] += 1;
            match result {
                Ok(reply) if reply.status == StatusCode::SERVICE_UNAVAILABLE => t.rejected += 1,
                Ok(reply) if reply.status == StatusCode::OK => {
                    if latency <= deadline {
                        t.good[class.index()] += 1;
                    }
                    t.latencies.push(latency.as_nanos() as u64);
                }
                // Timed out (admitted, answered too late) or failed: no goodput.
                _ => t.latencies.push(latency.max(deadline).as_nanos() as u64),
            }
        }));
    }
    for task in tasks {
        task.await;
    }
    stop.trigger();
    let tally = std::mem::take(&mut *tally.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(Point::from_tally(
        tally.offered,
        tally.good,
        tally.rejected,
        tally.latencies,
        config.duration.as_secs_f64(),
    ))
}

/// Every mode at every load, live (no recovery run: that is the simulation's).
pub async fn run(config: &SimConfig, ex: &Exec) -> Result<Report, ExperimentError> {
    let done = Mutex::new(Vec::new());
    run_recording(config, ex, &done).await
}

/// As [`run`], pushing each mode's row onto `done` as it finishes (modes in [`Mode::ALL`]
/// order), so that an interrupted run can still report the modes it finished.
pub async fn run_recording(
    config: &SimConfig,
    ex: &Exec,
    done: &Mutex<Vec<Vec<Point>>>,
) -> Result<Report, ExperimentError> {
    for mode in Mode::ALL {
        let mut row = Vec::new();
        for &load in &config.loads {
            row.push(run_one(config, mode, load, ex).await?);
        }
        done.lock().unwrap_or_else(|e| e.into_inner()).push(row);
    }
    let points = std::mem::take(&mut *done.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(report(config, points))
}

/// A report of the rows measured so far.
pub fn report(config: &SimConfig, points: Vec<Vec<Point>>) -> Report {
    Report {
        loads: config.loads.clone(),
        capacity: config.capacity(),
        points,
        recovery: None,
    }
}
