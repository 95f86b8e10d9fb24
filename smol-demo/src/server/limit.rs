//! The connection limit: which open connection is idle longest, to close it for a new client,
//! and the bounded 503 for a client that finds every slot busy.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use smol::net::TcpStream;
use tailguard::io::TimeoutIo;

use super::conn::ConnState;

/// The open connections, to find the longest idle one when every slot is taken. Locked once
/// when a connection opens and once when it closes, and for a scan only at the limit.
#[derive(Default)]
pub(super) struct Registry {
    open: Mutex<HashMap<u64, Arc<ConnState>>>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<ConnState>>> {
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn insert(&self, id: u64, state: Arc<ConnState>) {
        self.lock().insert(id, state);
    }

    pub(super) fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Closes the connection idle longest between requests; `false` if none is idle.
    pub(super) fn evict_longest_idle(&self) -> bool {
        let open = self.lock();
        loop {
            let longest = open
                .values()
                .filter_map(|c| Some((c.idle_since()?, c)))
                .min_by_key(|(since, _)| *since);
            match longest {
                None => return false,
                Some((_, c)) if c.evict() => return true,
                // It began a request since the scan (and is no longer idle): look again.
                Some(_) => continue,
            }
        }
    }
}

/// Most refusals (503 answers) in progress at once; past it, connections are closed at once.
pub(super) const MAX_REFUSING: usize = 256;

/// How long a refused connection is read (and dropped) after its 503.
const REFUSE_LINGER: Duration = Duration::from_millis(100);

/// The answer to a client that finds every slot busy.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\n\
connection: close\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 55\r\n\r\n\
every connection slot is busy (max_connections); retry\n";

/// Answers 503 with `Retry-After` and closes, at a bounded cost: one write of a static answer
/// (within `write`, at most 250 ms), no parsing, and at most [`REFUSE_LINGER`] and 16 KiB of
/// reading what the client sent, so that closing does not reset the connection (a reset can
/// destroy the answer before the client reads it, RFC 9112 §9.6).
pub(super) async fn refuse(stream: TcpStream, write: Duration) {
    let mut io = TimeoutIo::new(stream);
    io.set_write_idle(Some(write.min(Duration::from_millis(250))));
    io.set_read_deadline(Some(Instant::now() + REFUSE_LINGER));
    if io.write_all(REFUSED).await.is_err() {
        return;
    }
    let _ = io.get_ref().shutdown(std::net::Shutdown::Write);
    let mut buf = [0u8; 1024];
    let mut read = 0;
    while read < 16 * 1024 {
        match io.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => read += n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_whole_503_with_retry_after() {
        let text = std::str::from_utf8(REFUSED).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains("\r\nretry-after: 1\r\n"));
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{text}"
        );
    }
}
