use std::time::Instant;

use super::Timer;

/// The system clock, with sleeps from [async-io](https://docs.rs/async-io)'s reactor.
///
/// async-io's `Timer` lives inline in the future that owns it and registers with the reactor only
/// when it is first polled and found not yet due, so a sleep that is never awaited, or is already
/// due, costs nothing but its construction. `reset` moves the registration instead of making a new
/// timer. Works under any executor: async-io drives its reactor on a helper thread whenever no
/// `async_io::block_on` does.
///
/// ```
/// use std::time::Duration;
/// use tailguard::time::{AsyncIoTimer, Timer};
///
/// let timer = AsyncIoTimer;
/// let start = timer.now();
/// futures::executor::block_on(timer.sleep(Duration::from_millis(1)));
/// assert!(timer.now() - start >= Duration::from_millis(1));
///
/// // The coarse clock never runs ahead of the precise one.
/// let coarse = timer.now_coarse();
/// assert!(coarse <= timer.now());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AsyncIoTimer;

impl Timer for AsyncIoTimer {
    type Sleep = async_io::Timer;

    #[inline]
    fn now(&self) -> Instant {
        Instant::now()
    }

    #[inline]
    fn sleep_until(&self, deadline: Instant) -> async_io::Timer {
        async_io::Timer::at(deadline)
    }

    #[inline]
    fn reset(&self, sleep: &mut async_io::Timer, deadline: Instant) {
        sleep.set_at(deadline);
    }

    /// `CLOCK_MONOTONIC_COARSE` on Linux: the time at the kernel's last tick, about a third
    /// of the cost of [`now`](Self::now) (elsewhere: `now`).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[inline]
    fn now_coarse(&self) -> Instant {
        super::coarse::now()
    }

    /// [`now_coarse`](Self::now_coarse) without building an `Instant`: on Linux the kernel's
    /// coarse clock and one addition.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[inline]
    fn now_coarse_nanos(&self) -> u64 {
        super::coarse::now_nanos()
    }

    /// The kernel tick on Linux (`clock_getres`, typically 1–4 ms); zero elsewhere.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn coarse_resolution(&self) -> std::time::Duration {
        super::coarse::resolution()
    }
}
