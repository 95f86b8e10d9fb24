//! An HTTP/1 client on hyper and smol: a keep-alive connection pool per address, with a
//! connect timeout. Nothing tokio-based.
//!
//! A [`Pool`] talks to one address. Each call takes an idle connection if one is open and
//! ready, or connects (within `connect_timeout`, a [`tailguard::timeout`]) and hands the
//! connection's protocol work to a task on the executor. When the whole response has been
//! read, the connection goes back to the pool, unless it was closed or the pool already holds
//! `max_idle` idle connections. A connection whose call was cancelled (its future dropped) is
//! closed by hyper and never reused; one the server closed while it sat idle is discarded when
//! next taken. A `GET` or `HEAD` that fails on a reused connection before any answer (it had
//! gone stale: closed or reset by the server) is tried once more on a fresh connection, as is
//! any request hyper did not send at all.
//!
//! There is no overall call timeout here: wrap calls in [`tailguard::timeout`] (the gateway
//! does, per call).
//!
//! ```
//! use tailguard_demo::backend::{BackendConfig, Backends, Profile};
//! use tailguard_demo::client::{ClientConfig, Pool};
//! use tailguard_demo::rt::Runtime;
//!
//! let rt = Runtime::new(2.try_into().unwrap());
//! let backends = rt.block_on(Backends::start(BackendConfig::uniform(1, Profile::default()), rt.executor()))?;
//! let pool = Pool::new(backends.addrs()[0], ClientConfig::default(), rt.executor().clone());
//! for _ in 0..3 {
//!     let reply = rt.block_on(pool.get("/key/1"))?;
//!     assert_eq!(reply.status, 200);
//!     assert_eq!(reply.body, "/key/1 from replica 0");
//! }
//! assert_eq!((pool.stats().connects, pool.stats().reuses), (1, 2)); // one connection, kept alive
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use smol::net::TcpStream;
use smol_hyper::rt::FuturesIo;
use tailguard::timeout::timeout;

use crate::rt::Exec;

type Body = Full<Bytes>;

/// How a [`Pool`] connects and how many idle connections it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientConfig {
    /// Longest time to establish a TCP connection.
    pub connect_timeout: Duration,
    /// Most idle connections kept open for reuse.
    pub max_idle: usize,
}

impl Default for ClientConfig {
    /// A 1 s connect timeout and up to 32 idle connections.
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(1),
            max_idle: 32,
        }
    }
}

/// A whole response.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body, read to the end.
    pub body: Bytes,
}

/// Why a call got no response.
#[derive(Debug)]
pub enum ClientError {
    /// The connection was not established within `connect_timeout`.
    ConnectTimeout(Duration),
    /// The connection was refused or could not be made.
    Connect(io::Error),
    /// The connection broke, or the response was malformed, before the response head arrived.
    Request(hyper::Error),
    /// The response body could not be read to the end.
    Body(hyper::Error),
    /// The path is not a valid request target; nothing was sent.
    InvalidPath(String),
}

impl ClientError {
    /// A short name for metrics and reports: `connect_timeout`, `connect`, `request`, `body`.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientError::ConnectTimeout(_) => "connect_timeout",
            ClientError::Connect(_) => "connect",
            ClientError::Request(_) => "request",
            ClientError::Body(_) => "body",
            ClientError::InvalidPath(_) => "invalid_path",
        }
    }

    /// Whether the call failed before a connection was made, so the server never saw it.
    pub fn is_connect(&self) -> bool {
        matches!(
            self,
            ClientError::ConnectTimeout(_) | ClientError::Connect(_)
        )
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::ConnectTimeout(limit) => write!(
                f,
                "could not connect within {limit:?} (connect_timeout): is the server overloaded?"
            ),
            ClientError::Connect(error) => {
                write!(f, "could not connect ({error}): is the server running?")
            }
            ClientError::Request(error) => write!(f, "the request failed: {error}"),
            ClientError::Body(error) => write!(f, "reading the response body failed: {error}"),
            ClientError::InvalidPath(path) => write!(
                f,
                "{path:?} is not a valid request path; give an absolute path such as \"/items?id=7\""
            ),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::ConnectTimeout(_) | ClientError::InvalidPath(_) => None,
            ClientError::Connect(error) => Some(error),
            ClientError::Request(error) | ClientError::Body(error) => Some(error),
        }
    }
}

/// What a [`Pool`] has done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStats {
    /// Connections open now (idle or busy).
    pub open: u64,
    /// Idle connections in the pool now.
    pub idle: u64,
    /// Connections established.
    pub connects: u64,
    /// Calls answered on a reused idle connection.
    pub reuses: u64,
    /// Idle connections found closed, not ready, or gone stale on their next call, and thrown
    /// away.
    pub discarded: u64,
}

/// Keep-alive connections to one address; cheap to clone (clones share the pool).
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    addr: SocketAddr,
    host: HeaderValue,
    config: ClientConfig,
    ex: Exec,
    idle: Mutex<Vec<SendRequest<Body>>>,
    /// Shared with the connection tasks, which must not hold the pool (it holds their senders).
    open: Arc<AtomicU64>,
    connects: AtomicU64,
    reuses: AtomicU64,
    discarded: AtomicU64,
}

