//! The routes: the talk's hello handler, a body echo with per-chunk and total read limits, a slow
//! endpoint for watching shutdown at work, a health check, and with a gateway the fan-out and
//! the metrics.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{header, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tailguard::shutdown::ShutdownSignal;
use tailguard::timeout::{timeout_at, Deadline};

use super::{ServerConfig, ServerStats};
use crate::gateway::Gateway;
use crate::metrics::{HttpMetrics, Kind, PromText, Route};
use crate::respond::{json, query_param, text, with_type, Body};

/// The longest `GET /slow?ms=` accepts.
pub const MAX_SLOW_MS: u64 = 60_000;

/// What every request handler can reach.
pub(crate) struct App {
    config: Arc<ServerConfig>,
    stats: Arc<ServerStats>,
    shutdown: ShutdownSignal,
    metrics: Arc<HttpMetrics>,
    gateway: Option<Gateway>,
}

impl App {
    pub(crate) fn new(
        config: Arc<ServerConfig>,
        stats: Arc<ServerStats>,
        shutdown: ShutdownSignal,
        metrics: Arc<HttpMetrics>,
        gateway: Option<Gateway>,
    ) -> Self {
        App {
            config,
            stats,
            shutdown,
            metrics,
            gateway,
        }
    }

    pub(crate) fn config(&self) -> &ServerConfig {
        &self.config
    }

    pub(crate) fn record_connection_error(&self) {
        self.stats.connection_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Routes one request.
    pub(crate) async fn handle(&self, request: Request<Incoming>) -> Response<Body> {
        let started = Instant::now();
        let (route, response) = match (request.method(), request.uri().path()) {
            (&Method::GET, "/healthz") => (Route::Healthz, self.healthz()),
            (&Method::POST, "/echo") => (Route::Echo, self.echo(request.into_body()).await),
            (&Method::GET, "/slow") => (Route::Slow, slow(request.uri().query()).await),
            (&Method::GET, "/fanout") => (Route::Fanout, self.fanout(request.uri().query()).await),
            (&Method::GET, "/metrics") => (Route::Metrics, self.metrics()),
            (&Method::GET, path) => (Route::Hello, hello(&path[1..])),
            (_, "/echo") => (
                Route::Other,
                text(StatusCode::METHOD_NOT_ALLOWED, "use POST /echo\n"),
            ),
            _ => (
                Route::Other,
                text(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "only GET /{name}, GET /slow?ms=N, GET /fanout?keys=N, GET /metrics, \
                     GET /healthz and POST /echo are served\n",
                ),
            ),
        };
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .record(route, response.status().as_u16(), started.elapsed());
        response
    }

    /// Reads `keys` keys through the gateway: 200 with the report when at least one key was
    /// read (`partial` says whether some are missing), 502 or 504 when none was.
    async fn fanout(&self, query: Option<&str>) -> Response<Body> {
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
        let report = gateway.fanout(keys).await;
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
            "Client connections accepted.",
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
        if let Some(gateway) = &self.gateway {
            gateway.write_metrics(&mut out);
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
            let frame = match timeout_at(chunk.instant(), body.frame()).await {
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

/// Answers after `ms` milliseconds: a request that is in flight long enough to watch.
async fn slow(query: Option<&str>) -> Response<Body> {
    let ms = query_param(query, "ms").map(str::parse::<u64>);
    match ms {
        Some(Ok(ms)) if ms <= MAX_SLOW_MS => {
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
