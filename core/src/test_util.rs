//! Helpers shared by the unit tests of several modules.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_io::{AsyncRead, AsyncWrite};

/// `n` milliseconds.
pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Counts the drops of the [`DropGuard`]s it hands out, to show that cancelled work is really
/// dropped. Clones share the count.
#[derive(Clone, Debug, Default)]
pub(crate) struct Drops(Arc<AtomicUsize>);

/// Adds one to its [`Drops`] when dropped; move it into a future to count that future's drop.
#[derive(Debug)]
pub(crate) struct DropGuard(Drops);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0 .0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Drops {
    /// A guard that counts here when dropped.
    pub(crate) fn guard(&self) -> DropGuard {
        DropGuard(self.clone())
    }

    /// How many guards have been dropped.
    pub(crate) fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// A deterministic in-memory pipe of `capacity` bytes, standing in for a socket in IO tests:
/// a read is ready exactly when bytes are buffered or the writer is gone, a write exactly when
/// there is room (unlike `piper`, which also yields at random now and then).
pub(crate) fn pipe(capacity: usize) -> (PipeReader, PipeWriter) {
    let shared = Arc::new(Mutex::new(Pipe {
        buf: VecDeque::with_capacity(capacity),
        capacity,
        reader: None,
        writer: None,
        reader_gone: false,
        writer_gone: false,
    }));
    (PipeReader(shared.clone()), PipeWriter(shared))
}

#[derive(Debug)]
struct Pipe {
    buf: VecDeque<u8>,
    capacity: usize,
    reader: Option<Waker>,
    writer: Option<Waker>,
    reader_gone: bool,
    writer_gone: bool,
}

/// The reading end of [`pipe`].
#[derive(Debug)]
pub(crate) struct PipeReader(Arc<Mutex<Pipe>>);

/// The writing end of [`pipe`].
#[derive(Debug)]
pub(crate) struct PipeWriter(Arc<Mutex<Pipe>>);

impl AsyncRead for PipeReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut pipe = self.0.lock().unwrap();
        if pipe.buf.is_empty() {
            if pipe.writer_gone {
                return Poll::Ready(Ok(0));
            }
            pipe.reader = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = out.len().min(pipe.buf.len());
        for (slot, byte) in out.iter_mut().zip(pipe.buf.drain(..n)) {
            *slot = byte;
        }
        if let Some(writer) = pipe.writer.take() {
            writer.wake();
        }
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for PipeWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut pipe = self.0.lock().unwrap();
        if pipe.reader_gone {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let room = pipe.capacity - pipe.buf.len();
        if room == 0 {
            pipe.writer = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = room.min(data.len());
        pipe.buf.extend(&data[..n]);
        if let Some(reader) = pipe.reader.take() {
            reader.wake();
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut pipe = self.0.lock().unwrap();
        pipe.writer_gone = true;
        if let Some(reader) = pipe.reader.take() {
            reader.wake();
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for PipeReader {
    fn drop(&mut self) {
        let mut pipe = self.0.lock().unwrap();
        pipe.reader_gone = true;
        if let Some(writer) = pipe.writer.take() {
            writer.wake();
        }
    }
}

impl Drop for PipeWriter {
    fn drop(&mut self) {
        let mut pipe = self.0.lock().unwrap();
        pipe.writer_gone = true;
        if let Some(reader) = pipe.reader.take() {
            reader.wake();
        }
    }
}

#[test]
fn drops_counts_each_guard_once() {
    let drops = Drops::default();
    let (a, b) = (drops.guard(), drops.clone().guard());
    assert_eq!(drops.count(), 0);
    drop(a);
    assert_eq!(drops.count(), 1);
    drop(b);
    assert_eq!(drops.count(), 2);
}
