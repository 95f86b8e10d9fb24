//! The crate's own limiters as the pipeline's limiter layer: [`Bulkhead`], [`RateLimiter`],
//! [`AdaptiveLimiter`] and [`Throttle`] each implement [`Limiter`].
//!
//! | limiter | a slot is | waits? | learns from the outcome |
//! |---|---|---|---|
//! | [`Bulkhead`] | one of N concurrent calls | in its queue, until the call's deadline (no deadline: until a slot frees) | no |
//! | [`RateLimiter`] | a token | until the next token, refused at once if it comes after the deadline | no |
//! | [`AdaptiveLimiter`] | one of its current limit, as a [`Default`](crate::priority::Criticality::Default) call | never | latency and drops (a timed-out attempt is a drop) |
//! | [`Throttle`] | permission to send | never | accepted = the attempt succeeded |
//! | `(A, B)` | a slot of `A`, then one of `B` | as `A`, then as `B` | both are told |
//!
//! Two limiters compose as a pair: `(throttle, adaptive)` asks the throttle first and the
//! adaptive limit only for what the throttle lets through; a refusal by the second gives the
//! first's slot back uncounted. A pair holds its first slot while it waits for the second, so
//! put first the limiter that never waits (a throttle, an adaptive limit, a bulkhead without a
//! queue) and second the one that may (a queued bulkhead, a rate limiter).
//!
//! A refusal is never a failure: the pipeline releases the breaker's permit uncounted and
//! refunds the retry budget. The refusal's reason and retry-after carry over into
//! [`LimiterRejected`].
//!
//! ```
//! use std::time::Duration;
//! use tailguard::bulkhead::Bulkhead;
//! use tailguard::pipeline::{Pipeline, PipelineError};
//! use tailguard::time::ManualTimer;
//!
//! let timer = ManualTimer::new();
//! let bulkhead = Bulkhead::builder().max_concurrent(1).build_with(timer.clone())?;
//! let pipeline = Pipeline::with_timer(timer.clone()).limiter(bulkhead.clone()).build()?;
//!
//! let _busy = bulkhead.try_acquire().unwrap(); // someone else holds the only slot
//! let out = timer.block_on(pipeline.call(|_| async { Ok::<_, std::io::Error>(()) }));
//! assert!(matches!(out, Err(PipelineError::LimiterFull { .. })));
//! # Ok::<(), tailguard::ConfigError>(())
//! ```

use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::limiter::{Limiter, LimiterPermit, LimiterRejected, Outcome};
use crate::bulkhead::{self, AcquireOwned, Bulkhead, OwnedPermit};
use crate::limit::{self, AdaptiveLimiter};
use crate::rate::{self, RateLimiter};
use crate::throttle::{self, Throttle};
use crate::time::Timer;

/// How long "no deadline" lets a bulkhead waiter wait: long enough never to matter, short
/// enough that `Instant + FOREVER` cannot overflow.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

fn bulkhead_rejected(rejected: bulkhead::Rejected) -> LimiterRejected {
    match rejected.reason() {
        bulkhead::Reason::Deadline => {
            LimiterRejected::new("bulkhead full until the call's deadline")
        }
        _ => LimiterRejected::new("bulkhead full"),
    }
}

/// The wait of a [`Bulkhead`] in a pipeline: the answer at once when it is known (a free slot,
/// or a full bulkhead without a queue), else its place in the queue.
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub enum BulkheadSlot<T: Timer> {
    /// Decided on the spot.
    Now(Option<Result<OwnedPermit, LimiterRejected>>),
    /// Waiting in the bulkhead's queue; dropping it leaves the queue.
    Queued(AcquireOwned<T>),
}

impl<T: Timer> Unpin for BulkheadSlot<T> {}

impl<T: Timer> Future for BulkheadSlot<T> {
    type Output = Result<OwnedPermit, LimiterRejected>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            BulkheadSlot::Now(answer) => {
                Poll::Ready(answer.take().expect("BulkheadSlot polled after completion"))
            }
            BulkheadSlot::Queued(wait) => Pin::new(wait).poll(cx).map_err(bulkhead_rejected),
        }
    }
}

impl<T: Timer> Limiter for Bulkhead<T> {
    type Permit = OwnedPermit;
    type Acquire<'a>
        = BulkheadSlot<T>
    where
        T: 'a;

