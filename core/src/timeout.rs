//! Bound every wait: [`timeout`], [`timeout_until`], the [`FutureExt`] extension and [`Deadline`].
//!
//! A [`Timeout`] polls its future first and only then looks at the clock, so a future that is
//! ready on its first poll never creates, registers or allocates a timer: the happy path costs
//! one extra branch. Only when the future returns `Pending` does the timeout read the clock and
//! arm a sleep.
//!
//! A duration given to [`timeout`] is measured from the first poll: like the future it wraps, a
//! timeout does nothing until it is polled. Use [`timeout_until`] or a [`Deadline`] to fix the
//! instant in advance.
//!
//! ```
//! use std::time::Duration;
//! use tailguard::timeout::FutureExt;
//!
//! # futures::executor::block_on(async {
//! let fast = async { 42 };
//! assert_eq!(fast.timeout(Duration::from_secs(1)).await, Ok(42));
//!
//! let slow = futures::future::pending::<()>();
//! let err = slow.timeout(Duration::from_millis(10)).await.unwrap_err();
//! assert!(err.to_string().starts_with("deadline elapsed before the operation completed"));
//! # });
//! ```

use std::fmt;
use std::future::{Future, IntoFuture};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use pin_project::pin_project;

#[cfg(any(feature = "async-io", feature = "futures-timer"))]
use crate::time::DefaultTimer;
use crate::time::{deadline_after, Timer};

/// Requires `future` to complete within `duration` of its first poll, on the [`DefaultTimer`].
///
/// ```
/// use std::time::Duration;
/// use tailguard::timeout::timeout;
///
/// # futures::executor::block_on(async {
/// let answer = timeout(Duration::from_secs(1), async { "pong" }).await;
/// assert_eq!(answer, Ok("pong"));
/// # });
/// ```
#[cfg(any(feature = "async-io", feature = "futures-timer"))]
pub fn timeout<F: IntoFuture>(
    duration: Duration,
    future: F,
) -> Timeout<F::IntoFuture, DefaultTimer> {
    timeout_with(DefaultTimer::default(), duration, future)
}

/// Requires `future` to complete before `deadline`, on the [`DefaultTimer`].
///
/// ```
/// use std::time::{Duration, Instant};
/// use tailguard::timeout::timeout_until;
///
/// # futures::executor::block_on(async {
/// let deadline = Instant::now() + Duration::from_millis(5);
/// let never = futures::future::pending::<()>();
/// assert!(timeout_until(deadline, never).await.is_err());
/// # });
/// ```
#[cfg(any(feature = "async-io", feature = "futures-timer"))]
pub fn timeout_until<F: IntoFuture>(
    deadline: Instant,
    future: F,
) -> Timeout<F::IntoFuture, DefaultTimer> {
    timeout_until_with(DefaultTimer::default(), deadline, future)
}

/// Requires `future` to complete within `duration` of its first poll, on `timer`.
///
/// ```
/// use std::time::Duration;
/// use tailguard::time::{ManualTimer, Timer};
/// use tailguard::timeout::timeout_with;
///
/// let timer = ManualTimer::new();
/// let slow = timer.sleep(Duration::from_secs(5));
/// let result = timer.block_on(timeout_with(timer.clone(), Duration::from_secs(1), slow));
/// assert!(result.is_err());
/// ```
pub fn timeout_with<F: IntoFuture, T: Timer>(
    timer: T,
    duration: Duration,
    future: F,
) -> Timeout<F::IntoFuture, T> {
    Timeout {
        future: future.into_future(),
        timer,
        limit: Limit::After(duration),
        sleep: None,
    }
}

/// Requires `future` to complete before `deadline`, on `timer`.
pub fn timeout_until_with<F: IntoFuture, T: Timer>(
    timer: T,
    deadline: Instant,
    future: F,
) -> Timeout<F::IntoFuture, T> {
    Timeout {
        future: future.into_future(),
        timer,
        limit: Limit::At(deadline),
        sleep: None,
    }
}

#[derive(Debug, Clone, Copy)]
enum Limit {
    After(Duration),
    At(Instant),
}

