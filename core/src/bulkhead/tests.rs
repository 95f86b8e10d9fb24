use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use super::*;
use crate::time::{ManualTimer, Timer};

/// Counts its wakes.
struct Wakes(AtomicUsize);

impl Wake for Wakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

const MS: Duration = Duration::from_millis(1);

fn bulkhead(max: u32, queue: u32, order: QueueOrder) -> (ManualTimer, Bulkhead<ManualTimer>) {
    let timer = ManualTimer::new();
    let b = Bulkhead::builder()
        .max_concurrent(max)
        .max_queue(queue)
        .queue_order(order)
        .build_with(timer.clone())
        .unwrap();
    (timer, b)
}

fn poll<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    std::pin::Pin::new(f).poll(&mut Context::from_waker(Waker::noop()))
}

#[test]
fn slots_are_capped_and_given_back_on_drop() {
    let (_, b) = bulkhead(2, 0, QueueOrder::Fifo);
    let p1 = b.try_acquire().unwrap();
    let p2 = b.try_acquire_owned().unwrap();
    assert_eq!(b.try_acquire().unwrap_err().reason(), Reason::Full);
    assert_eq!(b.metrics().in_flight, 2);
    drop(p1);
    let p3 = b.try_acquire().unwrap();
    drop((p2, p3));
    assert_eq!(b.metrics().in_flight, 0);
    assert_eq!(b.metrics().rejected_full, 1);
}

#[test]
fn fifo_serves_the_oldest_waiter_and_lifo_the_newest() {
    for (order, first) in [(QueueOrder::Fifo, 0), (QueueOrder::Lifo, 2)] {
        let (timer, b) = bulkhead(1, 3, order);
        let held = b.try_acquire().unwrap();
        let deadline = timer.now() + Duration::from_secs(1);
        let mut waiters: Vec<_> = (0..3).map(|_| b.acquire_until(deadline)).collect();
        for w in &mut waiters {
            assert!(poll(w).is_pending());
        }
        assert_eq!(b.metrics().queued, 3);
        drop(held);
        // Keep what each poll gave: a dropped permit would pass its slot on.
        let polled: Vec<_> = waiters.iter_mut().map(poll).collect();
        let ready: Vec<usize> = (0..3).filter(|&i| polled[i].is_ready()).collect();
        assert_eq!(ready, [first], "{order:?}");
    }
}

#[test]
fn a_full_queue_refuses_at_once() {
    let (timer, b) = bulkhead(1, 1, QueueOrder::Fifo);
    let _held = b.try_acquire().unwrap();
    let deadline = timer.now() + Duration::from_secs(1);
    let mut first = b.acquire_until(deadline);
    assert!(poll(&mut first).is_pending());
    let mut second = b.acquire_until(deadline);
    match poll(&mut second) {
        Poll::Ready(Err(e)) => assert_eq!(e.reason(), Reason::Full),
        other => panic!("{other:?}"),
    };
}

#[test]
fn a_waiter_gives_up_at_its_deadline_and_a_past_deadline_never_queues() {
    let (timer, b) = bulkhead(1, 4, QueueOrder::Fifo);
    let held = b.try_acquire().unwrap();
    let start = timer.now();
    let out = timer.block_on(b.acquire_until(start + 30 * MS));
    assert_eq!(out.unwrap_err().reason(), Reason::Deadline);
    assert_eq!(timer.now() - start, 30 * MS);
    assert_eq!(b.metrics().queued, 0);
    // Already past: refused on the first poll, without joining the queue.
    let mut late = b.acquire_until(start);
    assert!(matches!(poll(&mut late), Poll::Ready(Err(_))));
    assert_eq!(b.metrics().rejected_deadline, 2);
    // But a free slot is taken whatever the deadline (no clock read).
    drop(held);
    let mut free = b.acquire_until(start);
    assert!(matches!(poll(&mut free), Poll::Ready(Ok(_))));
}

