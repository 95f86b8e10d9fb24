//! Time, injected.
//!
//! Everything in tailguard that waits asks a [`Timer`] for the time and for a sleep. Nothing reads
//! the system clock behind your back, so the same code runs on a real clock in production
//! ([`HeapTimer`], [`AsyncIoTimer`], `FuturesTimer`) and on a virtual clock in tests and simulations
//! ([`ManualTimer`]), where an hour of retries and hedges runs in a millisecond.
//!
//! [`CachedTimer`] wraps a real timer to make its coarse clock (the one measurements read, see
//! [`Timer::now_coarse_nanos`]) a time cached in memory by one thread per process.
//!
//! [`HeapTimer`] (with `async-io`, the [`DefaultTimer`]) keeps sleeps in tailguard's own sharded
//! heaps of deadlines, one async-io timer per shard: the cheapest real timer for a timeout that
//! waits.
//!
//! ```
//! use std::time::Duration;
//! use tailguard::time::{ManualTimer, Timer};
//!
//! let timer = ManualTimer::new();
//! let start = timer.now();
//! // Virtual time: the hour passes at once, because nothing else is waiting.
//! timer.block_on(timer.sleep(Duration::from_secs(3600)));
//! assert_eq!(timer.now() - start, Duration::from_secs(3600));
//! ```

#[cfg(feature = "async-io")]
mod async_io_timer;
mod cached_clock;
#[cfg(all(feature = "async-io", any(target_os = "linux", target_os = "android")))]
mod coarse;
#[cfg(feature = "futures-timer")]
mod futures_timer;
#[cfg(feature = "async-io")]
mod heap_timer;
mod manual;
mod origin;

use std::future::Future;
use std::time::{Duration, Instant};

#[cfg(feature = "async-io")]
pub use self::async_io_timer::AsyncIoTimer;
pub use self::cached_clock::CachedTimer;
#[cfg(feature = "futures-timer")]
pub use self::futures_timer::FuturesTimer;
#[cfg(feature = "async-io")]
pub use self::heap_timer::{HeapSleep, HeapTimer};
pub use self::manual::{ManualSleep, ManualTimer, Stalled};
pub use self::origin::process_nanos;

/// A clock and a way to sleep until an instant on it.
///
/// Implementations are cheap to clone (a zero-sized type or an `Arc`) and can be shared across
/// threads. Sleeps are plain futures: dropping one cancels it and leaves nothing registered.
///
/// # Implementing
///
/// `now` must never go backwards. `sleep_until` with an instant in the past completes on its first
/// poll. `reset` may reuse the sleep's registration; the default just makes a new sleep.
///
/// ```
/// use std::time::{Duration, Instant};
/// use tailguard::time::Timer;
///
/// async fn wait_a_bit<T: Timer>(timer: &T) -> Duration {
///     let start = timer.now();
///     timer.sleep(Duration::from_millis(5)).await;
///     timer.now() - start
/// }
/// # let timer = tailguard::time::ManualTimer::new();
/// # assert_eq!(timer.block_on(wait_a_bit(&timer)), Duration::from_millis(5));
/// ```
///
/// # A timer on tokio
///
/// tailguard has no tokio dependency, and needs none: under a tokio runtime the default
/// [`AsyncIoTimer`] works (async-io drives its timers on a thread of its own). To sleep on
/// tokio's own timer wheel instead, implement `Timer` in a few lines. `Sleep` must be `Unpin`
/// (the combinators keep it inline and poll it without pinning) and tokio's `Sleep` is not, so
/// box it; `reset` then moves it without a new allocation.
///
/// ```
/// use std::pin::Pin;
/// use std::time::{Duration, Instant};
/// use tailguard::retry::Retry;
/// use tailguard::time::Timer;
/// use tailguard::timeout::timeout_with;
///
/// /// Sleeps on tokio's timer; needs a tokio runtime with time enabled.
/// #[derive(Debug, Clone, Copy, Default)]
/// struct TokioTimer;
///
/// impl Timer for TokioTimer {
///     type Sleep = Pin<Box<tokio::time::Sleep>>;
///
///     fn now(&self) -> Instant {
///         tokio::time::Instant::now().into_std() // follows tokio's paused clock in tests
///     }
///
///     fn sleep_until(&self, deadline: Instant) -> Self::Sleep {
///         Box::pin(tokio::time::sleep_until(deadline.into()))
///     }
///
///     fn reset(&self, sleep: &mut Self::Sleep, deadline: Instant) {
///         sleep.as_mut().reset(deadline.into()); // reuses the allocation and the registration
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// // Any API that takes a timer takes this one: a timeout...
/// let slow = tokio::time::sleep(Duration::from_secs(5));
/// let late = timeout_with(TokioTimer, Duration::from_millis(10), slow).await;
/// assert!(late.is_err());
///
/// // ...or a retry policy.
/// let policy = Retry::with_timer(TokioTimer).max_attempts(2).build()?;
/// let tries = std::cell::Cell::new(0);
/// let out = policy
///     .run(|| async {
///         tries.set(tries.get() + 1);
///         if tries.get() < 2 { Err("busy") } else { Ok("done") }
///     })
///     .await;
/// assert_eq!(out, Ok("done"));
/// # Ok::<(), tailguard::ConfigError>(())
/// # }).unwrap();
/// ```
pub trait Timer: Clone + Send + Sync + 'static {
    /// The future returned by [`Timer::sleep_until`]; its output is ignored.
    type Sleep: Future + Send + Unpin + 'static;

    /// The current instant on this timer's clock.
    fn now(&self) -> Instant;

    /// A future that completes once [`Timer::now`] reaches `deadline`.
    fn sleep_until(&self, deadline: Instant) -> Self::Sleep;

    /// A future that completes `duration` from now. Durations too large to represent saturate
    /// to a deadline decades away instead of overflowing.
    fn sleep(&self, duration: Duration) -> Self::Sleep {
        self.sleep_until(deadline_after(self.now(), duration))
    }

    /// Moves an existing sleep to a new deadline, reusing its registration where the timer can.
    fn reset(&self, sleep: &mut Self::Sleep, deadline: Instant) {
        *sleep = self.sleep_until(deadline);
    }

    /// The current instant read more cheaply than [`now`](Self::now), at the price of lagging
    /// it by up to [`coarse_resolution`](Self::coarse_resolution); never ahead of `now`. For
    /// measurements that only need that grain (the circuit breaker's time buckets and slow-call
    /// timing, when the grain is small beside them).
    ///
    /// The default is [`now`](Self::now), with a resolution of zero: exact, as a virtual clock
    /// must be. [`AsyncIoTimer`] reads the kernel's coarse clock on Linux.
    ///
    /// ```
    /// use tailguard::time::{ManualTimer, Timer};
    ///
    /// let timer = ManualTimer::new();
    /// assert_eq!(timer.now_coarse(), timer.now()); // virtual time is exact
    /// assert!(timer.coarse_resolution().is_zero());
    /// ```
    #[inline]
    fn now_coarse(&self) -> Instant {
        self.now()
    }

    /// How far [`now_coarse`](Self::now_coarse) may lag [`now`](Self::now): zero by default.
    fn coarse_resolution(&self) -> Duration {
        Duration::ZERO
    }

    /// [`now_coarse`](Self::now_coarse) as nanoseconds on the process's scale
    /// ([`process_nanos`]): what the circuit breaker reads for its measurements, so that a clock
    /// that keeps its time as a number hands it over without building an [`Instant`] that the
    /// breaker would convert back.
    ///
    /// The default is `process_nanos(self.now_coarse())`. An override must return that same
    /// value, only faster: [`AsyncIoTimer`] turns the kernel's coarse clock into it with one
    /// subtraction, [`CachedTimer`] keeps it in an atomic.
    ///
    /// ```
    /// use tailguard::time::{process_nanos, ManualTimer, Timer};
    ///
    /// let timer = ManualTimer::new();
    /// assert_eq!(timer.now_coarse_nanos(), process_nanos(timer.now()));
    /// ```
    #[inline]
    fn now_coarse_nanos(&self) -> u64 {
        process_nanos(self.now_coarse())
    }
}

