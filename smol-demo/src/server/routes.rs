//! The routes: the talk's hello handler, a body echo with per-chunk and total read limits, a slow
//! endpoint for watching shutdown at work, a health check, and with a gateway the fan-out and
//! the metrics.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{header, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Body as _;
use hyper::body::Incoming;
use tailguard::limit::{AdaptiveLimiter, Permit};
use tailguard::shutdown::ShutdownSignal;
use tailguard::timeout::{timeout_until, Deadline};

use super::admission;
use super::checks::{
    allowing, host_problem, is_known, other_form, unknown_coding, ALLOW_GET, ALLOW_POST,
};
use super::panics::Guarded;
use super::{ServerConfig, ServerStats};
use crate::gateway::Gateway;
use crate::metrics::{HttpMetrics, Kind, PromText, Route};
use crate::respond::{json, query_param, text, with_type, Body};
use crate::wire_deadline::{admit_at, stopped};

/// The longest `GET /slow?ms=` accepts.
pub const MAX_SLOW_MS: u64 = 60_000;

/// What every request handler can reach.
pub(crate) struct App {
    config: Arc<ServerConfig>,
    stats: Arc<ServerStats>,
    shutdown: ShutdownSignal,
    metrics: Arc<HttpMetrics>,
    gateway: Option<Gateway>,
    extra: Option<(&'static str, ExtraRoute)>,
    epoch: Instant,
    admission: Option<AdaptiveLimiter>,
}

/// A `GET` route added with [`Server::with_route`](super::Server::with_route).
pub(crate) type ExtraRoute = Arc<dyn Fn() -> Response<Body> + Send + Sync>;

/// Where a request goes.
enum Target {
    /// To the handler of this route.
    Served(Route),
    /// Nowhere: this is the answer.
    Answered(Response<Body>),
}

impl App {
    pub(crate) fn new(
        config: Arc<ServerConfig>,
        stats: Arc<ServerStats>,
        shutdown: ShutdownSignal,
        metrics: Arc<HttpMetrics>,
        gateway: Option<Gateway>,
        extra: Option<(&'static str, ExtraRoute)>,
    ) -> Self {
        // Checked by `ServerConfig::validate` before the server binds.
        let admission = config.admission.and_then(|a| a.limiter().ok());
        App {
            config,
            stats,
            shutdown,
            metrics,
            gateway,
            extra,
            epoch: Instant::now(),
            admission,
        }
    }

    pub(crate) fn config(&self) -> &ServerConfig {
        &self.config
    }

    pub(crate) fn record_connection_error(&self) {
        self.stats.connection_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Checks the request's framing and Host, routes it, and answers; a panic in the handler
    /// is answered 500 and counted. Returns the response and when it was ready (nanoseconds
    /// since the server started), which tells the connection limit how long it has been idle.
    pub(crate) async fn handle(&self, request: Request<Incoming>) -> (Response<Body>, u64) {
        let started = Instant::now();
        let (route, response) = match self.target(&request) {
            Target::Answered(response) => (Route::Other, response),
            Target::Served(route) => {
                // The caller's deadline first: work that cannot finish takes no admission permit.
                match admit_at(request.headers(), started, work(route, &request)) {
                    Err(refusal) => {
                        self.metrics.deadlines().refused(refusal.reason);
                        (route, refusal.into_response())
                    }
                    Ok(deadline) => match self.admit(route, &request, started) {
                        Err(response) => (route, response),
                        Ok(permit) => {
                            let (response, completed) =
                                self.guarded(route, request, deadline).await;
                            if let (Some(permit), true) = (permit, completed) {
                                admission::finish(permit, route, Instant::now());
                            }
                            (route, response)
                        }
                    },
                }
            }
        };
        let done = Instant::now();
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .record(route, response.status().as_u16(), done - started);
        (response, self.since_epoch(done))
    }

    /// Runs `route`'s handler, answering 500 (and counting it) if it panics; `false` then.
    async fn guarded(
        &self,
        route: Route,
        request: Request<Incoming>,
        deadline: Option<Deadline>,
    ) -> (Response<Body>, bool) {
        match Guarded::new(self.serve(route, request, deadline)).await {
            Ok(response) => (response, true),
            Err(()) => {
                self.metrics.record_panic();
                (
                    closing(text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "the request's handler failed; the server logged why\n",
                    )),
                    false,
                )
            }
        }
    }

    /// Admission control: a permit (or none, when off or for an unlimited route), or the
    /// answer: 503 when shed, 400 for a criticality header that is not a class.
    #[allow(clippy::result_large_err)] // the error is the answer, sent at once
    fn admit(
        &self,
        route: Route,
        request: &Request<Incoming>,
        now: Instant,
    ) -> Result<Option<Permit>, Response<Body>> {
        let Some(limiter) = self
            .admission
            .as_ref()
            .filter(|_| admission::limited(route))
        else {
            return Ok(None);
        };
        let class = admission::criticality(request)?;
        match limiter.try_acquire_class_at(class, now) {
            Ok(permit) => Ok(Some(permit)),
            Err(rejected) => Err(admission::shed(&rejected)),
        }
    }

    /// Nanoseconds from the server's start to `at`.
    fn since_epoch(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    /// What serves `request`, or the answer that refuses it: 400 for a missing, repeated or
    /// invalid Host (RFC 9112 §3.2) or a target form the method cannot have, 501 for a method or
    /// transfer coding the server does not implement, 413 for a declared body above
    /// `max_body_bytes`, 405 (with `Allow`) for a method the resource does not allow, and the
    /// answer to `OPTIONS`.
    fn target(&self, request: &Request<Incoming>) -> Target {
        let method = request.method();
        if !is_known(method) {
            return Target::Answered(closing(text(
                StatusCode::NOT_IMPLEMENTED,
                format!("method {method} is not implemented here\n"),
            )));
        }
        if let Some(problem) = host_problem(request) {
            return Target::Answered(text(StatusCode::BAD_REQUEST, problem));
        }
        if let Some(coding) = unknown_coding(request) {
            // The body's framing cannot be read, so the connection cannot go on either.
            return Target::Answered(closing(text(
                StatusCode::NOT_IMPLEMENTED,
                format!("transfer coding {coding:?} is not implemented; only chunked is\n"),
            )));
        }
        let declared = request.body().size_hint().lower();
        if declared > self.config.max_body_bytes as u64 {
            return Target::Answered(closing(text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "request body of {declared} bytes is larger than {} bytes (max_body_bytes)\n",
                    self.config.max_body_bytes
                ),
            )));
        }
        let path = request.uri().path();
        if !path.starts_with('/') {
            return Target::Answered(other_form(method, path));
        }
        if let Some((extra, _)) = &self.extra {
            if path == *extra && matches!(*method, Method::GET | Method::HEAD) {
                return Target::Served(Route::Other);
            }
        }
        let (route, allow) = match path {
            "/echo" => (Route::Echo, ALLOW_POST),
            "/healthz" => (Route::Healthz, ALLOW_GET),
            "/slow" => (Route::Slow, ALLOW_GET),
            "/fanout" => (Route::Fanout, ALLOW_GET),
            "/metrics" => (Route::Metrics, ALLOW_GET),
            _ => (Route::Hello, ALLOW_GET),
        };
        let allowed = if allow == ALLOW_POST {
            *method == Method::POST
        } else {
            matches!(*method, Method::GET | Method::HEAD)
        };
        if allowed {
            Target::Served(route)
        } else if *method == Method::OPTIONS {
            Target::Answered(allowing(StatusCode::NO_CONTENT, allow, ""))
        } else {
            Target::Answered(allowing(
                StatusCode::METHOD_NOT_ALLOWED,
                allow,
                format!("{path} allows {allow}, not {method}\n"),
            ))
        }
    }