/// Counts an open connection for as long as its task lives.
struct Open(Arc<AtomicU64>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

impl Pool {
    /// A pool of connections to `addr`, whose tasks run on `ex`. Requests carry `addr` as their
    /// `Host` header.
    pub fn new(addr: SocketAddr, config: ClientConfig, ex: Exec) -> Pool {
        let host = HeaderValue::from_str(&addr.to_string()).expect("an address is a valid header");
        Pool::with_host(addr, host, config, ex)
    }

    /// Like [`new`](Pool::new), with the `Host` header given (the authority of a URL).
    pub fn with_host(addr: SocketAddr, host: HeaderValue, config: ClientConfig, ex: Exec) -> Pool {
        Pool {
            inner: Arc::new(Inner {
                addr,
                host,
                config,
                ex,
                idle: Mutex::new(Vec::new()),
                open: Arc::new(AtomicU64::new(0)),
                connects: AtomicU64::new(0),
                reuses: AtomicU64::new(0),
                discarded: AtomicU64::new(0),
            }),
        }
    }

    /// The address this pool connects to.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// What the pool has done, and holds now.
    pub fn stats(&self) -> PoolStats {
        let inner = &self.inner;
        PoolStats {
            open: inner.open.load(Relaxed),
            idle: inner.lock_idle().len() as u64,
            connects: inner.connects.load(Relaxed),
            reuses: inner.reuses.load(Relaxed),
            discarded: inner.discarded.load(Relaxed),
        }
    }

    /// Closes every idle connection (busy ones are closed when their call ends, as they are
    /// not returned).
    pub fn close_idle(&self) {
        self.inner.lock_idle().clear();
    }

    /// `GET path` (a path and query, like `/fanout?keys=8`).
    pub async fn get(&self, path: &str) -> Result<Reply, ClientError> {
        self.send(Method::GET, path, Bytes::new()).await
    }

    /// Sends one request and reads the whole response.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<Reply, ClientError> {
        let inner = &self.inner;
        let uri: http::Uri = path
            .parse()
            .map_err(|_| ClientError::InvalidPath(path.to_owned()))?;
        let build = || {
            let mut request = Request::new(Full::new(body.clone()));
            *request.method_mut() = method.clone();
            *request.uri_mut() = uri.clone();
            request
                .headers_mut()
                .insert(header::HOST, inner.host.clone());
            request
        };
        if let Some(mut sender) = inner.checkout().await {
            match sender.try_send_request(build()).await {
                Ok(response) => {
                    inner.reuses.fetch_add(1, Relaxed);
                    return inner.finish(sender, response).await;
                }
                // The connection went stale (the server closed or reset it while it sat idle)
                // before any answer: try once more on a fresh one. Only done for requests
                // that were never sent, or are idempotent.
                Err(error)
                    if error.message().is_some()
                        || method == Method::GET
                        || method == Method::HEAD =>
                {
                    inner.discarded.fetch_add(1, Relaxed);
                }
                Err(error) => return Err(ClientError::Request(error.into_error())),
            }
        }
        let mut sender = inner.connect().await?;
        let response = sender
            .send_request(build())
            .await
            .map_err(ClientError::Request)?;
        inner.finish(sender, response).await
    }
}

impl Inner {
    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<SendRequest<Body>>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An idle connection that is still open and ready, if there is one.
    async fn checkout(&self) -> Option<SendRequest<Body>> {
        loop {
            let mut sender = self.lock_idle().pop()?;
            if !sender.is_closed() && sender.ready().await.is_ok() {
                return Some(sender);
            }
            self.discarded.fetch_add(1, Relaxed);
        }
    }

    async fn connect(&self) -> Result<SendRequest<Body>, ClientError> {
        let limit = self.config.connect_timeout;
        let stream = timeout(limit, TcpStream::connect(self.addr))
            .await
            .map_err(|_| ClientError::ConnectTimeout(limit))?
            .map_err(ClientError::Connect)?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::handshake(FuturesIo::new(stream))
            .await
            .map_err(ClientError::Request)?;
        self.connects.fetch_add(1, Relaxed);
        self.open.fetch_add(1, Relaxed);
        let open = Open(self.open.clone());
        self.ex
            .spawn(async move {
                let _open = open;
                let _ = connection.await;
            })
            .detach();
        Ok(sender)
    }

    /// Reads the body to the end and returns the connection to the pool.
    async fn finish(
        &self,
        sender: SendRequest<Body>,
        response: http::Response<hyper::body::Incoming>,
    ) -> Result<Reply, ClientError> {
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(ClientError::Body)?.to_bytes();
        if !sender.is_closed() {
            let mut idle = self.lock_idle();
            if idle.len() < self.config.max_idle {
                idle.push(sender);
            }
        }
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("addr", &self.inner.addr)
            .field("stats", &self.stats())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_path_is_refused_before_anything_is_sent() {
        let ex: Exec = Arc::new(smol::Executor::new());
        // Nothing listens here, and nothing must try to: the path is refused first.
        let pool = Pool::new(
            SocketAddr::from(([127, 0, 0, 1], 9)),
            ClientConfig::default(),
            ex,
        );
        let err = smol::block_on(pool.send(Method::GET, "/has a space", Bytes::new())).unwrap_err();
        assert_eq!(err.kind(), "invalid_path");
        assert!(
            err.to_string().contains("not a valid request path"),
            "{err}"
        );
        assert_eq!(pool.stats().connects, 0);
    }
}
