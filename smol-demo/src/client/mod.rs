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
//! A [`bounded`](Pool::bounded) pool keeps at most `max_connections` open: a call first waits
//! for one of that many slots (first come, first served: none is taken out of turn), and holds
//! it until its connection is back in the pool or, if the call ended any other way, until that
//! connection's task has ended. So connections never outnumber slots, however many calls come
//! at once. Dropping a waiting call gives up its place; dropping a running one frees its slot
//! once its connection is closed.
//!
//! There is no overall call timeout in [`send`](Pool::send): wrap it in
//! [`tailguard::timeout`], or use [`send_within`](Pool::send_within) and its [`Limits`], whose
//! errors say whether the time ran out waiting for a slot ([`ClientError::PoolExhausted`]),
//! before the request was sent, or after ([`ClientError::TimedOut`]). Only the last says
//! anything about the server ([`ClientError::is_local`]).
//!
//! A connection is made by a task of its own, which holds the call's slot meanwhile: if the
//! call is dropped while connecting (its time ran out), the connection is still made, within
//! `connect_timeout`, and goes to the pool for the next call. Under a burst, connections warm
//! the pool instead of being cut half made and made again.
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
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use smol::net::TcpStream;
use smol_hyper::rt::FuturesIo;
use tailguard::deadline_header::{encode_deadline_at, HEADER_NAME};
use tailguard::timeout::{timeout, Deadline};

pub use self::error::ClientError;
use self::fifo::Fifo;
use self::lease::{Conn, Lease, Open, Park};
pub use self::within::Limits;
use crate::rt::Exec;

mod error;
mod fifo;
mod lease;
mod within;

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

/// What a [`Pool`] has done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStats {
    /// Connections open now (idle or busy).
    pub open: u64,
    /// The most connections open at once so far.
    pub peak_open: u64,
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
    /// One permit per connection allowed, in a bounded pool.
    slots: Option<(Arc<Fifo>, NonZeroUsize)>,
    idle: Mutex<Vec<Conn>>,
    /// Shared with the connection tasks, which must not hold the pool (it holds their senders).
    open: Arc<AtomicU64>,
    peak_open: AtomicU64,
    connects: AtomicU64,
    reuses: AtomicU64,
    discarded: AtomicU64,
}

impl Pool {
    /// A pool of connections to `addr`, whose tasks run on `ex`. Requests carry `addr` as their
    /// `Host` header. It opens as many connections as calls need at once.
    pub fn new(addr: SocketAddr, config: ClientConfig, ex: Exec) -> Pool {
        Pool::build(addr, host_of(addr), config, None, ex)
    }

    /// Like [`new`](Pool::new), with the `Host` header given (the authority of a URL).
    pub fn with_host(addr: SocketAddr, host: HeaderValue, config: ClientConfig, ex: Exec) -> Pool {
        Pool::build(addr, host, config, None, ex)
    }

    /// Like [`new`](Pool::new), but with at most `max_connections` open: a call beyond waits
    /// for a connection to come free (see the [module documentation](self)).
    ///
    /// ```
    /// use tailguard_demo::backend::{BackendConfig, Backends, Profile};
    /// use tailguard_demo::client::{ClientConfig, Pool};
    /// use tailguard_demo::rt::Runtime;
    ///
    /// let rt = Runtime::new(2.try_into().unwrap());
    /// let backends = rt.block_on(Backends::start(BackendConfig::uniform(1, Profile::default()), rt.executor()))?;
    /// let pool = Pool::bounded(backends.addrs()[0], ClientConfig::default(), 2.try_into()?, rt.executor().clone());
    /// let calls: Vec<_> = (0..20).map(|_| rt.spawn({
    ///     let pool = pool.clone();
    ///     async move { pool.get("/key/1").await }
    /// })).collect();
    /// for call in calls {
    ///     assert_eq!(rt.block_on(call)?.status, 200);
    /// }
    /// assert!(pool.stats().peak_open <= 2); // 20 calls at once, never more than 2 connections
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn bounded(
        addr: SocketAddr,
        config: ClientConfig,
        max_connections: NonZeroUsize,
        ex: Exec,
    ) -> Pool {
        Pool::build(addr, host_of(addr), config, Some(max_connections), ex)
    }

