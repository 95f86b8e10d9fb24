//! The HTTP server: hyper 1.x on smol, with every wait bounded and a graceful shutdown.
//!
//! hyper alone has no idle timeout, no per-read timeout, and turns its header-read timeout off
//! unless a timer is set. This server gets each limit from tailguard:
//!
//! | limit | default | enforced by |
//! |---|---|---|
//! | header read | 2 s | the connection's [`TimeoutIo`](tailguard::io::TimeoutIo) read deadline, started at accept and at the first byte of each later request |
//! | body read, idle | 1 s | [`timeout`](tailguard::timeout) on every body chunk in the handler |
//! | body read, total | 5 s | a [`Deadline`](tailguard::timeout::Deadline) shared by the chunks |
//! | write | 1 s | `TimeoutIo` write-idle |
//! | keep-alive idle | 30 s | `TimeoutIo` read-idle |
//! | shutdown | 10 s | [`TaskTracker::graceful`](tailguard::shutdown::TaskTracker::graceful) |
//!
//! On shutdown the server stops accepting at once, lets every request already started finish,
//! and force-closes what is left at the deadline.
//!
//! At `max_connections` a new client is still accepted: the connection that has been idle
//! longest between requests is closed to make room (never one in the middle of a request),
//! and when none is idle the new client is answered `503` with `Retry-After` and closed, at a
//! bounded cost: one short write, at most 100 ms and 16 KiB read so that the close does not
//! reset the answer away, and at most 256 refusals at once (past that, a connection is just
//! closed).
//!
//! No request can panic the server. Malformed heads get 400, 414 or 431 and a head cut at the
//! header limit 408, each with a short body that says what was wrong; a missing, repeated or
//! invalid Host gets 400 (RFC 9112 §3.2), an unknown method or transfer coding 501, a method
//! the route does not allow 405 with `Allow`, a declared body over `max_body_bytes` 413 at
//! once; HEAD is served wherever GET is. A panic in a handler is answered 500, logged in one
//! line and counted in `/metrics` (`tailguard_http_handler_panics_total`). A client that shuts
//! down its write side after its request still gets the answer (see the `conn` module).
//!
//! A request may carry its caller's deadline in the `tailguard-timeout` header (see
//! [`wire_deadline`](crate::wire_deadline)): a malformed one is answered `400`, one that has
//! passed or is shorter than the route's known minimum (`GET /slow?ms=N`: N ms) `504` at once,
//! without running the handler; otherwise the handler is stopped with `504` at the deadline
//! (a fan-out instead runs by the nearer of the caller's and the gateway's deadline). `/metrics`
//! counts them (`tailguard_http_deadline_refusals_total{reason}`,
//! `tailguard_http_deadline_stopped_total`).
//!
//! With a [`Gateway`] ([`Server::with_gateway`]) it also serves `GET /fanout?keys=N`: a fan-out
//! to the backend replicas under the gateway's deadline, so a fan-out in flight at shutdown
//! finishes within that deadline (or is dropped, cancelling its calls, if the shutdown deadline
//! comes first). `GET /metrics` answers in the Prometheus text format: requests by route and
//! status, latency quantiles by route, open connections, and the gateway's series.

pub mod admission;
mod checks;
pub mod command;
mod conn;
mod limit;
mod panics;
mod routes;
mod wire;

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_lite::future;
use smol::lock::Semaphore;
use smol::net::TcpListener;
use tailguard::shutdown::{Shutdown, TaskTracker};
use tailguard::ConfigError;

use crate::gateway::Gateway;
use crate::metrics::HttpMetrics;
use crate::rt::Exec;

