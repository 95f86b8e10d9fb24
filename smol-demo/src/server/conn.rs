//! One HTTP/1 connection: hyper's protocol over a socket whose every wait is bounded.
//!
//! Half-closed clients are answered: a client may send its request and shut down its write
//! side (`shutdown(SHUT_WR)`) while it waits for the answer. RFC 9112 §9.6 does not forbid it,
//! and Go's `net/http` answers such requests too (its background read sees the EOF and cancels
//! the request's context, but the handler's response is still written). So the server reads
//! the EOF as "no more requests": the requests already received are answered, then the
//! connection closes. The price: the server cannot tell a half-close from a client that left,
//! so a handler runs to its end (within its own limits) even when its client is gone.

use std::convert::Infallible;
use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_io::{AsyncRead, AsyncWrite};
use futures_lite::future;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use smol::net::TcpStream;
use smol_hyper::rt::{FuturesIo, SmolTimer};
use tailguard::io::TimeoutIo;
use tailguard::shutdown::{Shutdown, ShutdownSignal};
use tailguard::time::DefaultTimer;

use super::routes::App;
use super::wire::{hyper_error_body, HeadEnd, HEAD_TIMEOUT};

/// Where a connection is in its request cycle: written by the service and [`ConnIo`], read by
/// the server when it looks for an idle connection to close.
const READING_HEAD: u8 = 0;
const HANDLING: u8 = 1;
const IDLE: u8 = 2;
/// Closed while idle to admit a new client: no further request is read.
const EVICTED: u8 = 3;

/// What the server knows of one open connection.
pub(super) struct ConnState {
    phase: AtomicU8,
    /// Whether [`ConnIo`] holds bytes of a request that hyper has not read yet.
    pipelined: AtomicBool,
    /// When the last response was ready, in nanoseconds since the server's epoch.
    idle_since: AtomicU64,
    /// The declared body length of the request being handled (`u64::MAX`: not known).
    body_len: AtomicU64,
    /// Fires on graceful shutdown, or when the connection is closed to admit a new one.
    close: Shutdown,
}

impl ConnState {
    pub(super) fn new(close: Shutdown) -> Arc<ConnState> {
        Arc::new(ConnState {
            phase: AtomicU8::new(READING_HEAD),
            pipelined: AtomicBool::new(false),
            idle_since: AtomicU64::new(0),
            body_len: AtomicU64::new(0),
            close,
        })
    }

    /// When the connection became idle (nanoseconds since the server's epoch), if it is idle
    /// between requests with nothing received of the next one.
    pub(super) fn idle_since(&self) -> Option<u64> {
        let idle =
            self.phase.load(Ordering::Acquire) == IDLE && !self.pipelined.load(Ordering::Acquire);
        idle.then(|| self.idle_since.load(Ordering::Relaxed))
    }

    /// Closes the connection if it is still idle; `false` if a request has begun meanwhile.
    /// No request is read after this, and hyper finishes writing the last response first.
    pub(super) fn evict(&self) -> bool {
        let evicted = self
            .phase
            .compare_exchange(IDLE, EVICTED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if evicted {
            self.close.trigger();
        }
        evicted
    }
}

/// Serves one connection until the client leaves, a limit trips, or shutdown ends it.
///
/// On the graceful signal (or eviction) hyper finishes the request in flight and closes; on
/// the force signal the connection is dropped where it stands.
pub(super) async fn serve(
    stream: TcpStream,
    app: Arc<App>,
    state: Arc<ConnState>,
    force: ShutdownSignal,
) {
    let config = app.config();
    if config.io_timeouts {
        let io = ConnIo::new(stream, config.header_read, state.clone())
            .keep_alive_idle(config.keep_alive_idle)
            .write_idle(config.write);
        drive(io, app, state, force).await;
    } else {
        // Only to measure what the limits cost: the bare socket, no waits bounded.
        drive(stream, app, state, force).await;
    }
}

async fn drive<I>(io: I, app: Arc<App>, state: Arc<ConnState>, force: ShutdownSignal)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service_app = app.clone();
    let service_state = state.clone();
    let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
        let app = service_app.clone();
        let state = service_state.clone();
        // Here, not in the future: hyper calls the service as soon as the head is parsed and
        // may read the body before it first polls the future.
        let body_len = hyper::body::Body::size_hint(request.body())
            .exact()
            .unwrap_or(u64::MAX);
        state.body_len.store(body_len, Ordering::Relaxed);
        state.phase.store(HANDLING, Ordering::Release);
        async move {
            let (response, done) = app.handle(request).await;
            state.idle_since.store(done, Ordering::Relaxed);
            state.phase.store(IDLE, Ordering::Release);
            Ok::<_, Infallible>(response)
        }
    });

    let mut connection = pin!(http1::Builder::new()
        .timer(SmolTimer::new())
        // hyper's header timer also runs while a kept-alive connection waits for its next
        // request, which would cap keep-alive at the header limit; ConnIo times heads instead.
        .header_read_timeout(None)
        .keep_alive(true)
        // Answer clients that shut down their write side after their request (module docs).
        .half_close(true)
        .serve_connection(FuturesIo::new(io), service));

    enum Ended {
        Done(Result<(), hyper::Error>),
        Close,
    }
    let close = state.close.signal();
    let first = future::or(async { Ended::Done(connection.as_mut().await) }, async {
        close.await;
        Ended::Close
    })
    .await;
    let result = match first {
        Ended::Done(result) => Some(result),
        Ended::Close => {
            connection.as_mut().graceful_shutdown();
            future::or(async { Some(connection.as_mut().await) }, async {
                force.await;
                None
            })
            .await
        }
    };
    if let Some(Err(_)) = result {
        app.record_connection_error();
    }
}

