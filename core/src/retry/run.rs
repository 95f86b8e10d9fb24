//! Running an operation under a [`Retry`] policy: [`RetryFuture`] and [`Retryable`].

use std::borrow::Borrow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use futures_core::TryFuture;
use pin_project::pin_project;

use super::error::{AttemptError, GaveUp, RetryError};
use super::policy::{Classify, OnRetry, Retry, RetryConfig, RetryEvent, Shared};
use super::state::{Next, RetryState};
use crate::time::{deadline_after, Timer};
use crate::timeout::Elapsed;

impl<T: Timer, C, H> Retry<T, C, H> {
    /// Runs `op` until it succeeds or the policy gives up; `op` makes one attempt each time it is
    /// called.
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::time::Duration;
    /// use tailguard::retry::Retry;
    /// use tailguard::time::ManualTimer;
    ///
    /// let timer = ManualTimer::new();
    /// let policy = Retry::with_timer(timer.clone()).max_attempts(5).build()?;
    /// let calls = Cell::new(0);
    /// let flaky = || async {
    ///     calls.set(calls.get() + 1);
    ///     if calls.get() < 3 { Err("busy") } else { Ok(calls.get()) }
    /// };
    /// assert_eq!(timer.block_on(policy.run(flaky)), Ok(3));
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    pub fn run<Op, Fut>(&self, mut op: Op) -> RetryFuture<'_, T, C, H, impl FnMut(u32) -> Fut, Fut>
    where
        Op: FnMut() -> Fut,
        Fut: TryFuture,
        C: Classify<Fut::Error>,
        H: OnRetry<Fut::Error>,
    {
        self.run_numbered(move |_| op())
    }

    /// Like [`run`](Retry::run), but `op` receives the attempt number, counting from 1 (to log
    /// it, or to send it as a header so the server can tell retries apart).
    ///
    /// ```
    /// use tailguard::retry::Retry;
    /// use tailguard::time::ManualTimer;
    ///
    /// let timer = ManualTimer::new();
    /// let policy = Retry::with_timer(timer.clone()).max_attempts(4).build()?;
    /// let out = timer.block_on(policy.run_numbered(|attempt| async move {
    ///     if attempt < 4 { Err(attempt) } else { Ok("fourth time lucky") }
    /// }));
    /// assert_eq!(out, Ok("fourth time lucky"));
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    pub fn run_numbered<Op, Fut>(&self, op: Op) -> RetryFuture<'_, T, C, H, Op, Fut>
    where
        Op: FnMut(u32) -> Fut,
        Fut: TryFuture,
        C: Classify<Fut::Error>,
        H: OnRetry<Fut::Error>,
    {
        RetryFuture {
            op,
            state: RetryState::new(&*self.shared),
            attempt: None,
            phase: Phase::Start,
            sleep: None,
        }
    }

    /// Like [`run`](Retry::run), but the future owns a clone of the policy instead of borrowing
    /// it, so it can outlive this handle: spawn it as a task of its own. (A clone is a reference
    /// count; [`run`](Retry::run) avoids even that.)
    ///
    /// On tokio (`tokio::spawn` needs a `'static` future):
    ///
    /// ```
    /// use std::time::Duration;
    /// use tailguard::retry::Retry;
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let policy = Retry::builder().max_attempts(3).build()?;
    /// let task = tokio::spawn(policy.run_owned(|| async { Ok::<_, std::io::Error>("pong") }));
    /// assert_eq!(task.await.unwrap().unwrap(), "pong");
    /// # Ok::<(), tailguard::ConfigError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// And on smol:
    ///
    /// ```
    /// use tailguard::retry::Retry;
    ///
    /// let policy = Retry::builder().max_attempts(3).build()?;
    /// let task = smol::spawn(policy.run_owned(|| async { Ok::<_, std::io::Error>("pong") }));
    /// assert_eq!(smol::block_on(task).unwrap(), "pong");
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    pub fn run_owned<Op, Fut>(
        &self,
        mut op: Op,
    ) -> impl Future<Output = Result<Fut::Ok, RetryError<Fut::Error>>>
    where
        C: Classify<Fut::Error>,
        H: OnRetry<Fut::Error>,
        Op: FnMut() -> Fut,
        Fut: TryFuture,
    {
        self.run_numbered_owned(move |_| op())
    }