#[test]
fn a_dropped_waiter_leaves_the_queue() {
    let (timer, b) = bulkhead(1, 2, QueueOrder::Fifo);
    let held = b.try_acquire().unwrap();
    let deadline = timer.now() + Duration::from_secs(1);
    let mut a = b.acquire_until(deadline);
    let mut c = b.acquire_until(deadline);
    assert!(poll(&mut a).is_pending());
    assert!(poll(&mut c).is_pending());
    drop(a);
    assert_eq!(b.metrics().queued, 1);
    drop(held);
    assert!(matches!(poll(&mut c), Poll::Ready(Ok(_))));
    drop(c);
    assert_eq!(
        b.metrics(),
        Metrics {
            rejected_full: 0,
            ..Metrics::default()
        }
    );
}

#[test]
fn a_slot_granted_to_a_waiter_dropped_at_that_moment_is_passed_on() {
    let (timer, b) = bulkhead(1, 2, QueueOrder::Fifo);
    let held = b.try_acquire().unwrap();
    let deadline = timer.now() + Duration::from_secs(1);
    let mut a = b.acquire_until(deadline);
    let wakes = Arc::new(Wakes(AtomicUsize::new(0)));
    let waker = Waker::from(Arc::clone(&wakes));
    let mut c = pin!(b.acquire_until(deadline));
    assert!(poll(&mut a).is_pending());
    assert!(c
        .as_mut()
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
    drop(held); // granted to `a`, which never polls again
    drop(a); // ...and is dropped: the slot goes on to `c`, which is woken
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
    assert!(matches!(
        c.as_mut().poll(&mut Context::from_waker(&waker)),
        Poll::Ready(Ok(_))
    ));
}

#[test]
fn a_slot_granted_as_the_deadline_fires_is_kept() {
    let (timer, b) = bulkhead(1, 1, QueueOrder::Fifo);
    let held = b.try_acquire().unwrap();
    let deadline = timer.now() + 10 * MS;
    let mut a = b.acquire_until(deadline);
    assert!(poll(&mut a).is_pending());
    timer.advance(10 * MS);
    drop(held);
    let permit = match poll(&mut a) {
        Poll::Ready(Ok(p)) => p,
        other => panic!("{other:?}"),
    };
    assert_eq!(b.metrics().in_flight, 1);
    drop(permit);
    drop(a);
    assert_eq!(b.metrics().in_flight, 0);
}

#[test]
fn waiters_are_served_under_virtual_time() {
    let (timer, b) = bulkhead(2, 10, QueueOrder::Fifo);
    let done = std::cell::Cell::new(0);
    timer.block_on(async {
        let deadline = timer.now() + Duration::from_secs(10);
        let work = |_| async {
            let _permit = b.acquire_until(deadline).await.unwrap();
            timer.sleep(100 * MS).await;
            done.set(done.get() + 1);
        };
        futures::future::join_all((0..10).map(work)).await;
    });
    assert_eq!(done.get(), 10);
    // Two at a time, 100 ms each: 500 ms.
    assert_eq!(timer.elapsed(), 500 * MS);
}

/// A waker that, when woken, joins and leaves the queue itself (as the Python binding's waker
/// may run code that uses the bulkhead).
struct Reentrant(Bulkhead<ManualTimer>, AtomicUsize);

impl Wake for Reentrant {
    fn wake(self: Arc<Self>) {
        let far = self.0.timer().now() + Duration::from_secs(60);
        let mut again = self.0.acquire_until(far);
        let _ = poll(&mut again);
        self.1.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_waiter_is_woken_with_the_lock_released() {
    let (timer, b) = bulkhead(1, 4, QueueOrder::Fifo);
    let held = b.try_acquire().unwrap();
    let reentrant = Arc::new(Reentrant(b.clone(), AtomicUsize::new(0)));
    let waker = Waker::from(Arc::clone(&reentrant));
    let mut waiting = pin!(b.acquire_until(timer.now() + Duration::from_secs(60)));
    assert!(waiting
        .as_mut()
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
    // Woken from the release (would deadlock if woken under the queue's lock).
    drop(held);
    assert_eq!(reentrant.1.load(Ordering::SeqCst), 1);
    assert!(waiting
        .as_mut()
        .poll(&mut Context::from_waker(&waker))
        .is_ready());
}