    fn acquire_at(&self, now: Instant, deadline: Option<Instant>) -> BulkheadSlot<T> {
        if self.max_queue() == 0 {
            // Nothing to wait in: a free slot or a refusal, decided now.
            return BulkheadSlot::Now(Some(self.try_acquire_owned().map_err(bulkhead_rejected)));
        }
        // With a queue, the wait takes a free slot on its first poll without a clock read, and
        // only a full queue (or the deadline) counts as a refusal in the bulkhead's metrics.
        let until = deadline.unwrap_or_else(|| crate::time::deadline_after(now, FOREVER));
        BulkheadSlot::Queued(self.acquire_until_owned(until))
    }
}

/// A bulkhead slot is given back when the attempt ends, however it ended.
impl LimiterPermit for OwnedPermit {
    #[inline]
    fn finish(self, _outcome: Outcome, _latency: Duration) {}
}

fn rate_rejected(rejected: rate::Rejected) -> LimiterRejected {
    let refusal = match rejected.reason() {
        rate::Reason::Deadline => {
            LimiterRejected::new("rate limited: the next token comes after the call's deadline")
        }
        _ => LimiterRejected::new("rate limited"),
    };
    match rejected.retry_after() {
        Some(after) => refusal.with_retry_after(after),
        None => refusal,
    }
}

/// The wait of a [`RateLimiter`] in a pipeline: until the next token, refused at once when it
/// would come after the call's deadline.
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct RateSlot<'a, T: Timer>(rate::Acquire<'a, T>);

impl<T: Timer> Future for RateSlot<'_, T> {
    type Output = Result<rate::Permit, LimiterRejected>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        Pin::new(&mut this.0).poll(cx).map_err(rate_rejected)
    }
}

impl<T: Timer> Limiter for RateLimiter<T> {
    type Permit = rate::Permit;
    type Acquire<'a>
        = RateSlot<'a, T>
    where
        T: 'a;

    fn acquire_at(&self, _now: Instant, deadline: Option<Instant>) -> RateSlot<'_, T> {
        RateSlot(match deadline {
            Some(deadline) => self.acquire_until(deadline),
            None => self.until_ready(),
        })
    }
}

/// A token is spent when taken: there is nothing to give back.
impl LimiterPermit for rate::Permit {
    #[inline]
    fn finish(self, _outcome: Outcome, _latency: Duration) {}
}

fn adaptive_rejected(rejected: limit::Rejected) -> LimiterRejected {
    match rejected.reason() {
        limit::Reason::Shed => LimiterRejected::new("shed: the class's share of the limit is full"),
        limit::Reason::Probe => {
            LimiterRejected::new("limit held low while the no-load latency is re-measured")
        }
        _ => LimiterRejected::new("adaptive limit reached"),
    }
}

impl Limiter for AdaptiveLimiter {
    type Permit = limit::Permit;
    type Acquire<'a> = Ready<Result<limit::Permit, LimiterRejected>>;

    #[inline]
    fn acquire_at(&self, now: Instant, _deadline: Option<Instant>) -> Self::Acquire<'_> {
        ready(self.try_acquire_at(now).map_err(adaptive_rejected))
    }
}

/// The attempt's latency is the limiter's sample: a success as a success, a timed-out attempt
/// as a drop (load), and a failure as a drop too (the pipeline cannot tell an overloaded
/// dependency's error from another; use [`AdaptiveLimiter`] directly with your own
/// classification to say otherwise).
impl LimiterPermit for limit::Permit {
    #[inline]
    fn finish(self, outcome: Outcome, latency: Duration) {
        let now = self.started() + latency;
        let outcome = match outcome {
            Outcome::Success => limit::Outcome::Success,
            Outcome::Failure | Outcome::TimedOut => limit::Outcome::Dropped,
        };
        self.record_at(outcome, now);
    }
}

/// The permit of a [`Throttle`] in a pipeline: records, when the attempt ends, whether the
/// backend accepted it (it succeeded). An attempt cancelled before it ended counts as nothing.
#[derive(Debug)]
pub struct ThrottlePermit<T: Timer> {
    throttle: Throttle<T>,
    asked: Instant,
}

impl<T: Timer> LimiterPermit for ThrottlePermit<T> {
    fn finish(self, outcome: Outcome, latency: Duration) {
        self.throttle
            .record_at(outcome == Outcome::Success, self.asked + latency);
    }
}

fn throttle_rejected(_rejected: throttle::Rejected) -> LimiterRejected {
    LimiterRejected::new("throttled: the backend has been refusing requests")
}

impl<T: Timer> Limiter for Throttle<T> {
    type Permit = ThrottlePermit<T>;
    type Acquire<'a>
        = Ready<Result<ThrottlePermit<T>, LimiterRejected>>
    where
        T: 'a;