    /// Like [`run_numbered`](Retry::run_numbered), owning a clone of the policy; see
    /// [`run_owned`](Retry::run_owned).
    pub fn run_numbered_owned<Op, Fut>(
        &self,
        op: Op,
    ) -> impl Future<Output = Result<Fut::Ok, RetryError<Fut::Error>>>
    where
        C: Classify<Fut::Error>,
        H: OnRetry<Fut::Error>,
        Op: FnMut(u32) -> Fut,
        Fut: TryFuture,
    {
        let policy = self.clone();
        // The borrowing future, kept next to the clone it borrows from: an async block may
        // hold a reference to its own local.
        async move { policy.run_numbered(op).await }
    }
}

impl<T, C, H> Borrow<RetryConfig> for &Shared<T, C, H> {
    #[inline(always)]
    fn borrow(&self) -> &RetryConfig {
        &self.config
    }
}

/// Retries a closure that makes one attempt: `(|| fetch()).retry(&policy).await`.
///
/// ```
/// use tailguard::retry::{Retry, Retryable};
/// use tailguard::time::ManualTimer;
///
/// async fn fetch() -> Result<&'static str, std::io::Error> {
///     Ok("200 OK")
/// }
///
/// let timer = ManualTimer::new();
/// let policy = Retry::with_timer(timer.clone()).build()?;
/// assert_eq!(timer.block_on((|| fetch()).retry(&policy)).unwrap(), "200 OK");
/// # Ok::<(), tailguard::ConfigError>(())
/// ```
pub trait Retryable<Fut: TryFuture>: FnMut() -> Fut + Sized {
    /// Runs `self` under `policy`; see [`Retry::run`].
    fn retry<T: Timer, C, H>(
        self,
        policy: &Retry<T, C, H>,
    ) -> RetryFuture<'_, T, C, H, impl FnMut(u32) -> Fut, Fut>
    where
        C: Classify<Fut::Error>,
        H: OnRetry<Fut::Error>;
}

impl<F, Fut> Retryable<Fut> for F
where
    F: FnMut() -> Fut,
    Fut: TryFuture,
{
    fn retry<T: Timer, C, H>(
        self,
        policy: &Retry<T, C, H>,
    ) -> RetryFuture<'_, T, C, H, impl FnMut(u32) -> Fut, Fut>
    where
        C: Classify<Fut::Error>,
        H: OnRetry<Fut::Error>,
    {
        policy.run(self)
    }
}

enum Phase<E> {
    /// Not polled yet.
    Start,
    /// An attempt is in flight; `armed` once its time limit (if any) is set.
    Attempt { armed: bool },
    /// Sleeping before the next attempt, after this failure.
    Backoff(AttemptError<E>),
    /// Finished.
    Done,
}

/// The future of [`Retry::run`]: resolves to the first success, or to a [`RetryError`].
///
/// It owns the attempt in flight and the sleep between attempts and nothing else: no allocation,
/// no task. Dropping it drops the attempt (cancelling it) and the sleep, and refunds a retry
/// granted by the budget but not yet made. An attempt that succeeds on the first try creates no
/// sleep, and neither does a zero delay. The clock is read only where a decision needs it: when
/// an attempt must wait, before a non-zero delay, at each failure under a deadline or a budget,
/// once to deposit into a budget, and to give up after the call started (for the elapsed time).
/// Failures retried at once without a deadline or a budget read no clock.
#[pin_project(project = RetryFutureProj)]
#[must_use = "futures do nothing unless polled"]
pub struct RetryFuture<'p, T: Timer, C, H, Op, Fut: TryFuture> {
    op: Op,
    /// The loop's state, holding the policy.
    state: RetryState<&'p Shared<T, C, H>>,
    #[pin]
    attempt: Option<Fut>,
    phase: Phase<Fut::Error>,
    /// The attempt's time limit, or the backoff sleep; reused from one to the next.
    sleep: Option<T::Sleep>,
}