    /// Runs `route`'s handler, stopped with 504 at the caller's `deadline` if it has one (a
    /// fan-out is bounded by the gateway instead, which answers what it has by then).
    async fn serve(
        &self,
        route: Route,
        request: Request<Incoming>,
        deadline: Option<Deadline>,
    ) -> Response<Body> {
        if route == Route::Fanout {
            return self.fanout(&request, deadline).await;
        }
        let Some(deadline) = deadline else {
            return self.work(route, request).await;
        };
        let begun = Instant::now();
        match timeout_until(deadline.instant(), self.work(route, request)).await {
            Ok(response) => response,
            Err(_) => {
                self.metrics.deadlines().stopped();
                let response = stopped(begun.elapsed());
                // An echo stopped mid-body leaves the rest unread: the connection cannot go on.
                if route == Route::Echo {
                    closing(response)
                } else {
                    response
                }
            }
        }
    }

    /// Runs `route`'s handler (HEAD as GET: hyper sends the head alone).
    async fn work(&self, route: Route, request: Request<Incoming>) -> Response<Body> {
        match route {
            Route::Healthz => self.healthz(),
            Route::Echo => self.echo(request.into_body()).await,
            Route::Slow => slow(request.uri().query()).await,
            Route::Fanout => self.fanout(&request, None).await,
            Route::Metrics => self.metrics(),
            Route::Hello => hello(request.uri().path().strip_prefix('/').unwrap_or_default()),
            Route::Other => match &self.extra {
                Some((_, handler)) => handler(),
                None => text(StatusCode::NOT_FOUND, "no such route\n"),
            },
        }
    }