/// A future with a time limit, made by [`timeout`] and its relatives.
///
/// Resolves to `Ok(output)` if the inner future finishes first, `Err(Elapsed)` otherwise. The
/// inner future is polled before the clock is checked, so an output that is ready wins even at
/// the deadline. Dropping a `Timeout` drops the inner future and its sleep: nothing is left
/// registered with the timer.
#[pin_project]
#[must_use = "futures do nothing unless polled"]
pub struct Timeout<F, T: Timer> {
    #[pin]
    future: F,
    timer: T,
    limit: Limit,
    sleep: Option<T::Sleep>,
}

impl<F, T: Timer> Timeout<F, T> {
    /// The wrapped future.
    pub fn get_ref(&self) -> &F {
        &self.future
    }

    /// The wrapped future, mutably.
    pub fn get_mut(&mut self) -> &mut F {
        &mut self.future
    }

    /// The wrapped future, pinned.
    pub fn get_pin_mut(self: Pin<&mut Self>) -> Pin<&mut F> {
        self.project().future
    }

    /// Unwraps the inner future, discarding the time limit.
    pub fn into_inner(self) -> F {
        self.future
    }
}

impl<F: Future, T: Timer> Future for Timeout<F, T> {
    type Output = Result<F::Output, Elapsed>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        poll_sleep(this.timer, *this.limit, this.sleep, cx)
    }
}

// Kept out of line so the ready path of `Timeout::poll` stays small enough to inline.
#[inline(never)]
fn poll_sleep<T: Timer, O>(
    timer: &T,
    limit: Limit,
    sleep: &mut Option<T::Sleep>,
    cx: &mut Context<'_>,
) -> Poll<Result<O, Elapsed>> {
    let sleep = sleep.get_or_insert_with(|| {
        let deadline = match limit {
            Limit::After(duration) => deadline_after(timer.now(), duration),
            Limit::At(deadline) => deadline,
        };
        timer.sleep_until(deadline)
    });
    match Pin::new(sleep).poll(cx) {
        Poll::Ready(_) => Poll::Ready(Err(Elapsed(()))),
        Poll::Pending => Poll::Pending,
    }
}

impl<F: fmt::Debug, T: Timer> fmt::Debug for Timeout<F, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("future", &self.future)
            .field("limit", &self.limit)
            .field("armed", &self.sleep.is_some())
            .finish()
    }
}

/// The error of a [`Timeout`] whose deadline passed first. Zero-sized and `Copy`.
///
/// Converts into an [`io::Error`] of kind [`io::ErrorKind::TimedOut`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Elapsed(());

impl Elapsed {
    /// An `Elapsed` error, for code that enforces deadlines of its own.
    pub const fn new() -> Self {
        Elapsed(())
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "deadline elapsed before the operation completed: \
             allow it more time, or find out why it is slow",
        )
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for io::Error {
    fn from(elapsed: Elapsed) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, elapsed)
    }
}

/// Adds time limits to any future: `fut.timeout(d)` reads as it should.
///
/// Import it as `use tailguard::timeout::FutureExt as _;` if another `FutureExt` is in scope.
///
/// ```
/// use std::time::Duration;
/// use tailguard::time::ManualTimer;
/// use tailguard::timeout::FutureExt;
///
/// let timer = ManualTimer::new();
/// let fast = async { 7 };
/// let out = timer.block_on(fast.timeout_with(timer.clone(), Duration::from_millis(1)));
/// assert_eq!(out, Ok(7));
/// ```
pub trait FutureExt: Future + Sized {
    /// Requires `self` to complete within `duration` of its first poll (see [`timeout`]).
    #[cfg(any(feature = "async-io", feature = "futures-timer"))]
    fn timeout(self, duration: Duration) -> Timeout<Self, DefaultTimer> {
        timeout_with(DefaultTimer::default(), duration, self)
    }

    /// Requires `self` to complete before `deadline` (see [`timeout_until`]).
    #[cfg(any(feature = "async-io", feature = "futures-timer"))]
    fn timeout_until(self, deadline: Instant) -> Timeout<Self, DefaultTimer> {
        timeout_until_with(DefaultTimer::default(), deadline, self)
    }

    /// Requires `self` to complete within `duration` of its first poll, on `timer`.
    fn timeout_with<T: Timer>(self, timer: T, duration: Duration) -> Timeout<Self, T> {
        timeout_with(timer, duration, self)
    }