/// The timer used where none is given: [`HeapTimer`] with the default `async-io` feature,
/// otherwise `FuturesTimer` (with the `futures-timer` feature).
///
/// `HeapTimer` is the default because a timeout usually waits: the future it bounds is polled a
/// few times before it answers, and there `HeapTimer` costs about what tokio's timer does
/// (0.4–1.0× in wall time) where [`AsyncIoTimer`] costs 3–7× (it reads the clock on every poll
/// and goes through async-io's reactor for every registration); making, polling and dropping a
/// sleep is 4–6× cheaper, a 1 ms sleep fires as promptly, and the ready path is level
/// (BENCHMARKS.md, "A timer of tailguard's own"). It fires through the same async-io reactor,
/// so it runs under the same executors.
///
/// `AsyncIoTimer` is still there for what `HeapTimer` trades away: no process-wide state (its
/// sleeps are plain async-io timers, owned by the reactor alone), no lock where a deadline has
/// already passed at the first poll (HeapTimer's small loss: ~1.17× in wall time there), and
/// memory that goes back when its sleeps go instead of shard slots kept for reuse at the peak
/// number of sleeps alive at once. Pass it to any `_with` API to use it.
///
/// ```
/// use tailguard::time::{DefaultTimer, HeapTimer};
///
/// let timer: DefaultTimer = HeapTimer;
/// # let _ = timer;
/// ```
#[cfg(feature = "async-io")]
pub type DefaultTimer = HeapTimer;

/// The timer used where none is given: [`HeapTimer`] with the default `async-io` feature,
/// otherwise `FuturesTimer` (with the `futures-timer` feature).
#[cfg(all(not(feature = "async-io"), feature = "futures-timer"))]
pub type DefaultTimer = FuturesTimer;

/// About thirty years: the stand-in for "never" when a deadline would overflow `Instant`.
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// `now + duration`, saturating to a far-future instant instead of overflowing.
pub(crate) fn deadline_after(now: Instant, duration: Duration) -> Instant {
    now.checked_add(duration)
        .or_else(|| now.checked_add(FAR_FUTURE))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_after_saturates() {
        let now = Instant::now();
        assert_eq!(
            deadline_after(now, Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
        let far = deadline_after(now, Duration::MAX);
        assert!(far >= now + Duration::from_secs(86_400 * 365));
    }
}