/// The socket as hyper sees it: [`TimeoutIo`] for keep-alive idle and write limits, plus a
/// header-read deadline that starts at accept for the first request and at the first byte of
/// each later one, and is lifted once the request reaches its handler.
///
/// While a head is read, only the bytes up to its end are handed to hyper; what follows in the
/// same read (a body, or the next pipelined request) is kept and handed over at the next read.
/// So a later head that came in the same packet as an earlier request is timed from when hyper
/// starts on it, like any other head, instead of waiting unseen in hyper's buffer under the
/// keep-alive limit. Likewise a body of declared length is handed over up to its end only. (A
/// partial head after a *chunked* body in the same read still reaches hyper with the body.)
///
/// It also gives hyper's own error answers (400, 414, 431, which hyper sends with an empty
/// body) a short text body, and answers a head that is cut at the header limit with 408.
pub(super) struct ConnIo<S> {
    io: TimeoutIo<S, DefaultTimer>,
    header_read: Duration,
    state: Arc<ConnState>,
    head_deadline: bool,
    /// Bytes read but not yet handed to hyper, from `kept_at` on.
    kept: Vec<u8>,
    kept_at: usize,
    /// Where the scan for the end of the head stands (see [`HeadEnd`]).
    head: HeadEnd,
    /// Whether some bytes of the current head have arrived.
    head_started: bool,
    /// Bytes of the current request's declared body not yet handed over (0: none declared or
    /// all handed over; `u64::MAX`: not known).
    body_left: u64,
    /// A replacement for hyper's own error answer, and how much of it is written.
    replacing: Option<(&'static [u8], usize)>,
    /// Whether the last write was left waiting, so a response may be half written.
    write_waiting: bool,
}

impl<S> ConnIo<S> {
    pub(super) fn new(stream: S, header_read: Duration, state: Arc<ConnState>) -> Self {
        let mut io = TimeoutIo::new(stream);
        io.set_read_deadline(Some(Instant::now() + header_read));
        ConnIo {
            io,
            header_read,
            state,
            head_deadline: true,
            kept: Vec::new(),
            kept_at: 0,
            head: HeadEnd::default(),
            head_started: false,
            body_left: 0,
            replacing: None,
            write_waiting: false,
        }
    }

    fn keep_alive_idle(mut self, limit: Duration) -> Self {
        self.io.set_read_idle(Some(limit));
        self
    }

