//! Time limits on a byte stream: [`TimeoutIo`].
//!
//! A server that reads without a limit can be held open forever by a client that sends one byte a
//! minute. `TimeoutIo` wraps any [`AsyncRead`] + [`AsyncWrite`] (and [`AsyncBufRead`]) and bounds
//! four waits:
//!
//! | limit | trips when |
//! |---|---|
//! | `read_idle` | a read has waited this long with no bytes arriving |
//! | `read_total` | this long has passed since the read window started (first read, or the last [`restart_read_total`](TimeoutIo::restart_read_total), e.g. once per request) |
//! | `write_idle` | a write or flush has waited this long with no progress |
//! | `write_total` | as `read_total`, for writes |
//!
//! A limit that trips fails the operation with [`io::ErrorKind::TimedOut`] and a message naming
//! the limit.
//!
//! # Cost
//!
//! This sits on the hot path of every connection, so a successful read does not re-arm a timer.
//! When a read has to wait, the wrapper notes the instant the wait began and keeps the timer it
//! already armed; only when that timer fires early (it was armed for an earlier wait) is it moved
//! to the current wait's limit. A stream that keeps data flowing therefore costs one clock read
//! per wait and almost no timer traffic.
//!
//! ```
//! use std::time::Duration;
//! use futures::io::AsyncReadExt;
//! use tailguard::io::TimeoutIo;
//! use tailguard::time::ManualTimer;
//!
//! let timer = ManualTimer::new();
//! // A peer that never sends: the pipe's writer stays open but silent.
//! let (reader, _writer) = piper::pipe(64);
//! let mut stream = TimeoutIo::with_timer(reader, timer.clone())
//!     .read_idle(Duration::from_secs(1));
//!
//! let mut buf = [0u8; 16];
//! let err = timer.block_on(stream.read(&mut buf)).unwrap_err();
//! assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
//! assert!(err.to_string().contains("read_idle"));
//! ```
//!
//! (`piper::pipe` here stands for any socket; tailguard itself needs only `futures-io`.)
//!
//! # With tokio IO
//!
//! `TimeoutIo` speaks the `futures-io` traits, which smol's and async-std's sockets implement.
//! tokio's have traits of their own; tokio-util's `compat` adapter converts in both directions,
//! at no cost beyond a call: wrap the tokio stream with `.compat()` to get a `futures-io` one,
//! put `TimeoutIo` around that, and `.compat()` the result again if tokio code is to use it.
//!
//! ```
//! use std::time::Duration;
//! use tailguard::io::TimeoutIo;
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! use tokio_util::compat::{FuturesAsyncReadCompatExt, TokioAsyncReadCompatExt};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! // An in-memory tokio stream standing in for a `tokio::net::TcpStream`.
//! let (client, mut server) = tokio::io::duplex(64);
//! let guarded = TimeoutIo::new(client.compat()) // tokio -> futures-io, then the limits
//!     .read_idle(Duration::from_millis(50));
//! let mut stream = guarded.compat(); // futures-io -> tokio, for tokio-based code
//!
//! server.write_all(b"hello").await.unwrap();
//! let mut buf = [0u8; 5];
//! stream.read_exact(&mut buf).await.unwrap();
//! assert_eq!(&buf, b"hello");
//!
//! // The peer goes quiet: the next read fails after 50 ms instead of waiting forever.
//! let err = stream.read(&mut buf).await.unwrap_err();
//! assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
//! assert!(err.to_string().contains("read_idle"));
//! # drop(server);
//! # });
//! ```
//!
//! (This uses the default [`HeapTimer`](crate::time::HeapTimer), which runs under
//! tokio too; [`with_timer`](TimeoutIo::with_timer) takes a tokio-backed one, see
//! [`Timer`].)

use std::fmt;
use std::future::Future;
use std::io::{self, IoSlice, IoSliceMut};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_io::{AsyncBufRead, AsyncRead, AsyncWrite};
use pin_project::pin_project;

#[cfg(any(feature = "async-io", feature = "futures-timer"))]
use crate::time::DefaultTimer;
use crate::time::{deadline_after, Timer};

/// A stream with idle and total time limits on its reads and writes. See the [module docs](self).
///
/// Limits are off until set. Setting or restarting a limit takes effect at the next operation.
/// Dropping the wrapper drops its timers: nothing stays registered.
#[pin_project]
pub struct TimeoutIo<S, T: Timer> {
    #[pin]
    inner: S,
    timer: T,
    read: Limits<T::Sleep>,
    write: Limits<T::Sleep>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    Read,
    Write,
}

