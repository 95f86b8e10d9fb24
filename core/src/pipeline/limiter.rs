//! The limiter seam: what a pipeline asks of a concurrency or rate limiter.
//!
//! The pipeline asks for a slot once per attempt, after the circuit breaker has admitted it and
//! before the attempt's own timeout starts. Any limiter plugs in by implementing [`Limiter`]
//! (and [`LimiterPermit`] for its permit); `()` is the absent limiter and costs nothing.

use std::fmt;
use std::future::{ready, Future, Ready};
use std::time::{Duration, Instant};

/// How an attempt that held a limiter slot ended, for [`LimiterPermit::finish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The operation succeeded.
    Success,
    /// The operation returned an error.
    Failure,
    /// The attempt ran out of its time (the pipeline's
    /// [`attempt_timeout`](super::PipelineBuilder::attempt_timeout)) and was cut.
    TimedOut,
}

/// A limiter's refusal: no slot for this attempt, and why.
///
/// The pipeline ends the call with [`PipelineError::LimiterFull`](super::PipelineError) when the
/// first attempt of a call or of a retry is refused; a refused hedge is simply not sent. A
/// refusal is never a failure: the circuit breaker's permit is released uncounted and a retry
/// granted by the budget is refunded.
///
/// ```
/// use std::time::Duration;
/// use tailguard::pipeline::LimiterRejected;
///
/// let full = LimiterRejected::new("bulkhead full").with_retry_after(Duration::from_millis(50));
/// assert_eq!(full.reason(), "bulkhead full");
/// assert_eq!(full.retry_after(), Some(Duration::from_millis(50)));
/// assert_eq!(full.to_string(), "limiter refused the attempt: bulkhead full (retry in 50ms)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LimiterRejected {
    reason: &'static str,
    retry_after: Option<Duration>,
}

impl LimiterRejected {
    /// A refusal for `reason` (a short phrase: "bulkhead full", "rate limited", "shed").
    pub const fn new(reason: &'static str) -> Self {
        LimiterRejected {
            reason,
            retry_after: None,
        }
    }

    /// The same refusal, with a hint of when a slot may be free.
    pub const fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// Why the attempt was refused.
    pub fn reason(&self) -> &'static str {
        self.reason
    }

    /// When to try again, if the limiter knows.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl fmt::Display for LimiterRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "limiter refused the attempt: {}", self.reason)?;
        if let Some(after) = self.retry_after {
            write!(f, " (retry in {after:?})")?;
        }
        Ok(())
    }
}

impl std::error::Error for LimiterRejected {}

/// A slot held by one attempt. Told how the attempt ended with [`finish`](Self::finish);
/// dropped without it (the attempt was cancelled: a lost hedge, a dropped call, the call's
/// deadline) it must release the slot and count the attempt as neither success nor failure.
pub trait LimiterPermit {
    /// The attempt ended: `outcome`, after `latency` from the operation's start (zero when the
    /// operation was ready on its first poll: it kept nobody waiting, and no clock was read).
    /// Releases the slot.
    fn finish(self, outcome: Outcome, latency: Duration);
}

/// What a pipeline needs from a limiter (a bulkhead, a rate limiter, an adaptive limiter, a
/// throttle): a slot for one attempt.
///
/// [`acquire_at`](Self::acquire_at) returns a future. It should be ready on its first poll
/// whenever the answer is known at once (a free slot, or a refusal); a limiter with a queue may
/// leave it pending while the attempt waits for a slot. The pipeline bounds that wait by the
/// call's deadline and drops the future when the deadline passes or the call is dropped, so the
/// future **must be cancel-safe**: dropped while pending it must leave the queue and take no
/// slot with it, and a slot it was handed but not yet returned must be released by its drop.
///
/// A hedge is only sent if its slot is available at once: the pipeline polls the future once
/// and drops it if it is pending.
///
/// # Implementing it for a sans-IO limiter
///
/// A limiter with `try_acquire_at(now) -> Result<Permit, Rejected>` needs only a ready future.
/// Here a tiny concurrency limit with a fixed number of slots:
///
/// ```
/// use std::future::{ready, Ready};
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use std::time::{Duration, Instant};
/// use tailguard::pipeline::{Limiter, LimiterPermit, LimiterRejected, Outcome, Pipeline};
/// use tailguard::time::ManualTimer;
///
/// #[derive(Debug, Clone)]
/// struct Slots(Arc<AtomicUsize>);
///
/// #[derive(Debug)]
/// struct Slot(Arc<AtomicUsize>);
///
/// impl Drop for Slot {
///     fn drop(&mut self) {
///         self.0.fetch_add(1, Ordering::AcqRel); // released, finished or not
///     }
/// }
///
/// impl LimiterPermit for Slot {
///     fn finish(self, _outcome: Outcome, _latency: Duration) {} // a real limiter learns here
/// }
///
/// impl Limiter for Slots {
///     type Permit = Slot;
///     type Acquire<'a> = Ready<Result<Slot, LimiterRejected>>;
///
///     fn acquire_at(&self, _now: Instant, _deadline: Option<Instant>) -> Self::Acquire<'_> {
///         let taken = self.0.fetch_update(Ordering::AcqRel, Ordering::Acquire, |free| free.checked_sub(1));
///         ready(match taken {
///             Ok(_) => Ok(Slot(self.0.clone())),
///             Err(_) => Err(LimiterRejected::new("no free slot")),
///         })
///     }
/// }
///
/// let timer = ManualTimer::new();
/// let slots = Slots(Arc::new(AtomicUsize::new(1)));
/// let pipeline = Pipeline::with_timer(timer.clone()).limiter(slots.clone()).build()?;
/// let out = timer.block_on(pipeline.call(|_| async { Ok::<_, std::io::Error>("done") }));
/// assert_eq!(out.unwrap(), "done");
/// assert_eq!(slots.0.load(Ordering::Acquire), 1); // the slot came back
/// # Ok::<(), tailguard::ConfigError>(())
/// ```
///
/// An async limiter (a bulkhead with a queue) returns its own wait future instead; the
/// `deadline` argument lets it refuse at once a wait it knows would outlast the call.
pub trait Limiter {
    /// The slot one attempt holds.
    type Permit: LimiterPermit;
    /// The wait for a slot; see the cancel-safety rule above.
    type Acquire<'a>: Future<Output = Result<Self::Permit, LimiterRejected>>
    where
        Self: 'a;

    /// Whether there is a limiter at all. `()` says `false`, and the pipeline then skips the
    /// layer entirely (no clock read, no call). Leave it `true`.
    const PRESENT: bool = true;

    /// A slot for one attempt asked for at `now`, by a call that must end by `deadline` (if it
    /// has one).
    fn acquire_at(&self, now: Instant, deadline: Option<Instant>) -> Self::Acquire<'_>;
}

/// No limiter: every attempt gets its slot at once, and the pipeline never asks.
impl Limiter for () {
    type Permit = ();
    type Acquire<'a> = Ready<Result<(), LimiterRejected>>;

    const PRESENT: bool = false;

    #[inline(always)]
    fn acquire_at(&self, _now: Instant, _deadline: Option<Instant>) -> Self::Acquire<'_> {
        ready(Ok(()))
    }
}

impl LimiterPermit for () {
    #[inline(always)]
    fn finish(self, _outcome: Outcome, _latency: Duration) {}
}
