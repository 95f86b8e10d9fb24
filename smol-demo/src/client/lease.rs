//! How a bounded pool's slots follow its connections: a slot is held by a call, then by the
//! connection it used until that connection is back in the pool or closed.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};

use hyper::client::conn::http1::SendRequest;

use super::fifo::Permit;
use super::Body;

/// One connection: the sender calls use, and where a call that could not give the connection
/// back leaves its slot until the connection's task ends.
pub(super) struct Conn {
    pub(super) sender: SendRequest<Body>,
    pub(super) park: Arc<Park>,
}

/// A slot held for a connection that no call uses any more but that is still open (its call
/// was cancelled or failed): freed when the connection's task ends.
#[derive(Default)]
pub(super) struct Park(Mutex<Parked>);

#[derive(Default)]
struct Parked {
    closed: bool,
    slot: Option<Permit>,
}

impl Park {
    fn lock(&self) -> MutexGuard<'_, Parked> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Holds `slot` until the connection's task ends, or frees it now if it has.
    pub(super) fn hold(&self, slot: Permit) {
        let mut parked = self.lock();
        if !parked.closed {
            parked.slot = Some(slot);
        }
    }

    /// The connection's task ended: frees the slot parked with it, and any parked later.
    fn close(&self) {
        let slot = {
            let mut parked = self.lock();
            parked.closed = true;
            parked.slot.take()
        };
        drop(slot);
    }
}

/// Lives as long as a connection's task: counts it open, and frees a slot parked with it.
pub(super) struct Open {
    pub(super) open: Arc<AtomicU64>,
    pub(super) park: Arc<Park>,
}

impl Drop for Open {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Relaxed);
        self.park.close();
    }
}

/// One call's hold on a bounded pool: its slot, and the connection it is using. Dropped with
/// the call however it ends: the slot is freed at once if the connection went back to the pool
/// (or there was none yet), and otherwise parked with the connection until it closes.
pub(super) struct Lease {
    pub(super) slot: Option<Permit>,
    pub(super) conn: Option<Arc<Park>>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let (Some(slot), Some(park)) = (self.slot.take(), &self.conn) {
            park.hold(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use super::super::fifo::Fifo;
    use super::*;

    fn acquired(slots: &Arc<Fifo>) -> Option<Permit> {
        let mut acquire = slots.acquire();
        let cx = &mut std::task::Context::from_waker(std::task::Waker::noop());
        match std::pin::Pin::new(&mut acquire).poll(cx) {
            std::task::Poll::Ready(permit) => Some(permit),
            std::task::Poll::Pending => panic!("no free slot"),
        }
    }

    #[test]
    fn a_parked_slot_is_freed_when_the_connection_closes_and_never_lost() {
        let slots = Fifo::new(2);
        let park = Arc::new(Park::default());
        let open = Open {
            open: Arc::new(AtomicU64::new(1)),
            park: park.clone(),
        };
        // A call ends with its connection still open: the slot stays taken.
        drop(Lease {
            slot: acquired(&slots),
            conn: Some(park.clone()),
        });
        assert_eq!(slots.free(), 1);
        // The connection's task ends: the slot is free.
        drop(open);
        assert_eq!(slots.free(), 2);
        // Parked after the task ended: freed at once.
        drop(Lease {
            slot: acquired(&slots),
            conn: Some(park),
        });
        assert_eq!(slots.free(), 2);
        // A call that never had a connection frees its slot at once.
        drop(Lease {
            slot: acquired(&slots),
            conn: None,
        });
        assert_eq!(slots.free(), 2);
    }
}