/// Limits and addresses of a [`Server`]. `Default` gives the talk's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Where to listen.
    pub addr: SocketAddr,
    /// Longest time to receive a request's head, from accept (first request) or from its first
    /// byte (later requests on a kept-alive connection).
    pub header_read: Duration,
    /// Longest gap between two chunks of a request body.
    pub body_idle: Duration,
    /// Longest time to receive a whole request body.
    pub body_total: Duration,
    /// Longest time a write may wait for the client to take data.
    pub write: Duration,
    /// Longest time an idle connection is kept open.
    pub keep_alive_idle: Duration,
    /// How long a graceful shutdown waits for requests in flight before closing them.
    pub shutdown_deadline: Duration,
    /// Most connections served at once. At the limit the longest idle kept-alive connection is
    /// closed to admit a new client; when none is idle, new clients get `503` with
    /// `Retry-After` and are closed.
    pub max_connections: usize,
    /// Largest request body accepted by `POST /echo`.
    pub max_body_bytes: usize,
    /// Whether connections get the [`TimeoutIo`](tailguard::io::TimeoutIo) limits (header
    /// read, keep-alive idle, write). Always on in service; off only to measure what they cost
    /// (`serve --no-io-timeouts`, see BENCHMARKS.md). Off, the server also cannot tell a
    /// connection reading its next head from an idle one, so at `max_connections` it may close
    /// such a connection for room.
    pub io_timeouts: bool,
    /// Admission control: an adaptive concurrency limit with priority from the
    /// `tailguard-criticality` header, shedding with `503` and `Retry-After` (`None`: off).
    pub admission: Option<admission::AdmissionConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            header_read: Duration::from_secs(2),
            body_idle: Duration::from_secs(1),
            body_total: Duration::from_secs(5),
            write: Duration::from_secs(1),
            keep_alive_idle: Duration::from_secs(30),
            shutdown_deadline: Duration::from_secs(10),
            max_connections: 1024,
            max_body_bytes: 1 << 20,
            io_timeouts: true,
            admission: None,
        }
    }
}

impl ServerConfig {
    /// Checks every limit: durations must be positive and counts at least one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let durations = [
            ("header_read", self.header_read),
            ("body_idle", self.body_idle),
            ("body_total", self.body_total),
            ("write", self.write),
            ("keep_alive_idle", self.keep_alive_idle),
            ("shutdown_deadline", self.shutdown_deadline),
        ];
        for (field, value) in durations {
            if value.is_zero() {
                return Err(ConfigError::new(
                    field,
                    "must be longer than zero; a zero limit would fail every request",
                ));
            }
        }
        if self.max_connections == 0 {
            return Err(ConfigError::new(
                "max_connections",
                "must be at least 1, got 0",
            ));
        }
        if self.max_body_bytes == 0 {
            return Err(ConfigError::new(
                "max_body_bytes",
                "must be at least 1, got 0",
            ));
        }
        if let Some(admission) = &self.admission {
            admission.limiter()?;
        }
        Ok(())
    }
}

/// Counters of a running server, shared with its connections.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Connections accepted and served (those refused with 503 are counted in
    /// `connections_refused`).
    pub connections: AtomicU64,
    /// Requests answered.
    pub requests: AtomicU64,
    /// Connections that ended with an error (malformed request, timeout, reset).
    pub connection_errors: AtomicU64,
    /// Connections open now.
    pub connections_open: AtomicU64,
    /// Connections answered 503 (or closed at once) because every slot was busy.
    pub connections_refused: AtomicU64,
    /// Idle kept-alive connections closed to admit a new client at the limit.
    pub connections_evicted: AtomicU64,
}

/// A bound, not yet serving, HTTP server.
pub struct Server {
    listener: TcpListener,
    config: Arc<ServerConfig>,
    stats: Arc<ServerStats>,
    metrics: Arc<HttpMetrics>,
    gateway: Option<Gateway>,
    extra: Option<(&'static str, routes::ExtraRoute)>,
    quiet: bool,
}

/// How a [`Server::serve`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeReport {
    /// Connections accepted and served over the server's life (not those refused with 503).
    pub connections: u64,
    /// Requests answered over the server's life.
    pub requests: u64,
    /// Connections still busy at the shutdown deadline, closed by force. Zero means drained.
    pub forced: usize,
}