    fn acquire_at(&self, now: Instant, _deadline: Option<Instant>) -> Self::Acquire<'_> {
        // The throttle's own permit counts nothing when dropped unrecorded; this one records
        // through a clone of the handle so that it can outlive the borrow.
        ready(match self.try_acquire_at(now) {
            Ok(_permit) => Ok(ThrottlePermit {
                throttle: self.clone(),
                asked: now,
            }),
            Err(refused) => Err(throttle_rejected(refused)),
        })
    }
}

/// The wait for a pair of limiters: `A`'s slot first, then `B`'s. A refusal by `B` drops `A`'s
/// permit (released uncounted), and dropping the future releases whatever it holds.
// The bounds are needed (`Acquire<'a>` requires `Self: 'a`); the lint does not see through the
// associated type.
#[allow(explicit_outlives_requirements)]
#[pin_project::pin_project]
#[must_use = "futures do nothing unless polled"]
pub struct PairSlot<'a, A: Limiter + 'a, B: Limiter + 'a> {
    #[pin]
    first: Option<A::Acquire<'a>>,
    #[pin]
    second: Option<B::Acquire<'a>>,
    held: Option<A::Permit>,
    b: &'a B,
    now: Instant,
    deadline: Option<Instant>,
}

impl<A: Limiter, B: Limiter> std::fmt::Debug for PairSlot<'_, A, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PairSlot")
            .field("first_done", &self.held.is_some())
            .finish_non_exhaustive()
    }
}

impl<'a, A: Limiter, B: Limiter> Future for PairSlot<'a, A, B> {
    type Output = Result<(A::Permit, B::Permit), LimiterRejected>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Some(first) = this.first.as_mut().as_pin_mut() {
            let permit = match first.poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(refused)) => return Poll::Ready(Err(refused)),
                Poll::Ready(Ok(permit)) => permit,
            };
            this.first.set(None);
            *this.held = Some(permit);
            let b: &'a B = this.b;
            this.second
                .set(Some(b.acquire_at(*this.now, *this.deadline)));
        }
        let Some(second) = this.second.as_mut().as_pin_mut() else {
            panic!("PairSlot polled after completion");
        };
        match second.poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(answer) => {
                this.second.set(None);
                let first = this.held.take();
                Poll::Ready(match (answer, first) {
                    (Ok(second), Some(first)) => Ok((first, second)),
                    (Err(refused), _) => Err(refused), // drops the first permit, uncounted
                    (Ok(_), None) => unreachable!("the first permit is held until the second"),
                })
            }
        }
    }
}

impl<A: Limiter, B: Limiter> Limiter for (A, B) {
    type Permit = (A::Permit, B::Permit);
    type Acquire<'a>
        = PairSlot<'a, A, B>
    where
        Self: 'a;

    const PRESENT: bool = A::PRESENT || B::PRESENT;

    fn acquire_at(&self, now: Instant, deadline: Option<Instant>) -> PairSlot<'_, A, B> {
        PairSlot {
            first: Some(self.0.acquire_at(now, deadline)),
            second: None,
            held: None,
            b: &self.1,
            now,
            deadline,
        }
    }
}