impl Direction {
    fn idle_error(self, limit: Duration) -> io::Error {
        let (what, field) = match self {
            Direction::Read => ("no data arrived", "read_idle"),
            Direction::Write => ("the peer accepted no data", "write_idle"),
        };
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{field} limit of {limit:?} reached: {what} for that long (TimeoutIo {field})"),
        )
    }

    fn total_error(self, limit: Option<Duration>) -> io::Error {
        let (what, field, setter) = match self {
            Direction::Read => ("reading", "read_total", "set_read_deadline"),
            Direction::Write => ("writing", "write_total", "set_write_deadline"),
        };
        let message = match limit {
            Some(limit) => format!(
                "{field} limit of {limit:?} reached: {what} took longer than allowed (TimeoutIo {field})"
            ),
            None => format!(
                "deadline reached while {what}: it took longer than allowed (TimeoutIo {setter})"
            ),
        };
        io::Error::new(io::ErrorKind::TimedOut, message)
    }
}

/// The limits and timer state of one direction.
struct Limits<Z> {
    idle: Option<Duration>,
    total: Option<Duration>,
    /// The total deadline in force; `None` with `total` set means "starts at the next operation".
    deadline: Option<Instant>,
    /// Set while an operation waits: the instant the current wait began.
    waiting_since: Option<Instant>,
    sleep: Option<Z>,
    /// The instant `sleep` is armed for.
    armed_for: Option<Instant>,
}

impl<Z> Limits<Z> {
    const OFF: Self = Limits {
        idle: None,
        total: None,
        deadline: None,
        waiting_since: None,
        sleep: None,
        armed_for: None,
    };

    fn is_off(&self) -> bool {
        self.idle.is_none() && self.deadline.is_none() && self.total.is_none()
    }
}

#[cfg(any(feature = "async-io", feature = "futures-timer"))]
impl<S> TimeoutIo<S, DefaultTimer> {
    /// Wraps `inner` with no limits set, on the [`DefaultTimer`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use tailguard::io::TimeoutIo;
    ///
    /// let (socket, _peer) = piper::pipe(64);
    /// let stream = TimeoutIo::new(socket)
    ///     .read_idle(Duration::from_secs(30))
    ///     .write_idle(Duration::from_secs(1));
    /// # drop(stream);
    /// ```
    pub fn new(inner: S) -> Self {
        TimeoutIo {
            inner,
            timer: DefaultTimer::default(),
            read: Limits::OFF,
            write: Limits::OFF,
        }
    }
}

impl<S, T: Timer> TimeoutIo<S, T> {
    /// Wraps `inner` with no limits set, measuring time on `timer`.
    pub fn with_timer(inner: S, timer: T) -> Self {
        TimeoutIo {
            inner,
            timer,
            read: Limits::OFF,
            write: Limits::OFF,
        }
    }

    /// Fails a read that waits `limit` with no data arriving.
    pub fn read_idle(mut self, limit: Duration) -> Self {
        self.set_read_idle(Some(limit));
        self
    }

    /// Fails reads once `limit` has passed since the read window started: the first read, or the
    /// last [`restart_read_total`](TimeoutIo::restart_read_total).
    pub fn read_total(mut self, limit: Duration) -> Self {
        self.set_read_total(Some(limit));
        self
    }

    /// Fails a write or flush that waits `limit` with no progress.
    pub fn write_idle(mut self, limit: Duration) -> Self {
        self.set_write_idle(Some(limit));
        self
    }

    /// Fails writes once `limit` has passed since the write window started: the first write, or
    /// the last [`restart_write_total`](TimeoutIo::restart_write_total).
    pub fn write_total(mut self, limit: Duration) -> Self {
        self.set_write_total(Some(limit));
        self
    }

    /// Sets or clears the read-idle limit.
    pub fn set_read_idle(&mut self, limit: Option<Duration>) {
        self.read.idle = limit;
    }

    /// Sets or clears the read-total limit; the window starts at the next read.
    pub fn set_read_total(&mut self, limit: Option<Duration>) {
        self.read.total = limit;
        self.read.deadline = None;
    }

    /// Sets or clears the write-idle limit.
    pub fn set_write_idle(&mut self, limit: Option<Duration>) {
        self.write.idle = limit;
    }

    /// Sets or clears the write-total limit; the window starts at the next write.
    pub fn set_write_total(&mut self, limit: Option<Duration>) {
        self.write.total = limit;
        self.write.deadline = None;
    }

    /// Starts a fresh read-total window at the next read (e.g. when a new request begins).
    pub fn restart_read_total(&mut self) {
        self.read.deadline = None;
    }

    /// Starts a fresh write-total window at the next write.
    pub fn restart_write_total(&mut self) {
        self.write.deadline = None;
    }

    /// Fails reads from `deadline` on (or lifts the deadline with `None`), overriding `read_total`
    /// until the next restart.
    pub fn set_read_deadline(&mut self, deadline: Option<Instant>) {
        self.read.deadline = deadline;
    }