impl ServeReport {
    /// Whether every connection finished before the deadline.
    pub fn drained(&self) -> bool {
        self.forced == 0
    }
}

impl fmt::Display for ServeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} connections, {} requests; ",
            self.connections, self.requests
        )?;
        if self.drained() {
            f.write_str("drained cleanly")
        } else {
            write!(
                f,
                "{} connections closed by force at the deadline",
                self.forced
            )
        }
    }
}

impl Server {
    /// Validates `config` and binds its address.
    pub async fn bind(config: ServerConfig) -> io::Result<Server> {
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let listener = TcpListener::bind(config.addr).await?;
        Ok(Server {
            listener,
            config: Arc::new(config),
            stats: Arc::new(ServerStats::default()),
            metrics: Arc::new(HttpMetrics::new()),
            gateway: None,
            extra: None,
            quiet: false,
        })
    }

    /// Does not log the shutdown's progress to stderr: for the tour and the experiments, which
    /// run servers inside one process and report what they measured themselves.
    pub fn quiet(mut self) -> Server {
        self.quiet = true;
        self
    }

    /// Serves `GET /fanout` through `gateway`, and adds its series to `GET /metrics`.
    pub fn with_gateway(mut self, gateway: Gateway) -> Server {
        self.gateway = Some(gateway);
        self
    }

    /// Also serves `GET path` (and HEAD) with `handler`, counted under the `other` route: for
    /// embedding the server, and for tests that need a handler to misbehave (a panic in it is
    /// answered 500, logged in one line and counted, and the server keeps serving).
    ///
    /// ```
    /// use http::StatusCode;
    /// use tailguard_demo::respond::text;
    /// use tailguard_demo::server::{Server, ServerConfig};
    ///
    /// # smol::block_on(async {
    /// let config = ServerConfig {
    ///     addr: "127.0.0.1:0".parse().unwrap(),
    ///     ..ServerConfig::default()
    /// };
    /// let server = Server::bind(config)
    ///     .await?
    ///     .with_route("/version", || text(StatusCode::OK, "1.0\n"));
    /// assert!(server.local_addr()?.port() > 0);
    /// # Ok::<(), std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn with_route(
        mut self,
        path: &'static str,
        handler: impl Fn() -> http::Response<crate::respond::Body> + Send + Sync + 'static,
    ) -> Server {
        self.extra = Some((path, Arc::new(handler)));
        self
    }

    /// The server's request metrics (by route and status, with latency), as `/metrics` shows.
    pub fn metrics(&self) -> Arc<HttpMetrics> {
        self.metrics.clone()
    }

    /// The address the server listens on (useful with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The server's live counters.
    pub fn stats(&self) -> Arc<ServerStats> {
        self.stats.clone()
    }

    /// Serves connections on `ex` until `stop` completes, then shuts down gracefully: stops
    /// accepting at once, lets requests in flight finish, and closes what is left at the
    /// configured deadline.
    pub async fn serve(self, ex: Exec, stop: impl Future<Output = ()>) -> ServeReport {
        let Server {
            listener,
            config,
            stats,
            metrics,
            gateway,
            extra,
            quiet,
        } = self;
        panics::install();
        let log = |message: fmt::Arguments<'_>| {
            if !quiet {
                log(message);
            }
        };
        let graceful = Shutdown::new();
        let force = Shutdown::new();
        let tracker = TaskTracker::new();
        let slots = Arc::new(Semaphore::new(config.max_connections));
        let app = Arc::new(routes::App::new(
            config.clone(),
            stats.clone(),
            graceful.signal(),
            metrics,
            gateway,
            extra,
        ));

        let registry = Arc::new(limit::Registry::default());
        let refusing = Arc::new(Semaphore::new(limit::MAX_REFUSING));
        let accept_loop = async {
            loop {
                let (stream, _peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: back off briefly, keep serving.
                        log(format_args!("accept failed: {error}"));
                        smol::Timer::after(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let slot = match slots.try_acquire_arc() {
                    Some(slot) => Some(slot),
                    None if registry.evict_longest_idle() => {
                        stats.connections_evicted.fetch_add(1, Ordering::Relaxed);
                        None
                    }
                    None => {
                        stats.connections_refused.fetch_add(1, Ordering::Relaxed);
                        // Past the cap the connection is just closed: a flood costs an accept
                        // and a close per connection, nothing more.
                        if let Some(permit) = refusing.try_acquire_arc() {
                            let write = config.write;
                            ex.spawn(async move {
                                limit::refuse(stream, write).await;
                                drop(permit);
                            })
                            .detach();
                        }
                        continue;
                    }
                };
                let id = stats.connections.fetch_add(1, Ordering::Relaxed);
                stats.connections_open.fetch_add(1, Ordering::Relaxed);
                let state = conn::ConnState::new(graceful.child());
                registry.insert(id, state.clone());
                let open = OpenConnection {
                    stats: stats.clone(),
                    registry: registry.clone(),
                    id,
                };
                let (app, slots, force) = (app.clone(), slots.clone(), force.signal());
                let header_read = config.header_read;
                let write = config.write;
                let task = tracker.track_future(async move {
                    let slot = match slot {
                        Some(slot) => slot,
                        // An idle connection is closing for this one: its slot comes free at
                        // once, unless another client took it first.
                        None => match future::or(async { Some(slots.acquire_arc().await) }, async {
                            smol::Timer::after(header_read).await;
                            None
                        })
                        .await
                        {
                            Some(slot) => slot,
                            None => return limit::refuse(stream, write).await,
                        },
                    };
                    conn::serve(stream, app, state, force).await;
                    drop(open);
                    drop(slot);
                });
                ex.spawn(task).detach();
            }
        };
        future::or(accept_loop, stop).await;
        drop(listener);

        let open = tracker.len();
        log(format_args!(
            "shutting down: stopped accepting; waiting up to {:?} for {open} open connection(s)",
            config.shutdown_deadline
        ));
        graceful.trigger();
        let forced = match tracker.graceful(config.shutdown_deadline).await {
            Ok(()) => 0,
            Err(unfinished) => {
                log(format_args!("{unfinished}; closing them now"));
                force.trigger();
                // Forced connections end at their next poll; give them a moment to go.
                let _ = tracker.graceful(Duration::from_secs(1)).await;
                unfinished.remaining
            }
        };
        let report = ServeReport {
            connections: stats.connections.load(Ordering::Relaxed),
            requests: stats.requests.load(Ordering::Relaxed),
            forced,
        };
        log(format_args!("stopped: {report}"));
        report
    }
}