    /// Requires `self` to complete before `deadline`, on `timer`.
    fn timeout_until_with<T: Timer>(self, timer: T, deadline: Instant) -> Timeout<Self, T> {
        timeout_until_with(timer, deadline, self)
    }
}

impl<F: Future> FutureExt for F {}

/// One budget of time shared by a call and everything it calls, as Go's `context` deadline is.
///
/// Make it once at the edge (say, when a request arrives), pass it down, and let each step take
/// [`remaining`](Deadline::remaining) time or a tighter [`child`](Deadline::child) budget. Work
/// nested ten calls deep still ends when the request's time is up.
///
/// Methods without a timer argument read the system clock; the `_with` forms read the given
/// [`Timer`], which is what tests on a [`ManualTimer`](crate::time::ManualTimer) need.
///
/// ```
/// use std::time::Duration;
/// use tailguard::time::{ManualTimer, Timer};
/// use tailguard::timeout::Deadline;
///
/// let timer = ManualTimer::new();
/// let request = Deadline::after_with(timer.clone(), Duration::from_millis(300));
/// timer.advance(Duration::from_millis(100));
/// assert_eq!(request.remaining_with(timer.clone()), Duration::from_millis(200));
///
/// // A sub-call may want 500 ms, but the request only has 200 ms left: the child keeps 200.
/// let sub_call = request.child_with(timer.clone(), Duration::from_millis(500));
/// assert_eq!(sub_call.remaining_with(timer.clone()), Duration::from_millis(200));
///
/// let slow = timer.sleep(Duration::from_secs(1));
/// assert!(timer.block_on(sub_call.run_with(timer.clone(), slow)).is_err());
/// assert!(request.is_expired_with(timer.clone()));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deadline {
    at: Instant,
}

impl Deadline {
    /// A deadline at `instant`.
    pub fn at(instant: Instant) -> Self {
        Deadline { at: instant }
    }

    /// A deadline `duration` from now on the system clock.
    pub fn after(duration: Duration) -> Self {
        Deadline::at(deadline_after(Instant::now(), duration))
    }

    /// A deadline `duration` from now on `timer`'s clock.
    pub fn after_with<T: Timer>(timer: T, duration: Duration) -> Self {
        Deadline::at(deadline_after(timer.now(), duration))
    }

    /// The instant this deadline falls on.
    pub fn instant(&self) -> Instant {
        self.at
    }

    /// Time left on the system clock, zero once expired.
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// Time left on `timer`'s clock, zero once expired.
    pub fn remaining_with<T: Timer>(&self, timer: T) -> Duration {
        self.at.saturating_duration_since(timer.now())
    }

    /// Whether the deadline has passed on the system clock.
    pub fn is_expired(&self) -> bool {
        Instant::now() >= self.at
    }

    /// Whether the deadline has passed on `timer`'s clock.
    pub fn is_expired_with<T: Timer>(&self, timer: T) -> bool {
        timer.now() >= self.at
    }

    /// A budget for a sub-call: `duration` from now on the system clock, but never past `self`.
    pub fn child(&self, duration: Duration) -> Deadline {
        (*self).min(Deadline::after(duration))
    }

    /// A budget for a sub-call: `duration` from now on `timer`'s clock, but never past `self`.
    pub fn child_with<T: Timer>(&self, timer: T, duration: Duration) -> Deadline {
        (*self).min(Deadline::after_with(timer, duration))
    }

    /// Runs `future` under this deadline on the [`DefaultTimer`].
    #[cfg(any(feature = "async-io", feature = "futures-timer"))]
    pub fn run<F: IntoFuture>(&self, future: F) -> Timeout<F::IntoFuture, DefaultTimer> {
        timeout_until(self.at, future)
    }

    /// Runs `future` under this deadline on `timer`.
    pub fn run_with<F: IntoFuture, T: Timer>(
        &self,
        timer: T,
        future: F,
    ) -> Timeout<F::IntoFuture, T> {
        timeout_until_with(timer, self.at, future)
    }
}