    fn write_idle(mut self, limit: Duration) -> Self {
        self.io.set_write_idle(Some(limit));
        self
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> ConnIo<S> {
    /// Reads into `buf` from what was kept, or else from the socket.
    fn read_raw(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        if self.kept_at < self.kept.len() {
            let n = buf.len().min(self.kept.len() - self.kept_at);
            buf[..n].copy_from_slice(&self.kept[self.kept_at..self.kept_at + n]);
            self.kept_at += n;
            if self.kept_at == self.kept.len() {
                self.kept.clear();
                self.kept_at = 0;
                self.state.pipelined.store(false, Ordering::Release);
            }
            return Poll::Ready(Ok(n));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }

    /// Hands hyper only the head's bytes of `buf[..n]` and keeps the rest; returns how many
    /// bytes hyper gets.
    fn cut_at_head_end(&mut self, buf: &[u8], n: usize) -> usize {
        self.head_started = true;
        let Some(end) = self.head.find(&buf[..n]) else {
            return n;
        };
        self.head = HeadEnd::default();
        self.head_started = false;
        if end < n {
            if self.kept_at > 0 {
                // The bytes came from `kept`: give back what hyper does not get.
                self.kept_at -= n - end;
            } else {
                self.kept.clear();
                self.kept.extend_from_slice(&buf[end..n]);
                self.kept_at = 0;
            }
            self.state.pipelined.store(true, Ordering::Release);
        }
        end
    }

    /// Writes a 408 if the head was cut at the header limit after some of it arrived and no
    /// response is half written; one attempt, as the connection closes anyway.
    fn answer_head_timeout(&mut self, cx: &mut Context<'_>) {
        if self.head_started && !self.write_waiting {
            let _ = Pin::new(&mut self.io).poll_write(cx, HEAD_TIMEOUT);
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for ConnIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let mut phase = this.state.phase.load(Ordering::Acquire);
        if phase == EVICTED {
            // Closed to admit a new client: the connection task ends it; read nothing more.
            return Poll::Pending;
        }
        if phase != READING_HEAD && this.head_deadline {
            // The head is in: the handler bounds the body itself, and keep-alive idle bounds the
            // wait for the next request.
            this.io.set_read_deadline(None);
            this.head_deadline = false;
            this.body_left = if phase == HANDLING {
                this.state.body_len.load(Ordering::Relaxed)
            } else {
                0
            };
        }
        // Hand over a declared body up to its end only: what follows is the next request.
        let reading_body = phase == HANDLING && this.body_left > 0;
        let limit = if reading_body {
            buf.len()
                .min(usize::try_from(this.body_left).unwrap_or(usize::MAX))
        } else {
            buf.len()
        };
        let n = match this.read_raw(cx, &mut buf[..limit]) {
            Poll::Ready(Ok(n)) => n,
            Poll::Ready(Err(error)) => {
                if error.kind() == io::ErrorKind::TimedOut && this.head_deadline {
                    this.answer_head_timeout(cx);
                }
                return Poll::Ready(Err(error));
            }
            Poll::Pending => return Poll::Pending,
        };
        if reading_body {
            this.body_left = this.body_left.saturating_sub(n as u64);
        }
        if n > 0 && phase == IDLE {
            if this
                .state
                .phase
                .compare_exchange(IDLE, READING_HEAD, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                // Evicted between the check and the read: the bytes are dropped with the
                // connection, as any request racing a keep-alive close is (RFC 9112 §9.3.1).
                return Poll::Pending;
            }
            // First bytes of the next request: its head must arrive in time.
            this.io
                .set_read_deadline(Some(Instant::now() + this.header_read));
            this.head_deadline = true;
            phase = READING_HEAD;
        }
        if n > 0 && phase == READING_HEAD {
            return Poll::Ready(Ok(this.cut_at_head_end(buf, n)));
        }
        Poll::Ready(Ok(n))
    }
}

impl<S: AsyncWrite + Unpin> ConnIo<S> {
    /// Writes the replacement of hyper's own error answer; `Ready` once all of it is out.
    fn write_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((text, written)) = &mut self.replacing {
            if *written == text.len() {
                return Poll::Ready(Ok(()));
            }
            match Pin::new(&mut self.io).poll_write(cx, &text[*written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => *written += n,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ConnIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.replacing.is_none() && this.state.phase.load(Ordering::Relaxed) == READING_HEAD {
            // No handler has run for this head: a response now is hyper's own error answer.
            this.replacing = hyper_error_body(buf).map(|text| (text, 0));
        }
        if this.replacing.is_some() {
            return match this.write_replacement(cx) {
                Poll::Ready(Ok(())) => Poll::Ready(Ok(buf.len())),
                Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
                Poll::Pending => Poll::Pending,
            };
        }
        let result = Pin::new(&mut this.io).poll_write(cx, buf);
        this.write_waiting = result.is_pending();
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.replacing.is_some() || this.state.phase.load(Ordering::Relaxed) == READING_HEAD {
            // Possibly hyper's own error answer: look at it as one buffer.
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &b[..]);
            return Pin::new(this).poll_write(cx, first);
        }
        let result = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.write_waiting = result.is_pending();
        result
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_close(cx)
    }
}