    fn build(
        addr: SocketAddr,
        host: HeaderValue,
        config: ClientConfig,
        max_connections: Option<NonZeroUsize>,
        ex: Exec,
    ) -> Pool {
        Pool {
            inner: Arc::new(Inner {
                addr,
                host,
                config,
                ex,
                slots: max_connections.map(|max| (Fifo::new(max.get()), max)),
                idle: Mutex::new(Vec::new()),
                open: Arc::new(AtomicU64::new(0)),
                peak_open: AtomicU64::new(0),
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

    /// The most connections it keeps open, if it is [`bounded`](Pool::bounded).
    pub fn max_connections(&self) -> Option<NonZeroUsize> {
        self.inner.slots.as_ref().map(|(_, max)| *max)
    }

    /// What the pool has done, and holds now.
    pub fn stats(&self) -> PoolStats {
        let inner = &self.inner;
        PoolStats {
            open: inner.open.load(Relaxed),
            peak_open: inner.peak_open.load(Relaxed),
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

    /// Sends one request and reads the whole response, waiting as long as it takes for a slot
    /// of a bounded pool.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<Reply, ClientError> {
        let uri = parse_path(path)?;
        let lease = self.inner.lease().await;
        let mut sent = false;
        self.inner
            .exchange(lease, Outgoing::plain(method, uri, body), &mut sent)
            .await
    }
}

/// One request to send: what, and with which extra headers and deadline.
struct Outgoing<'a> {
    method: Method,
    uri: http::Uri,
    body: Bytes,
    /// Headers to send besides `Host`.
    headers: Option<&'a HeaderMap>,
    /// The call's deadline, sent as the time left in `tailguard-timeout`.
    deadline: Option<Instant>,
}

impl Outgoing<'_> {
    fn plain(method: Method, uri: http::Uri, body: Bytes) -> Self {
        Outgoing {
            method,
            uri,
            body,
            headers: None,
            deadline: None,
        }
    }
}

fn host_of(addr: SocketAddr) -> HeaderValue {
    HeaderValue::from_str(&addr.to_string()).expect("an address is a valid header")
}

fn parse_path(path: &str) -> Result<http::Uri, ClientError> {
    path.parse()
        .map_err(|_| ClientError::InvalidPath(path.to_owned()))
}

impl Inner {
    fn lock_idle(&self) -> MutexGuard<'_, Vec<Conn>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot, once one is free, in a bounded pool.
    async fn lease(&self) -> Lease {
        let slot = match &self.slots {
            Some((slots, _)) => Some(slots.acquire().await),
            None => None,
        };
        Lease { slot, conn: None }
    }

    /// Sends the request on an idle connection, or a new one, and reads the response; sets
    /// `sent` while the request is with a connection. With a `deadline`, the request carries
    /// the time left until it, as it is sent, in the `tailguard-timeout` header.
    async fn exchange(
        self: &Arc<Self>,
        mut lease: Lease,
        outgoing: Outgoing<'_>,
        sent: &mut bool,
    ) -> Result<Reply, ClientError> {
        let Outgoing {
            method,
            uri,
            body,
            headers,
            deadline,
        } = outgoing;
        let build = || {
            let mut request = Request::new(Full::new(body.clone()));
            *request.method_mut() = method.clone();
            *request.uri_mut() = uri.clone();
            if let Some(headers) = headers {
                *request.headers_mut() = headers.clone();
            }
            let headers = request.headers_mut();
            headers.insert(header::HOST, self.host.clone());
            if let Some(deadline) = deadline {
                let left = encode_deadline_at(Deadline::at(deadline), Instant::now());
                if let Ok(value) = HeaderValue::from_bytes(left.as_bytes()) {
                    headers.insert(HEADER_NAME, value);
                }
            }
            request
        };
        if let Some(mut conn) = self.checkout().await {
            lease.conn = Some(conn.park.clone());
            *sent = true;
            match conn.sender.try_send_request(build()).await {
                Ok(response) => {
                    self.reuses.fetch_add(1, Relaxed);
                    return self.finish(lease, conn, response).await;
                }
                // The connection went stale (the server closed or reset it while it sat idle)
                // before any answer: try once more on a fresh one. Only done for requests
                // that were never sent, or are idempotent.
                Err(error)
                    if error.message().is_some()
                        || method == Method::GET
                        || method == Method::HEAD =>
                {
                    self.discarded.fetch_add(1, Relaxed);
                    lease.conn = None;
                    *sent = false;
                }
                Err(error) => return Err(ClientError::Request(error.into_error())),
            }
        }
        let mut conn = self.connect_for(&mut lease).await?;
        lease.conn = Some(conn.park.clone());
        *sent = true;
        let response = conn
            .sender
            .send_request(build())
            .await
            .map_err(ClientError::Request)?;
        self.finish(lease, conn, response).await
    }

    /// Connects in a task of its own that holds the call's slot while it works. If the call is
    /// dropped meanwhile (its time ran out), the connection is still made, within
    /// `connect_timeout`, and goes to the pool for the next call: under a burst, connections
    /// warm the pool instead of being cut half made and made again.
    async fn connect_for(self: &Arc<Self>, lease: &mut Lease) -> Result<Conn, ClientError> {
        let (reply, answer) = smol::channel::bounded(1);
        let slot = lease.slot.take();
        let inner = self.clone();
        self.ex
            .spawn(async move {
                let made = inner.connect().await;
                if let Err(unclaimed) = reply.try_send((made, slot)) {
                    if let (Ok(conn), slot) = unclaimed.into_inner() {
                        inner.give_back(conn, &mut Lease { slot, conn: None });
                    }
                }
            })
            .detach();
        let (made, slot) = answer.recv().await.map_err(|_| {
            ClientError::Connect(io::Error::other(
                "the connecting task was dropped (is the executor shutting down?)",
            ))
        })?;
        lease.slot = slot;
        made
    }

    /// An idle connection that is still open and ready, if there is one.
    async fn checkout(&self) -> Option<Conn> {
        loop {
            let mut conn = self.lock_idle().pop()?;
            if !conn.sender.is_closed() && conn.sender.ready().await.is_ok() {
                return Some(conn);
            }
            self.discarded.fetch_add(1, Relaxed);
        }
    }

    async fn connect(&self) -> Result<Conn, ClientError> {
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
        let now_open = self.open.fetch_add(1, Relaxed) + 1;
        self.peak_open.fetch_max(now_open, Relaxed);
        let park = Arc::new(Park::default());
        let open = Open {
            open: self.open.clone(),
            park: park.clone(),
        };
        self.ex
            .spawn(async move {
                let _open = open;
                let _ = connection.await;
            })
            .detach();
        Ok(Conn { sender, park })
    }

    /// Reads the body to the end and returns the connection to the pool, and its slot with it.
    async fn finish(
        &self,
        mut lease: Lease,
        conn: Conn,
        response: http::Response<hyper::body::Incoming>,
    ) -> Result<Reply, ClientError> {
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(ClientError::Body)?.to_bytes();
        self.give_back(conn, &mut lease);
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// Returns `conn` to the pool if it is open and there is room, with `lease`'s slot (freed
    /// when the lease drops); otherwise `conn` closes and the slot stays with it until then.
    fn give_back(&self, conn: Conn, lease: &mut Lease) {
        lease.conn = Some(conn.park.clone());
        if !conn.sender.is_closed() {
            let mut idle = self.lock_idle();
            if idle.len() < self.config.max_idle {
                idle.push(conn);
                // Back in the pool before the slot is freed, so the next caller finds it
                // rather than connecting anew.
                lease.conn = None;
            }
        }
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
