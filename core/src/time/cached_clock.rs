//! A timer whose coarse clock is a time cached in memory: one atomic load per read, refreshed
//! by one thread for the whole process.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use super::origin::{origin, process_nanos, ORIGIN_NANOS};
use super::Timer;

/// How often the ticker thread refreshes the cached time.
const PERIOD: Duration = Duration::from_millis(1);

/// The lag [`CachedTimer`] declares: the period, plus as much again for the thread's wake-up.
const RESOLUTION: Duration = Duration::from_millis(2);

/// The cached time, on the process's nanosecond scale ([`process_nanos`]); written only by the
/// ticker thread (and once before it starts).
static CACHED: AtomicU64 = AtomicU64::new(0);

/// The id of the process whose ticker thread is running, 0 if none is (a forked child has no
/// thread: its id differs from its parent's, so it starts its own).
static TICKER_PID: AtomicU32 = AtomicU32::new(0);

/// Serializes starting the thread.
static STARTING: Mutex<()> = Mutex::new(());

/// The name of the ticker thread.
const THREAD_NAME: &str = "tailguard-clock";

/// Starts the ticker thread for this process unless it runs already; whether it runs.
fn start_ticker() -> bool {
    let pid = std::process::id();
    if TICKER_PID.load(Ordering::Acquire) == pid {
        return true;
    }
    let _starting = STARTING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if TICKER_PID.load(Ordering::Acquire) == pid {
        return true;
    }
    let _ = origin(); // fixed before the first tick, so the cached time is never below it
    CACHED.store(process_nanos(Instant::now()), Ordering::Release);
    let spawned = thread::Builder::new()
        .name(THREAD_NAME.to_owned())
        .spawn(|| loop {
            thread::sleep(PERIOD);
            CACHED.store(process_nanos(Instant::now()), Ordering::Release);
        });
    if spawned.is_ok() {
        TICKER_PID.store(pid, Ordering::Release);
    }
    spawned.is_ok()
}

/// A timer whose coarse clock ([`Timer::now_coarse`], [`Timer::now_coarse_nanos`]) is a time
/// cached in memory, refreshed every millisecond by one thread for the whole process: a read
/// is one atomic load, where the kernel's coarse clock ([`AsyncIoTimer`]'s) is a vDSO call.
/// Everything else (`now`, sleeps) is the wrapped timer's.
///
/// It is for the circuit breaker's measurements (slow-call timing and time windows; see
/// [`CircuitBreaker::try_acquire`]), where it brings a call's cost within about twice that of a
/// count window without slow-call timing (BENCHMARKS.md, "Clock reads").
///
/// **The price.** The first `CachedTimer` made in a process starts a thread (named
/// `tailguard-clock`) that wakes every millisecond for as long as the process lives, to read
/// [`Instant::now`] and store it: about a thousand short wake-ups a second. Nothing starts it but
/// [`CachedTimer::new`]; all `CachedTimer`s share it. It holds no lock and no resource, so at
/// process exit it simply ends with the process. (A forked child has no such thread; its first
/// `CachedTimer::new` starts one.) If the thread cannot be spawned, the timer falls back to
/// the wrapped timer's own coarse clock, and says so with a [`coarse_resolution`] of that clock.
///
/// **The error bound.** The cached time is never ahead of [`Instant::now`] and lags it by the
/// time since the thread's last wake-up: [`coarse_resolution`] declares 2 ms (the period and
/// as much again for a late wake-up), which holds while the thread gets a CPU within that time.
/// On an overloaded machine a late tick makes every measurement taken meanwhile stale by the
/// delay: a call is timed short by up to the lag at its end, and a time-window record may land
/// in the bucket before its own. The breaker uses this clock only where 25 times the declared
/// lag fits in the slow-call limit and in a time bucket (50 ms); decisions (opening, open
/// periods, probes) always read the wrapped timer's exact [`now`](Timer::now).
///
/// Wrap a timer on the system clock, whose `now` is [`Instant::now`] ([`AsyncIoTimer`],
/// `FuturesTimer`, or one of your own): the cached time is `Instant::now` as the thread last
/// read it, which means nothing beside a virtual clock such as [`ManualTimer`].
///
/// ```
/// use std::time::Duration;
/// use tailguard::breaker::CircuitBreaker;
/// use tailguard::time::{AsyncIoTimer, CachedTimer, Timer};
///
/// let timer = CachedTimer::new(AsyncIoTimer); // starts the process's ticker thread, once
/// assert!(timer.now_coarse() <= timer.now());
/// assert_eq!(timer.coarse_resolution(), Duration::from_millis(2));
///
/// let breaker = CircuitBreaker::builder()
///     .slow_calls(Duration::from_secs(1), 0.5)
///     .time_window(Duration::from_secs(10), 10)
///     .build_with(timer)?;
/// breaker.try_acquire().unwrap().success(); // timed and bucketed on the cached time
/// assert_eq!(breaker.metrics().calls, 1);
/// # Ok::<(), tailguard::ConfigError>(())
/// ```
///
/// [`AsyncIoTimer`]: super::AsyncIoTimer
/// [`ManualTimer`]: super::ManualTimer
/// [`CircuitBreaker::try_acquire`]: crate::breaker::CircuitBreaker::try_acquire
/// [`coarse_resolution`]: Timer::coarse_resolution
#[derive(Clone, Copy, Debug)]
pub struct CachedTimer<T> {
    inner: T,
    /// Whether the ticker thread runs (false only if it could not be spawned).
    cached: bool,
}

