use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use event_listener::{Event, EventListener};
use pin_project::pin_project;

#[cfg(any(feature = "async-io", feature = "futures-timer"))]
use crate::time::DefaultTimer;
use crate::time::Timer;
use crate::timeout::{timeout_with, Timeout};

struct Inner {
    running: AtomicUsize,
    idle: Event,
}

/// Counts work in flight so a shutdown can wait for it.
///
/// Cheap to clone; clones share one count. Work is counted by a [`TaskGuard`] from
/// [`track`](TaskTracker::track) (held for as long as the work runs) or by wrapping a future with
/// [`track_future`](TaskTracker::track_future), which counts it from the moment it is wrapped —
/// before it is spawned or first polled — until it completes or is dropped.
///
/// ```
/// use tailguard::shutdown::TaskTracker;
///
/// let tracker = TaskTracker::new();
/// let guard = tracker.track();
/// let job = tracker.track_future(async { 2 + 2 });
/// assert_eq!(tracker.len(), 2);
///
/// drop(guard);
/// assert_eq!(futures::executor::block_on(job), 4);
/// assert!(tracker.is_empty());
/// futures::executor::block_on(tracker.wait()); // nothing left: completes at once
/// ```
#[derive(Clone)]
pub struct TaskTracker {
    inner: Arc<Inner>,
}

impl TaskTracker {
    /// A tracker with nothing in flight.
    pub fn new() -> Self {
        let inner = Arc::new(Inner {
            running: AtomicUsize::new(0),
            idle: Event::new(),
        });
        // event-listener sets up its waiter list on first use; do it now, so that tracking and
        // finishing tasks never allocates.
        inner.idle.notify(usize::MAX);
        TaskTracker { inner }
    }

    /// Counts one task until the returned guard is dropped.
    pub fn track(&self) -> TaskGuard {
        self.inner.running.fetch_add(1, Ordering::AcqRel);
        TaskGuard {
            inner: self.inner.clone(),
        }
    }

    /// Counts `future` from now until it completes or is dropped.
    pub fn track_future<F: Future>(&self, future: F) -> Tracked<F> {
        Tracked {
            future,
            guard: Some(self.track()),
        }
    }

    /// How many tasks are in flight.
    pub fn len(&self) -> usize {
        self.inner.running.load(Ordering::Acquire)
    }

    /// Whether no task is in flight.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A future that completes once no task is in flight (at once if none is).
    ///
    /// The count can rise again afterwards; stop accepting new work (trigger your
    /// [`Shutdown`](super::Shutdown)) before waiting, so the tracker can drain.
    pub fn wait(&self) -> TasksDone {
        TasksDone {
            inner: self.inner.clone(),
            listener: None,
        }
    }

    /// Waits at most `within` (on the [`DefaultTimer`]) for every task to finish.
    ///
    /// Resolves to `Ok(())` once drained, or [`Unfinished`] with the number of tasks still running
    /// when the time ran out; that is the moment to cancel them.
    #[cfg(any(feature = "async-io", feature = "futures-timer"))]
    pub fn graceful(&self, within: Duration) -> Graceful<DefaultTimer> {
        self.graceful_with(DefaultTimer::default(), within)
    }

    /// Waits at most `within`, on `timer`, for every task to finish. See
    /// [`graceful`](TaskTracker::graceful).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tailguard::shutdown::TaskTracker;
    /// use tailguard::time::ManualTimer;
    ///
    /// let timer = ManualTimer::new();
    /// let tracker = TaskTracker::new();
    /// let _stuck = tracker.track();
    /// let err = timer
    ///     .block_on(tracker.graceful_with(timer.clone(), Duration::from_secs(10)))
    ///     .unwrap_err();
    /// assert_eq!(err.remaining, 1);
    /// assert_eq!(
    ///     err.to_string(),
    ///     "graceful shutdown ran out of time with 1 task still running; \
    ///      cancel it, give it a longer deadline, or make it watch the shutdown signal"
    /// );
    /// ```
    pub fn graceful_with<T: Timer>(&self, timer: T, within: Duration) -> Graceful<T> {
        Graceful {
            wait: timeout_with(timer, within, self.wait()),
            inner: self.inner.clone(),
        }
    }
}

impl Default for TaskTracker {
    fn default() -> Self {
        TaskTracker::new()
    }
}

impl fmt::Debug for TaskTracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskTracker")
            .field("running", &self.len())
            .finish()
    }
}

/// Counts one task of a [`TaskTracker`] while it is alive.
#[must_use = "the task is counted only while the guard is held"]
pub struct TaskGuard {
    inner: Arc<Inner>,
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if self.inner.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.inner.idle.notify(usize::MAX);
        }
    }
}

impl fmt::Debug for TaskGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskGuard").finish_non_exhaustive()
    }
}

/// A future counted by a [`TaskTracker`] until it completes or is dropped.
#[pin_project]
#[must_use = "futures do nothing unless polled"]
pub struct Tracked<F> {
    #[pin]
    future: F,
    guard: Option<TaskGuard>,
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let output = std::task::ready!(this.future.poll(cx));
        this.guard.take();
        Poll::Ready(output)
    }
}