    /// Reads `keys` keys through the gateway, by the caller's `deadline` if it is nearer than
    /// the gateway's own: 200 with the report when at least one key was read (`partial` says
    /// whether some are missing), 502 or 504 when none was.
    /// The caller's `tailguard-criticality` header is the class the gateway's per-replica
    /// limits admit its calls in, and is forwarded to the replicas (400 if not a class).
    async fn fanout<B>(&self, request: &Request<B>, deadline: Option<Deadline>) -> Response<Body> {
        let query = request.uri().query();
        let Some(gateway) = &self.gateway else {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "no backends: start the server with --backend ADDR (or use tailguard-demo backend)\n",
            );
        };
        let max = gateway.config().max_keys;
        let keys = match query_param(query, "keys").map(str::parse::<usize>) {
            Some(Ok(keys)) if (1..=max).contains(&keys) => keys,
            _ => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("GET /fanout needs ?keys=N with N a whole number from 1 to {max}\n"),
                )
            }
        };
        let class = match admission::criticality(request) {
            Ok(class) => class,
            Err(refused) => return refused,
        };
        let deadline = deadline.unwrap_or(Deadline::after(gateway.config().fanout_deadline));
        let report = gateway.fanout_as_until(keys, class, deadline).await;
        let status = if report.ok > 0 {
            StatusCode::OK
        } else if report.timed_out == report.keys {
            StatusCode::GATEWAY_TIMEOUT
        } else {
            StatusCode::BAD_GATEWAY
        };
        json(status, &report)
    }

    /// The server's and the gateway's metrics in the Prometheus text format.
    fn metrics(&self) -> Response<Body> {
        let mut out = PromText::new();
        self.metrics.write(&mut out);
        let stats = &self.stats;
        out.single(
            "tailguard_connections_accepted_total",
            Kind::Counter,
            "Client connections accepted and served (not those refused with 503).",
            stats.connections.load(Ordering::Relaxed) as f64,
        );
        out.single(
            "tailguard_connections_open",
            Kind::Gauge,
            "Client connections open now.",
            stats.connections_open.load(Ordering::Relaxed) as f64,
        );
        out.single(
            "tailguard_connection_errors_total",
            Kind::Counter,
            "Client connections ended by an error (malformed request, timeout, reset).",
            stats.connection_errors.load(Ordering::Relaxed) as f64,
        );
        out.single(
            "tailguard_connections_refused_total",
            Kind::Counter,
            "Client connections answered 503 (or closed) because every slot was busy.",
            stats.connections_refused.load(Ordering::Relaxed) as f64,
        );
        out.single(
            "tailguard_connections_evicted_total",
            Kind::Counter,
            "Idle kept-alive connections closed to admit a new client at max_connections.",
            stats.connections_evicted.load(Ordering::Relaxed) as f64,
        );
        if let Some(gateway) = &self.gateway {
            gateway.write_metrics(&mut out);
        }
        if let Some(limiter) = &self.admission {
            admission::write_metrics(limiter, &mut out);
        }
        with_type(
            StatusCode::OK,
            out.finish().into(),
            "text/plain; version=0.0.4; charset=utf-8",
        )
    }

    fn healthz(&self) -> Response<Body> {
        if self.shutdown.is_triggered() {
            text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
        } else {
            text(StatusCode::OK, "ok\n")
        }
    }

    /// Reads the body chunk by chunk, each within `body_idle` and all within `body_total`, and
    /// answers the byte count. A body that is too slow gets 408, one too large 413; both close
    /// the connection, since the rest of the body is never read.
    async fn echo(&self, mut body: Incoming) -> Response<Body> {
        let config = &self.config;
        let whole = Deadline::after(config.body_total);
        let mut received = 0usize;
        loop {
            let chunk = whole.child(config.body_idle);
            let frame = match timeout_until(chunk.instant(), body.frame()).await {
                Ok(frame) => frame,
                Err(_) if whole.is_expired() => {
                    return closing(text(
                        StatusCode::REQUEST_TIMEOUT,
                        format!(
                            "request body took longer than {:?} in all (body_total)\n",
                            config.body_total
                        ),
                    ))
                }
                Err(_) => {
                    return closing(text(
                        StatusCode::REQUEST_TIMEOUT,
                        format!(
                            "no request body data for {:?} (body_idle)\n",
                            config.body_idle
                        ),
                    ))
                }
            };
            match frame {
                None => break,
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        received += data.len();
                        if received > config.max_body_bytes {
                            return closing(text(
                                StatusCode::PAYLOAD_TOO_LARGE,
                                format!(
                                    "request body is larger than {} bytes (max_body_bytes)\n",
                                    config.max_body_bytes
                                ),
                            ));
                        }
                    }
                }
                Some(Err(error)) => {
                    return closing(text(
                        StatusCode::BAD_REQUEST,
                        format!("could not read the request body: {error}\n"),
                    ))
                }
            }
        }
        text(StatusCode::OK, format!("{received}\n"))
    }
}