    /// Fails writes from `deadline` on (or lifts it with `None`).
    pub fn set_write_deadline(&mut self, deadline: Option<Instant>) {
        self.write.deadline = deadline;
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped stream, mutably. Reading or writing through it bypasses the limits.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped stream, pinned.
    pub fn get_pin_mut(self: Pin<&mut Self>) -> Pin<&mut S> {
        self.project().inner
    }

    /// Unwraps the stream, dropping the limits and their timers.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// Applies `limits` to the outcome of one poll of the inner stream.
fn guard<T: Timer, R>(
    timer: &T,
    limits: &mut Limits<T::Sleep>,
    direction: Direction,
    cx: &mut Context<'_>,
    outcome: Poll<io::Result<R>>,
) -> Poll<io::Result<R>> {
    if limits.is_off() {
        return outcome;
    }
    match outcome {
        Poll::Ready(Ok(value)) => {
            limits.waiting_since = None;
            match (limits.total, limits.deadline) {
                (_, Some(deadline)) => {
                    // Progress past the total deadline still counts as too late: a fast peer
                    // must not stretch a request past its cap.
                    if timer.now() >= deadline {
                        return Poll::Ready(Err(direction.total_error(limits.total)));
                    }
                }
                (Some(total), None) => {
                    limits.deadline = Some(deadline_after(timer.now(), total));
                }
                (None, None) => {}
            }
            Poll::Ready(Ok(value))
        }
        Poll::Ready(Err(error)) => {
            limits.waiting_since = None;
            Poll::Ready(Err(error))
        }
        Poll::Pending => wait(timer, limits, direction, cx),
    }
}

#[cold]
fn wait<T: Timer, R>(
    timer: &T,
    limits: &mut Limits<T::Sleep>,
    direction: Direction,
    cx: &mut Context<'_>,
) -> Poll<io::Result<R>> {
    let now = match limits.waiting_since {
        Some(_) => None,
        None => {
            let now = timer.now();
            limits.waiting_since = Some(now);
            Some(now)
        }
    };
    if let (Some(total), None) = (limits.total, limits.deadline) {
        let now = now.unwrap_or_else(|| timer.now());
        limits.deadline = Some(deadline_after(now, total));
    }
    loop {
        let since = limits.waiting_since.expect("set above");
        let idle_due = limits.idle.map(|idle| deadline_after(since, idle));
        let due = match (idle_due, limits.deadline) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => return Poll::Pending,
        };
        // A timer armed for this wait or an earlier one stays: it is moved only when it fires
        // early. One armed for later than `due` (a tightened deadline) is moved now.
        match limits.sleep.as_mut() {
            Some(_) if limits.armed_for.is_some_and(|armed| armed <= due) => {}
            Some(sleep) => {
                timer.reset(sleep, due);
                limits.armed_for = Some(due);
            }
            None => {
                limits.sleep = Some(timer.sleep_until(due));
                limits.armed_for = Some(due);
            }
        }
        let sleep = limits.sleep.as_mut().expect("armed above");
        if Pin::new(sleep).poll(cx).is_pending() {
            return Poll::Pending;
        }
        // The timer fired. Trip if a limit is really due; otherwise it was armed for an earlier
        // wait, so move it to this wait's limit and go round again.
        let now = timer.now();
        if let Some(deadline) = limits.deadline {
            if now >= deadline {
                limits.waiting_since = None;
                return Poll::Ready(Err(direction.total_error(limits.total)));
            }
        }
        if let (Some(idle), Some(due)) = (limits.idle, idle_due) {
            if now >= due {
                limits.waiting_since = None;
                return Poll::Ready(Err(direction.idle_error(idle)));
            }
        }
        let fresh = due.max(now);
        let sleep = limits.sleep.as_mut().expect("armed above");
        timer.reset(sleep, fresh);
        limits.armed_for = Some(fresh);
    }
}

impl<S: AsyncRead, T: Timer> AsyncRead for TimeoutIo<S, T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let outcome = this.inner.poll_read(cx, buf);
        guard(this.timer, this.read, Direction::Read, cx, outcome)
    }

    fn poll_read_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let outcome = this.inner.poll_read_vectored(cx, bufs);
        guard(this.timer, this.read, Direction::Read, cx, outcome)
    }
}

impl<S: AsyncBufRead, T: Timer> AsyncBufRead for TimeoutIo<S, T> {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.project();
        let outcome = this.inner.poll_fill_buf(cx);
        guard(this.timer, this.read, Direction::Read, cx, outcome)
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        self.project().inner.consume(amt);
    }
}

impl<S: AsyncWrite, T: Timer> AsyncWrite for TimeoutIo<S, T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let outcome = this.inner.poll_write(cx, buf);
        guard(this.timer, this.write, Direction::Write, cx, outcome)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let outcome = this.inner.poll_write_vectored(cx, bufs);
        guard(this.timer, this.write, Direction::Write, cx, outcome)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let outcome = this.inner.poll_flush(cx);
        guard(this.timer, this.write, Direction::Write, cx, outcome)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let outcome = this.inner.poll_close(cx);
        guard(this.timer, this.write, Direction::Write, cx, outcome)
    }
}

impl<S: fmt::Debug, T: Timer> fmt::Debug for TimeoutIo<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeoutIo")
            .field("inner", &self.inner)
            .field("read_idle", &self.read.idle)
            .field("read_total", &self.read.total)
            .field("write_idle", &self.write.idle)
            .field("write_total", &self.write.total)
            .finish()
    }
}

#[cfg(test)]
mod tests;