/// Counts an open connection until dropped (also when a forced shutdown drops its task).
struct OpenConnection {
    stats: Arc<ServerStats>,
    registry: Arc<limit::Registry>,
    id: u64,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.stats.connections_open.fetch_sub(1, Ordering::Relaxed);
        self.registry.remove(self.id);
    }
}

/// Writes one log line to stderr.
pub fn log(message: fmt::Arguments<'_>) {
    eprintln!("tailguard-demo: {message}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_talks() {
        let config = ServerConfig::default();
        assert_eq!(config.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(config.header_read, Duration::from_secs(2));
        assert_eq!(config.body_idle, Duration::from_secs(1));
        assert_eq!(config.body_total, Duration::from_secs(5));
        assert_eq!(config.write, Duration::from_secs(1));
        assert_eq!(config.keep_alive_idle, Duration::from_secs(30));
        assert_eq!(config.shutdown_deadline, Duration::from_secs(10));
        assert!(config.validate().is_ok());
    }

    #[test]
    fn zero_limits_are_refused_by_name() {
        let config = ServerConfig {
            body_idle: Duration::ZERO,
            ..ServerConfig::default()
        };
        assert_eq!(config.validate().unwrap_err().field(), "body_idle");
        let config = ServerConfig {
            max_connections: 0,
            ..ServerConfig::default()
        };
        assert_eq!(config.validate().unwrap_err().field(), "max_connections");
    }
}