impl<T, C, H, Op, Fut> Future for RetryFuture<'_, T, C, H, Op, Fut>
where
    T: Timer,
    C: Classify<Fut::Error>,
    H: OnRetry<Fut::Error>,
    Op: FnMut(u32) -> Fut,
    Fut: TryFuture,
{
    type Output = Result<Fut::Ok, RetryError<Fut::Error>>;

    /// The first attempt is made and polled inline; a success returns at once. Everything else
    /// (failures, waiting, sleeping) is in `poll_slow`, out of line.
    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let first = if let Phase::Start = this.phase {
            let number = this.state.begin_attempt_untimed();
            this.attempt.set(Some((this.op)(number)));
            *this.phase = Phase::Attempt { armed: false };
            let fut = this
                .attempt
                .as_mut()
                .as_pin_mut()
                .expect("attempt in flight");
            match fut.try_poll(cx) {
                Poll::Ready(Ok(value)) => {
                    if this.state.needs_clock_on_success() {
                        this.state.on_success_at(this.state.get_ref().timer.now());
                    }
                    *this.phase = Phase::Done;
                    return Poll::Ready(Ok(value));
                }
                other => Some(other),
            }
        } else {
            None
        };
        poll_slow(this, cx, first)
    }
}

/// Drives the loop after the first poll of the first attempt; `first` is that poll's result if
/// it has not been handled yet.
#[inline(never)]
fn poll_slow<T, C, H, Op, Fut>(
    mut this: RetryFutureProj<'_, '_, T, C, H, Op, Fut>,
    cx: &mut Context<'_>,
    mut first: Option<Poll<Result<Fut::Ok, Fut::Error>>>,
) -> Poll<Result<Fut::Ok, RetryError<Fut::Error>>>
where
    T: Timer,
    C: Classify<Fut::Error>,
    H: OnRetry<Fut::Error>,
    Op: FnMut(u32) -> Fut,
    Fut: TryFuture,
{
    let policy: &Shared<T, C, H> = this.state.get_ref();
    let timer = &policy.timer;
    {
        loop {
            match this.phase {
                Phase::Start => unreachable!("the first poll starts the first attempt"),
                Phase::Attempt { armed } => {
                    let fut = this
                        .attempt
                        .as_mut()
                        .as_pin_mut()
                        .expect("attempt in flight");
                    let polled = match first.take() {
                        Some(polled) => polled,
                        None => fut.try_poll(cx),
                    };
                    let failure = match polled {
                        Poll::Ready(Ok(value)) => {
                            if this.state.needs_clock_on_success() {
                                this.state.on_success_at(timer.now());
                            }
                            this.attempt.set(None);
                            *this.sleep = None;
                            *this.phase = Phase::Done;
                            return Poll::Ready(Ok(value));
                        }
                        Poll::Ready(Err(error)) => AttemptError::Failed(error),
                        Poll::Pending => {
                            if !*armed {
                                *armed = true;
                                arm_attempt_limit(timer, this.state, this.sleep);
                            }
                            match this.sleep.as_mut().map(|sleep| Pin::new(sleep).poll(cx)) {
                                Some(Poll::Ready(_)) => AttemptError::TimedOut(Elapsed::new()),
                                _ => return Poll::Pending,
                            }
                        }
                    };
                    this.attempt.set(None);
                    let decision = match &failure {
                        AttemptError::Failed(error) => policy.classifier.classify(error),
                        AttemptError::TimedOut(_) => this.state.config().on_timeout(),
                    };
                    // The clock is read only where a decision needs it: a deadline or a budget
                    // here, a non-zero delay or the elapsed time of a started call below.
                    let (next, now) = if this.state.needs_clock_on_failure() {
                        let now = timer.now();
                        (this.state.on_failure_at(now, decision), Some(now))
                    } else {
                        (this.state.on_failure_untimed(decision), None)
                    };
                    match next {
                        Next::Retry(delay) => {
                            policy.hook.on_retry(&RetryEvent {
                                attempt: this.state.attempts(),
                                error: &failure,
                                delay,
                            });
                            if delay.is_zero() {
                                // No time to wait: start the next attempt at once, without a
                                // sleep or another look at the clock.
                                let number = match now {
                                    Some(now) => this
                                        .state
                                        .begin_attempt_at(now)
                                        .expect("on_failure_at checked the deadline at `now`"),
                                    None => this.state.begin_attempt_untimed(),
                                };
                                this.attempt.set(Some((this.op)(number)));
                                *this.phase = Phase::Attempt { armed: false };
                            } else {
                                let now = now.unwrap_or_else(|| timer.now());
                                this.state.start_at(now);
                                set_sleep(timer, this.sleep, deadline_after(now, delay));
                                *this.phase = Phase::Backoff(failure);
                            }
                        }
                        Next::GiveUp(reason) => {
                            // A call that never started (no attempt waited, no delay, no
                            // deadline, no budget) took no time worth a clock read.
                            let now = match now {
                                Some(now) => Some(now),
                                None => this.state.started_at().map(|_| timer.now()),
                            };
                            // An attempt cut short by the deadline gave up because of it.
                            let reason = if failure.is_timeout()
                                && now.is_some_and(|now| {
                                    this.state.deadline().is_some_and(|d| now >= d)
                                }) {
                                GaveUp::DeadlineExceeded
                            } else {
                                reason
                            };
                            *this.sleep = None;
                            *this.phase = Phase::Done;
                            return Poll::Ready(Err(RetryError::new(
                                reason,
                                failure,
                                this.state.attempts(),
                                now.map_or(Duration::ZERO, |now| this.state.elapsed_at(now)),
                            )));
                        }
                    }
                }
                Phase::Backoff(_) => {
                    let sleep = this.sleep.as_mut().expect("backoff sleep");
                    ready!(Pin::new(sleep).poll(cx));
                    let now = timer.now();
                    match this.state.begin_attempt_at(now) {
                        Ok(number) => {
                            this.attempt.set(Some((this.op)(number)));
                            *this.phase = Phase::Attempt { armed: false };
                        }
                        Err(reason) => {
                            *this.sleep = None;
                            let Phase::Backoff(last) = std::mem::replace(this.phase, Phase::Done)
                            else {
                                unreachable!("in the backoff phase")
                            };
                            return Poll::Ready(Err(RetryError::new(
                                reason,
                                last,
                                this.state.attempts(),
                                this.state.elapsed_at(now),
                            )));
                        }
                    }
                }
                Phase::Done => panic!("RetryFuture polled after completion"),
            }
        }
    }
}

/// Sets the time limit of an attempt that has to wait, if it has one.
#[inline(never)]
fn arm_attempt_limit<T: Timer, R: Borrow<RetryConfig>>(
    timer: &T,
    state: &mut RetryState<R>,
    sleep: &mut Option<T::Sleep>,
) {
    match state.attempt_deadline_at(timer.now()) {
        Some(limit) => set_sleep(timer, sleep, limit),
        None => *sleep = None,
    }
}

/// Points `sleep` at `deadline`, reusing its registration if there is one.
fn set_sleep<T: Timer>(timer: &T, sleep: &mut Option<T::Sleep>, deadline: Instant) {
    match sleep {
        Some(sleep) => timer.reset(sleep, deadline),
        None => *sleep = Some(timer.sleep_until(deadline)),
    }
}

impl<T: Timer, C, H, Op, Fut: TryFuture> fmt::Debug for RetryFuture<'_, T, C, H, Op, Fut> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryFuture")
            .field("state", &self.state)
            .field(
                "phase",
                &match self.phase {
                    Phase::Start => "start",
                    Phase::Attempt { .. } => "attempt",
                    Phase::Backoff(_) => "backoff",
                    Phase::Done => "done",
                },
            )
            .finish_non_exhaustive()
    }
}
