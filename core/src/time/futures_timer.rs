use std::time::{Duration, Instant};

use super::Timer;

/// The system clock, with sleeps from [futures-timer](https://docs.rs/futures-timer)'s `Delay`.
///
/// Each `Delay` allocates a node and registers it with a global helper thread as soon as it is
/// made, so this timer costs more per sleep than [`AsyncIoTimer`](super::AsyncIoTimer); use it
/// where async-io's reactor is unwelcome. `reset` reuses the node.
///
/// ```
/// use std::time::Duration;
/// use tailguard::time::{FuturesTimer, Timer};
///
/// let timer = FuturesTimer;
/// let start = timer.now();
/// futures::executor::block_on(timer.sleep(Duration::from_millis(1)));
/// assert!(timer.now() - start >= Duration::from_millis(1));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FuturesTimer;

impl Timer for FuturesTimer {
    type Sleep = futures_timer::Delay;

    #[inline]
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep_until(&self, deadline: Instant) -> futures_timer::Delay {
        futures_timer::Delay::new(until(deadline))
    }

    fn sleep(&self, duration: Duration) -> futures_timer::Delay {
        futures_timer::Delay::new(duration)
    }

    fn reset(&self, sleep: &mut futures_timer::Delay, deadline: Instant) {
        sleep.reset(until(deadline));
    }
}

fn until(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}