/// The talk's handler.
fn hello(name: &str) -> Response<Body> {
    text(StatusCode::OK, format!("Hi there, I love {name}!"))
}

/// The least time `route`'s handler takes for `request`, known before it starts: what a
/// caller's deadline must leave for the work to be started. `GET /slow?ms=N` takes N ms;
/// every other route, no known minimum.
fn work(route: Route, request: &Request<Incoming>) -> Duration {
    match (route, slow_ms(request.uri().query())) {
        (Route::Slow, Some(ms)) => Duration::from_millis(ms),
        _ => Duration::ZERO,
    }
}

/// The `ms` of a valid `GET /slow?ms=N`.
fn slow_ms(query: Option<&str>) -> Option<u64> {
    query_param(query, "ms")
        .and_then(|ms| ms.parse::<u64>().ok())
        .filter(|&ms| ms <= MAX_SLOW_MS)
}

/// Answers after `ms` milliseconds: a request that is in flight long enough to watch.
async fn slow(query: Option<&str>) -> Response<Body> {
    match slow_ms(query) {
        Some(ms) => {
            smol::Timer::after(Duration::from_millis(ms)).await;
            text(StatusCode::OK, format!("slept {ms} ms\n"))
        }
        _ => text(
            StatusCode::BAD_REQUEST,
            format!("GET /slow needs ?ms=N with N a whole number from 0 to {MAX_SLOW_MS}\n"),
        ),
    }
}

fn closing(mut response: Response<Body>) -> Response<Body> {
    response.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    response
}
