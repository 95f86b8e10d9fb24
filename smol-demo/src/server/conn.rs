//! One HTTP/1 connection: hyper's protocol over a socket whose every wait is bounded.

use std::convert::Infallible;
use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU8, Ordering};
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
use tailguard::shutdown::ShutdownSignal;
use tailguard::time::AsyncIoTimer;

use super::routes::App;

/// Where a connection is in its request cycle; written by the service, read by [`ConnIo`].
const READING_HEAD: u8 = 0;
const HANDLING: u8 = 1;
const IDLE: u8 = 2;

/// Serves one connection until the client leaves, a limit trips, or shutdown ends it.
///
/// On the graceful signal hyper finishes the request in flight and closes; on the force signal
/// the connection is dropped where it stands.
pub(super) async fn serve(
    stream: TcpStream,
    app: Arc<App>,
    graceful: ShutdownSignal,
    force: ShutdownSignal,
) {
    let config = app.config();
    let phase = Arc::new(AtomicU8::new(READING_HEAD));
    if config.io_timeouts {
        let io = ConnIo::new(stream, config.header_read, phase.clone())
            .keep_alive_idle(config.keep_alive_idle)
            .write_idle(config.write);
        drive(io, app, phase, graceful, force).await;
    } else {
        // Only to measure what the limits cost: the bare socket, no waits bounded.
        drive(stream, app, phase, graceful, force).await;
    }
}

async fn drive<I>(
    io: I,
    app: Arc<App>,
    phase: Arc<AtomicU8>,
    graceful: ShutdownSignal,
    force: ShutdownSignal,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service_app = app.clone();
    let service = service_fn(move |request| {
        let app = service_app.clone();
        let phase = phase.clone();
        async move {
            phase.store(HANDLING, Ordering::Release);
            let response = app.handle(request).await;
            phase.store(IDLE, Ordering::Release);
            Ok::<_, Infallible>(response)
        }
    });

    let mut connection = pin!(http1::Builder::new()
        .timer(SmolTimer::new())
        // hyper's header timer also runs while a kept-alive connection waits for its next
        // request, which would cap keep-alive at the header limit; ConnIo times heads instead.
        .header_read_timeout(None)
        .keep_alive(true)
        .serve_connection(FuturesIo::new(io), service));

    enum Ended {
        Done(Result<(), hyper::Error>),
        Shutdown,
    }
    let first = future::or(async { Ended::Done(connection.as_mut().await) }, async {
        graceful.await;
        Ended::Shutdown
    })
    .await;
    let result = match first {
        Ended::Done(result) => Some(result),
        Ended::Shutdown => {
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
pub(super) struct ConnIo<S> {
    io: TimeoutIo<S, AsyncIoTimer>,
    header_read: Duration,
    phase: Arc<AtomicU8>,
    head_deadline: bool,
}

impl<S> ConnIo<S> {
    pub(super) fn new(stream: S, header_read: Duration, phase: Arc<AtomicU8>) -> Self {
        let mut io = TimeoutIo::new(stream);
        io.set_read_deadline(Some(Instant::now() + header_read));
        ConnIo {
            io,
            header_read,
            phase,
            head_deadline: true,
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

impl<S: AsyncRead + Unpin> AsyncRead for ConnIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let phase = this.phase.load(Ordering::Acquire);
        if phase != READING_HEAD && this.head_deadline {
            // The head is in: the handler bounds the body itself, and keep-alive idle bounds the
            // wait for the next request.
            this.io.set_read_deadline(None);
            this.head_deadline = false;
        }
        let result = Pin::new(&mut this.io).poll_read(cx, buf);
        if phase == IDLE && !this.head_deadline {
            if let Poll::Ready(Ok(n)) = result {
                if n > 0 {
                    // First bytes of the next request: its head must arrive in time.
                    this.io
                        .set_read_deadline(Some(Instant::now() + this.header_read));
                    this.head_deadline = true;
                    this.phase.store(READING_HEAD, Ordering::Release);
                }
            }
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ConnIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_close(cx)
    }
}