impl<T: Timer> CachedTimer<T> {
    /// `inner`, with its coarse clock replaced by the cached time; starts the process's ticker
    /// thread if it does not run yet.
    pub fn new(inner: T) -> Self {
        CachedTimer {
            inner,
            cached: start_ticker(),
        }
    }

    /// The wrapped timer.
    pub fn inner(&self) -> &T {
        &self.inner
    }
}

impl<T: Timer + Default> Default for CachedTimer<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T: Timer> Timer for CachedTimer<T> {
    type Sleep = T::Sleep;

    #[inline]
    fn now(&self) -> Instant {
        self.inner.now()
    }

    #[inline]
    fn sleep_until(&self, deadline: Instant) -> Self::Sleep {
        self.inner.sleep_until(deadline)
    }

    #[inline]
    fn sleep(&self, duration: Duration) -> Self::Sleep {
        self.inner.sleep(duration)
    }

    #[inline]
    fn reset(&self, sleep: &mut Self::Sleep, deadline: Instant) {
        self.inner.reset(sleep, deadline);
    }

    /// The cached time as an [`Instant`].
    #[inline]
    fn now_coarse(&self) -> Instant {
        if self.cached {
            let nanos = CACHED.load(Ordering::Acquire).saturating_sub(ORIGIN_NANOS);
            origin() + Duration::from_nanos(nanos)
        } else {
            self.inner.now_coarse()
        }
    }

    /// The cached time: one atomic load.
    #[inline]
    fn now_coarse_nanos(&self) -> u64 {
        if self.cached {
            CACHED.load(Ordering::Acquire)
        } else {
            self.inner.now_coarse_nanos()
        }
    }

    /// 2 ms: the refresh period (1 ms) and as much again for a late wake-up.
    fn coarse_resolution(&self) -> Duration {
        if self.cached {
            RESOLUTION
        } else {
            self.inner.coarse_resolution()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::ManualTimer;

    #[test]
    fn the_cached_time_is_never_ahead_and_moves_on() {
        let timer = CachedTimer::new(ManualTimer::new());
        assert!(timer.cached, "the ticker thread could not start");
        let first = timer.now_coarse_nanos();
        assert!(first <= process_nanos(Instant::now()));
        assert!(timer.now_coarse() <= Instant::now());
        // The instant is the same reading (a tick may fall between the reads).
        let instant = process_nanos(timer.now_coarse());
        assert!(first <= instant && instant <= timer.now_coarse_nanos());
        // Real time, on a loaded machine: wait for a tick, up to a generous bound.
        let give_up = Instant::now() + Duration::from_secs(30);
        while timer.now_coarse_nanos() == first && Instant::now() < give_up {
            thread::sleep(Duration::from_millis(1));
        }
        let later = timer.now_coarse_nanos();
        assert!(later > first, "the cached time did not move in 30 s");
        assert!(later <= process_nanos(Instant::now()));
    }

    #[test]
    fn everything_but_the_coarse_clock_is_the_wrapped_timers() {
        let manual = ManualTimer::new();
        let timer = CachedTimer::new(manual.clone());
        assert_eq!(timer.now(), manual.now());
        manual.advance(Duration::from_secs(5));
        assert_eq!(timer.now(), manual.now());
        assert_eq!(timer.coarse_resolution(), RESOLUTION);
        assert!(start_ticker(), "a second start finds the thread running");
    }
}
