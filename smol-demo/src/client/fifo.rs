//! A semaphore that serves its waiters first come, first served.
//!
//! async-lock's `Semaphore` lets a newcomer take a permit that was just released before the
//! waiter woken for it runs. For a connection pool that is unfair in a way that matters: the
//! task whose call just ended starts its next call in the same poll and takes the slot back, so
//! a caller already running keeps every slot while the others wait out their time. (Measured on
//! ten concurrent 1000-key fan-outs: two got 500 keys each, others a handful or none.) Here a
//! released permit goes straight to the oldest waiter, and nobody overtakes a queue.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;

/// Permits handed out in the order they were asked for.
pub(super) struct Fifo {
    state: Mutex<State>,
}

struct State {
    free: usize,
    queue: VecDeque<Arc<Waiter>>,
}

#[derive(Default)]
struct Waiter {
    granted: AtomicBool,
    waker: AtomicWaker,
}

/// One permit; dropping it hands it to the oldest waiter, or frees it.
pub(super) struct Permit {
    fifo: Arc<Fifo>,
}

/// The future of [`Fifo::acquire`]; dropping it gives up its place, or passes on a permit it
/// was handed but had not taken yet.
pub(super) struct Acquire {
    fifo: Arc<Fifo>,
    waiter: Option<Arc<Waiter>>,
    done: bool,
}

impl Fifo {
    pub(super) fn new(permits: usize) -> Arc<Fifo> {
        Arc::new(Fifo {
            state: Mutex::new(State {
                free: permits,
                queue: VecDeque::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a permit, behind everyone already waiting.
    pub(super) fn acquire(self: &Arc<Self>) -> Acquire {
        Acquire {
            fifo: self.clone(),
            waiter: None,
            done: false,
        }
    }

    /// Permits free now (for tests).
    #[cfg(test)]
    pub(super) fn free(&self) -> usize {
        self.lock().free
    }

    /// Hands a permit to the oldest waiter, or frees it.
    fn release(&self) {
        let mut state = self.lock();
        match state.queue.pop_front() {
            Some(next) => {
                next.granted.store(true, Ordering::Release);
                next.waker.wake();
            }
            None => state.free += 1,
        }
    }
}

impl Future for Acquire {
    type Output = Permit;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Permit> {
        assert!(!self.done, "`Acquire` polled after completion");
        match &self.waiter {
            None => {
                let mut state = self.fifo.lock();
                if state.free > 0 && state.queue.is_empty() {
                    state.free -= 1;
                } else {
                    let waiter = Arc::new(Waiter::default());
                    waiter.waker.register(cx.waker());
                    state.queue.push_back(waiter.clone());
                    drop(state);
                    self.waiter = Some(waiter);
                    return Poll::Pending;
                }
            }
            Some(waiter) => {
                waiter.waker.register(cx.waker());
                if !waiter.granted.load(Ordering::Acquire) {
                    return Poll::Pending;
                }
            }
        }
        self.done = true;
        Poll::Ready(Permit {
            fifo: self.fifo.clone(),
        })
    }
}

impl Drop for Acquire {
    fn drop(&mut self) {
        let (false, Some(waiter)) = (self.done, &self.waiter) else {
            return;
        };
        let mut state = self.fifo.lock();
        // Granted under the lock, so this reading is final.
        if waiter.granted.load(Ordering::Acquire) {
            drop(state);
            self.fifo.release();
        } else if let Some(place) = state.queue.iter().position(|w| Arc::ptr_eq(w, waiter)) {
            state.queue.remove(place);
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.fifo.release();
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;

    fn poll(acquire: &mut Acquire) -> Option<Permit> {
        match Pin::new(acquire).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(permit) => Some(permit),
            Poll::Pending => None,
        }
    }

    #[test]
    fn a_released_permit_goes_to_the_oldest_waiter_not_to_a_newcomer() {
        let fifo = Fifo::new(1);
        let held = poll(&mut fifo.acquire()).unwrap();
        let (mut first, mut second) = (fifo.acquire(), fifo.acquire());
        assert!(poll(&mut first).is_none() && poll(&mut second).is_none());
        drop(held);
        // A newcomer does not overtake the queue, though it asks before the waiter runs.
        assert!(poll(&mut fifo.acquire()).is_none());
        assert!(poll(&mut second).is_none());
        let permit = poll(&mut first).expect("the oldest waiter got it");
        drop(permit);
        assert!(poll(&mut second).is_some());
        assert_eq!(fifo.free(), 1);
    }

    #[test]
    fn dropping_a_waiter_gives_up_its_place_or_passes_its_permit_on() {
        let fifo = Fifo::new(1);
        let held = poll(&mut fifo.acquire()).unwrap();
        let (mut first, mut second, mut third) = (fifo.acquire(), fifo.acquire(), fifo.acquire());
        for waiter in [&mut first, &mut second, &mut third] {
            assert!(poll(waiter).is_none());
        }
        drop(second); // gives up its place
        drop(held); // handed to `first`...
        drop(first); // ...which is gone before taking it: passed on to `third`
        let permit = poll(&mut third).expect("passed on");
        drop(permit);
        drop(third);
        assert_eq!(fifo.free(), 1, "no permit lost or made");
    }
}