impl<F> fmt::Debug for Tracked<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracked")
            .field("counted", &self.guard.is_some())
            .finish_non_exhaustive()
    }
}

/// Completes when a [`TaskTracker`] has nothing in flight. Made by [`TaskTracker::wait`].
#[must_use = "futures do nothing unless polled"]
pub struct TasksDone {
    inner: Arc<Inner>,
    listener: Option<EventListener>,
}

impl Future for TasksDone {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let inner = &this.inner;
        let done = || inner.running.load(Ordering::Acquire) == 0;
        super::poll_until(done, &inner.idle, &mut this.listener, cx)
    }
}

impl fmt::Debug for TasksDone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TasksDone").finish_non_exhaustive()
    }
}

/// A drain with a deadline, made by [`TaskTracker::graceful`].
#[pin_project]
#[must_use = "futures do nothing unless polled"]
pub struct Graceful<T: Timer> {
    #[pin]
    wait: Timeout<TasksDone, T>,
    inner: Arc<Inner>,
}

impl<T: Timer> Future for Graceful<T> {
    type Output = Result<(), Unfinished>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match std::task::ready!(this.wait.poll(cx)) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(_) => Poll::Ready(Err(Unfinished {
                remaining: this.inner.running.load(Ordering::Acquire),
            })),
        }
    }
}

impl<T: Timer> fmt::Debug for Graceful<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Graceful").finish_non_exhaustive()
    }
}

/// A graceful shutdown ran out of time with tasks still running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unfinished {
    /// How many tasks were still in flight at the deadline.
    pub remaining: usize,
}

impl fmt::Display for Unfinished {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (tasks, them) = if self.remaining == 1 {
            ("task", "it")
        } else {
            ("tasks", "them")
        };
        write!(
            f,
            "graceful shutdown ran out of time with {} {tasks} still running; \
             cancel {them}, give {them} a longer deadline, or make {them} watch the shutdown signal",
            self.remaining
        )
    }
}

impl std::error::Error for Unfinished {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::ManualTimer;
    use futures::task::noop_waker;

    #[test]
    fn graceful_completes_when_the_last_task_ends() {
        let timer = ManualTimer::new();
        let tracker = TaskTracker::new();
        let t = timer.clone();
        let jobs: Vec<_> = [30u64, 10, 20]
            .into_iter()
            .map(|ms| {
                let t = t.clone();
                tracker.track_future(async move { t.sleep(Duration::from_millis(ms)).await })
            })
            .collect();
        assert_eq!(tracker.len(), 3);
        let drain = tracker.graceful_with(timer.clone(), Duration::from_secs(1));
        let (_, drained) =
            timer.block_on(async { futures::join!(futures::future::join_all(jobs), drain) });
        assert_eq!(drained, Ok(()));
        assert_eq!(timer.elapsed(), Duration::from_millis(30));
        assert!(tracker.is_empty());
    }

    #[test]
    fn graceful_reports_how_many_are_left() {
        let timer = ManualTimer::new();
        let tracker = TaskTracker::new();
        let t = timer.clone();
        let short = tracker.track_future(async move { t.sleep(Duration::from_millis(5)).await });
        let _stuck_a = tracker.track();
        let _stuck_b = tracker.track();
        let drain = tracker.graceful_with(timer.clone(), Duration::from_millis(100));
        let (_, drained) = timer.block_on(async { futures::join!(short, drain) });
        assert_eq!(drained, Err(Unfinished { remaining: 2 }));
        assert!(drained.unwrap_err().to_string().contains("2 tasks"));
        assert_eq!(timer.elapsed(), Duration::from_millis(100));
        assert_eq!(timer.pending_sleeps(), 0);
    }

    #[test]
    fn dropping_a_tracked_future_releases_it() {
        let tracker = TaskTracker::new();
        let job = tracker.track_future(futures::future::pending::<()>());
        assert_eq!(tracker.len(), 1);
        drop(job);
        assert!(tracker.is_empty());
    }

    #[test]
    fn wait_is_woken_by_the_last_guard() {
        let tracker = TaskTracker::new();
        let guard = tracker.track();
        let mut wait = tracker.wait();
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut wait).poll(&mut cx).is_pending());
        let other = std::thread::spawn(move || drop(guard));
        other.join().unwrap();
        futures::executor::block_on(wait);
    }

    #[test]
    fn dropping_graceful_mid_wait_leaves_no_timer() {
        let timer = ManualTimer::new();
        let tracker = TaskTracker::new();
        let _g = tracker.track();
        let mut drain = Box::pin(tracker.graceful_with(timer.clone(), Duration::from_secs(1)));
        let waker = noop_waker();
        assert!(drain
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        assert_eq!(timer.pending_sleeps(), 1);
        drop(drain);
        assert_eq!(timer.pending_sleeps(), 0);
    }
}