impl From<Instant> for Deadline {
    fn from(instant: Instant) -> Self {
        Deadline::at(instant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::ManualTimer;
    use futures::task::noop_waker;
    use std::pin::pin;

    fn poll_once<F: Future>(fut: Pin<&mut F>) -> Poll<F::Output> {
        let waker = noop_waker();
        fut.poll(&mut Context::from_waker(&waker))
    }

    #[test]
    fn ready_future_never_touches_the_timer() {
        let timer = ManualTimer::new();
        let mut t = pin!(timeout_with(timer.clone(), Duration::ZERO, async { 1 }));
        assert_eq!(poll_once(t.as_mut()), Poll::Ready(Ok(1)));
        assert_eq!(timer.pending_sleeps(), 0);
    }

    #[test]
    fn times_out_exactly_at_the_duration() {
        let timer = ManualTimer::new();
        let mut t = pin!(timeout_with(
            timer.clone(),
            Duration::from_millis(100),
            futures::future::pending::<()>()
        ));
        assert!(poll_once(t.as_mut()).is_pending());
        assert_eq!(timer.pending_sleeps(), 1);
        timer.advance(Duration::from_millis(99));
        assert!(poll_once(t.as_mut()).is_pending());
        timer.advance(Duration::from_millis(1));
        assert_eq!(poll_once(t.as_mut()), Poll::Ready(Err(Elapsed::new())));
        assert_eq!(timer.pending_sleeps(), 0);
    }

    #[test]
    fn duration_counts_from_first_poll() {
        let timer = ManualTimer::new();
        let mut t = pin!(timeout_with(
            timer.clone(),
            Duration::from_millis(100),
            futures::future::pending::<()>()
        ));
        timer.advance(Duration::from_secs(5));
        assert!(poll_once(t.as_mut()).is_pending());
        timer.advance(Duration::from_millis(100));
        assert!(poll_once(t.as_mut()).is_ready());
    }

    #[test]
    fn inner_future_wins_a_tie() {
        let timer = ManualTimer::new();
        let t2 = timer.clone();
        let inner = async move {
            t2.sleep(Duration::from_millis(10)).await;
            "inner"
        };
        let out = timer.block_on(timeout_with(
            timer.clone(),
            Duration::from_millis(10),
            inner,
        ));
        assert_eq!(out, Ok("inner"));
    }

    #[test]
    fn timeout_until_uses_the_instant() {
        let timer = ManualTimer::new();
        let deadline = timer.now() + Duration::from_millis(30);
        let slow = timer.sleep(Duration::from_secs(1));
        let out = timer.block_on(slow.timeout_until_with(timer.clone(), deadline));
        assert!(out.is_err());
        assert_eq!(timer.elapsed(), Duration::from_millis(30));
    }

    #[test]
    fn dropping_mid_wait_leaves_no_timer() {
        let timer = ManualTimer::new();
        {
            let mut t = pin!(timeout_with(
                timer.clone(),
                Duration::from_secs(1),
                futures::future::pending::<()>()
            ));
            assert!(poll_once(t.as_mut()).is_pending());
            assert_eq!(timer.pending_sleeps(), 1);
        }
        assert_eq!(timer.pending_sleeps(), 0);
    }

    #[test]
    fn huge_durations_do_not_overflow() {
        let timer = ManualTimer::new();
        let mut t = pin!(timeout_with(
            timer.clone(),
            Duration::MAX,
            futures::future::pending::<()>()
        ));
        assert!(poll_once(t.as_mut()).is_pending());
        timer.advance(Duration::from_secs(86_400 * 365));
        assert!(poll_once(t.as_mut()).is_pending());
    }

    #[test]
    fn elapsed_converts_to_timed_out_io_error() {
        let err: io::Error = Elapsed::new().into();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[test]
    fn nested_deadlines_share_one_budget() {
        let timer = ManualTimer::new();
        let t = timer.clone();
        let request = Deadline::after_with(timer.clone(), Duration::from_millis(250));
        let out = timer.block_on(async move {
            let mut finished = 0;
            for _ in 0..10 {
                let step = request.child_with(t.clone(), Duration::from_millis(100));
                match step
                    .run_with(t.clone(), t.sleep(Duration::from_millis(60)))
                    .await
                {
                    Ok(()) => finished += 1,
                    Err(_) => break,
                }
            }
            finished
        });
        // 60 + 60 + 60 + 60 = 240 ms fit; the fifth step is cut at 250 ms.
        assert_eq!(out, 4);
        assert_eq!(timer.elapsed(), Duration::from_millis(250));
    }
}