impl<A: LimiterPermit, B: LimiterPermit> LimiterPermit for (A, B) {
    #[inline]
    fn finish(self, outcome: Outcome, latency: Duration) {
        self.1.finish(outcome, latency);
        self.0.finish(outcome, latency);
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::time::Duration;

    use super::*;
    use crate::pipeline::{Pipeline, PipelineError};
    use crate::time::ManualTimer;

    async fn ok_call() -> Result<u32, io::Error> {
        Ok(7)
    }

    #[test]
    fn a_bulkhead_without_a_queue_refuses_at_once_and_its_slot_comes_back() {
        let timer = ManualTimer::new();
        let bulkhead = Bulkhead::builder()
            .max_concurrent(1)
            .build_with(timer.clone())
            .unwrap();
        let pipeline = Pipeline::with_timer(timer.clone())
            .limiter(bulkhead.clone())
            .build()
            .unwrap();
        assert_eq!(timer.block_on(pipeline.call(|_| ok_call())).unwrap(), 7);
        let held = bulkhead.try_acquire().unwrap();
        let out = timer.block_on(pipeline.call(|_| ok_call()));
        match out {
            Err(PipelineError::LimiterFull { rejected, .. }) => {
                assert_eq!(rejected.reason(), "bulkhead full")
            }
            other => panic!("expected LimiterFull, got {other:?}"),
        }
        drop(held);
        assert_eq!(bulkhead.metrics().in_flight, 0);
    }

    #[test]
    fn a_bulkhead_queue_waits_until_the_deadline_and_no_longer() {
        let timer = ManualTimer::new();
        let bulkhead = Bulkhead::builder()
            .max_concurrent(1)
            .max_queue(4)
            .build_with(timer.clone())
            .unwrap();
        let pipeline = Pipeline::with_timer(timer.clone())
            .limiter(bulkhead.clone())
            .total_timeout(Duration::from_millis(50))
            .build()
            .unwrap();
        let held = bulkhead.try_acquire_owned().unwrap();
        let out = timer.block_on(pipeline.call(|_| ok_call()));
        assert!(out.is_err(), "{out:?}");
        assert_eq!(timer.elapsed(), Duration::from_millis(50));
        assert_eq!(bulkhead.metrics().queued, 0, "the waiter left the queue");
        let metrics = bulkhead.metrics();
        assert_eq!(
            (metrics.rejected_full, metrics.rejected_deadline),
            (0, 1),
            "a wait is not a refusal; running out of time is"
        );
        // A slot freed while the call waits is taken.
        let t = timer.clone();
        let freer = async move {
            t.sleep(Duration::from_millis(10)).await;
            drop(held);
        };
        let (out, ()) = timer.block_on(futures_util::future::join(
            pipeline.call(|_| ok_call()),
            freer,
        ));
        assert_eq!(out.unwrap(), 7);
        assert_eq!(bulkhead.metrics().in_flight, 0);
    }

    #[test]
    fn a_rate_limiter_refuses_a_token_that_comes_after_the_deadline() {
        let timer = ManualTimer::new();
        let rate = RateLimiter::builder()
            .rate(10, Duration::from_secs(1))
            .burst(1)
            .build_with(timer.clone())
            .unwrap();
        let pipeline = Pipeline::with_timer(timer.clone())
            .limiter(rate)
            .total_timeout(Duration::from_millis(50))
            .build()
            .unwrap();
        assert_eq!(timer.block_on(pipeline.call(|_| ok_call())).unwrap(), 7);
        match timer.block_on(pipeline.call(|_| ok_call())) {
            Err(PipelineError::LimiterFull { rejected, .. }) => {
                assert!(rejected.retry_after().is_some(), "{rejected}");
            }
            other => panic!("expected LimiterFull, got {other:?}"),
        }
        assert_eq!(
            timer.elapsed(),
            Duration::ZERO,
            "refused at once, no doomed wait"
        );
    }

    #[test]
    fn an_adaptive_limiter_gets_every_attempt_back_with_a_sample() {
        let timer = ManualTimer::new();
        let limiter = AdaptiveLimiter::builder().build().unwrap();
        let pipeline = Pipeline::with_timer(timer.clone())
            .limiter(limiter.clone())
            .build()
            .unwrap();
        for _ in 0..10 {
            assert_eq!(timer.block_on(pipeline.call(|_| ok_call())).unwrap(), 7);
        }
        assert_eq!(limiter.in_flight(), 0);
    }

    #[test]
    fn a_throttle_counts_successes_as_accepts() {
        let timer = ManualTimer::new();
        let throttle = Throttle::builder()
            .seed(1)
            .build_with(timer.clone())
            .unwrap();
        let pipeline = Pipeline::with_timer(timer.clone())
            .limiter(throttle.clone())
            .build()
            .unwrap();
        for _ in 0..5 {
            assert_eq!(timer.block_on(pipeline.call(|_| ok_call())).unwrap(), 7);
        }
        let counts = throttle.counts_at(timer.now());
        assert_eq!((counts.requests, counts.accepts), (5, 5));
    }

    #[test]
    fn a_pair_asks_both_and_a_refusal_by_the_second_returns_the_first_slot() {
        let timer = ManualTimer::new();
        let outer = Bulkhead::builder()
            .max_concurrent(1)
            .build_with(timer.clone())
            .unwrap();
        let inner = Bulkhead::builder()
            .max_concurrent(1)
            .build_with(timer.clone())
            .unwrap();
        let pipeline = Pipeline::with_timer(timer.clone())
            .limiter((outer.clone(), inner.clone()))
            .build()
            .unwrap();
        assert_eq!(timer.block_on(pipeline.call(|_| ok_call())).unwrap(), 7);
        let held = inner.try_acquire().unwrap();
        let out = timer.block_on(pipeline.call(|_| ok_call()));
        assert!(
            matches!(out, Err(PipelineError::LimiterFull { .. })),
            "{out:?}"
        );
        assert_eq!(outer.metrics().in_flight, 0, "the first slot came back");
        drop(held);
        assert_eq!(timer.block_on(pipeline.call(|_| ok_call())).unwrap(), 7);
        assert_eq!(
            (outer.metrics().in_flight, inner.metrics().in_flight),
            (0, 0)
        );
    }
}
