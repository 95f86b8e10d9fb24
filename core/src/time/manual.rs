mod heap;
mod queue;
mod wheel;

use std::fmt;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, RawWakerVTable, Wake, Waker};
use std::time::{Duration, Instant};

use self::queue::{Key, SleepQueue};
use super::{deadline_after, Timer};

/// A virtual clock for deterministic tests and simulations.
///
/// Time stands still until you move it, with [`advance`](ManualTimer::advance) or
/// [`advance_to`](ManualTimer::advance_to), or let [`block_on`](ManualTimer::block_on) move it:
/// it runs a future and, whenever the future is idle, jumps the clock straight to the next
/// pending sleep, the way paused time works in other runtimes. A simulation of thousands of timed
/// requests therefore runs in milliseconds, and runs the same way every time.
///
/// Clones share one clock. The clock starts at the real [`Instant::now`] of its creation and only
/// moves forward.
///
/// ```
/// use std::time::Duration;
/// use tailguard::time::{ManualTimer, Timer};
/// use tailguard::timeout::timeout_with;
///
/// let timer = ManualTimer::new();
/// let slow = async {
///     timer.sleep(Duration::from_secs(10)).await;
///     "done"
/// };
/// // The 2 s timeout fires first; block_on jumps the clock to it without sleeping.
/// let result = timer.block_on(timeout_with(timer.clone(), Duration::from_secs(2), slow));
/// assert!(result.is_err());
/// assert_eq!(timer.elapsed(), Duration::from_secs(2));
/// ```
#[derive(Clone)]
pub struct ManualTimer {
    shared: Arc<Shared>,
}

struct Shared {
    origin: Instant,
    /// `now - origin` in nanoseconds, so that reading the clock takes no lock; [`OUT_OF_RANGE`]
    /// once that no longer fits (584 years on), and then readers take the lock. Written only
    /// with the lock held.
    since_origin: AtomicU64,
    clock: Mutex<Clock>,
}

const OUT_OF_RANGE: u64 = u64::MAX;

struct Clock {
    now: Instant,
    sleepers: SleepQueue,
}

/// Wakers of the sleeps one move of the clock made due, in the order to wake them. Moves
/// usually wake a single sleep, which needs no allocation.
#[derive(Default)]
struct Due {
    first: Option<Waker>,
    rest: Vec<Waker>,
}

impl Due {
    fn wake(self) {
        if let Some(first) = self.first {
            first.wake();
        }
        for waker in self.rest {
            waker.wake();
        }
    }
}

impl ManualTimer {
    /// A new clock, standing at the current real instant.
    pub fn new() -> Self {
        let now = Instant::now();
        ManualTimer {
            shared: Arc::new(Shared {
                origin: now,
                since_origin: AtomicU64::new(0),
                clock: Mutex::new(Clock {
                    now,
                    sleepers: SleepQueue::new(now),
                }),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Clock> {
        // A panic while holding the lock cannot leave the clock inconsistent: no code that can
        // panic runs between the steps of an update. Keep going after one.
        self.shared
            .clock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How far the clock has moved since it was created.
    pub fn elapsed(&self) -> Duration {
        self.now() - self.shared.origin
    }

    /// Moves the clock forward by `duration` and wakes every sleep that is now due, earliest
    /// deadline first.
    pub fn advance(&self, duration: Duration) {
        let due = {
            let mut clock = self.lock();
            let target = deadline_after(clock.now, duration);
            self.move_to(&mut clock, target)
        };
        due.wake();
    }

    /// Moves the clock forward to `instant` (if it is later than now) and wakes every sleep that
    /// is due, earliest deadline first.
    pub fn advance_to(&self, instant: Instant) {
        let due = self.move_to(&mut self.lock(), instant);
        due.wake();
    }

    /// Moves the clock to the next pending deadline and wakes the sleeps due there. Returns
    /// false, with the clock unmoved, if no sleep is pending.
    fn advance_to_next(&self) -> bool {
        let due = {
            let mut clock = self.lock();
            match clock.sleepers.next_deadline() {
                Some(deadline) => self.move_to(&mut clock, deadline),
                None => return false,
            }
        };
        due.wake();
        true
    }

    /// Moves the clock to `instant` if that is later, and takes the sleeps now due out of the
    /// queue; the caller wakes them once it has let go of the lock.
    fn move_to(&self, clock: &mut Clock, instant: Instant) -> Due {
        if instant > clock.now {
            clock.now = instant;
            let since = self.nanos(instant);
            self.shared.since_origin.store(since, Ordering::Release);
        }
        let now = clock.now;
        // Written only under the lock, which is held.
        let now_at = self.shared.since_origin.load(Ordering::Relaxed);
        let mut due = Due {
            first: clock.sleepers.pop_due(now, now_at),
            rest: Vec::new(),
        };
        if due.first.is_some() {
            while let Some(waker) = clock.sleepers.pop_due(now, now_at) {
                due.rest.push(waker);
            }
        }
        due
    }

    /// The deadline of the earliest sleep that has been polled and is still waiting.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.lock().sleepers.next_deadline()
    }

    /// How many sleeps are registered: polled, not yet due, not yet dropped. Tests use it to show
    /// that cancelled work leaves no timer behind.
    pub fn pending_sleeps(&self) -> usize {
        self.lock().sleepers.len()
    }

    /// Runs `future` to completion on the current thread in virtual time.
    ///
    /// Whenever the future is idle (it returned `Pending` and nothing woke it), the clock jumps to
    /// the next pending sleep. Everything the future waits on must be driven by this timer or by
    /// the future itself (for example through `join`, `select` or `FuturesUnordered`).
    ///
    /// # Panics
    ///
    /// Panics if the future is idle with no sleep left to fire: it would wait forever. Use
    /// [`try_block_on`](ManualTimer::try_block_on) to get that as an error instead.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        match self.try_block_on(future) {
            Ok(output) => output,
            Err(stalled) => panic!("{stalled}"),
        }
    }

    /// Like [`block_on`](ManualTimer::block_on), but returns [`Stalled`] when the future is idle
    /// and no sleep is left to fire.
    pub fn try_block_on<F: Future>(&self, future: F) -> Result<F::Output, Stalled> {
        let mut future = pin!(future);
        let signal = Arc::new(Signal {
            woken: AtomicBool::new(false),
        });
        let waker = Waker::from(signal.clone());
        let mut cx = Context::from_waker(&waker);
        loop {
            signal.woken.store(false, Ordering::SeqCst);
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                return Ok(output);
            }
            if signal.woken.load(Ordering::SeqCst) {
                continue;
            }
            if !self.advance_to_next() {
                return Err(Stalled {
                    elapsed: self.elapsed(),
                });
            }
        }
    }
}

impl Default for ManualTimer {
    fn default() -> Self {
        ManualTimer::new()
    }
}

impl fmt::Debug for ManualTimer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let clock = self.lock();
        f.debug_struct("ManualTimer")
            .field("elapsed", &(clock.now - self.shared.origin))
            .field("pending_sleeps", &clock.sleepers.len())
            .finish()
    }
}

struct Signal {
    woken: AtomicBool,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
    }
}

impl Timer for ManualTimer {
    type Sleep = ManualSleep;

    fn now(&self) -> Instant {
        match self.shared.since_origin.load(Ordering::Acquire) {
            OUT_OF_RANGE => self.lock().now,
            since => self.shared.origin + Duration::from_nanos(since),
        }
    }

    fn sleep_until(&self, deadline: Instant) -> ManualSleep {
        ManualSleep {
            at: self.nanos(deadline),
            timer: self.clone(),
            deadline,
            key: None,
            waker: (0, 0),
        }
    }

    fn reset(&self, sleep: &mut ManualSleep, deadline: Instant) {
        sleep.deregister();
        sleep.deadline = deadline;
        sleep.at = self.nanos(deadline);
    }
}

impl ManualTimer {
    /// `instant` in nanoseconds since the origin (0 before it), or [`OUT_OF_RANGE`].
    fn nanos(&self, instant: Instant) -> u64 {
        queue::nanos_since(self.shared.origin, instant).unwrap_or(OUT_OF_RANGE)
    }

    /// The clock in nanoseconds since the origin, read without the lock, if it is in range.
    #[inline]
    fn now_nanos(&self) -> Option<u64> {
        match self.shared.since_origin.load(Ordering::Acquire) {
            OUT_OF_RANGE => None,
            since => Some(since),
        }
    }
}

/// What tells two wakers apart for [`Waker::will_wake`]: the addresses of their data and vtable.
fn waker_id(waker: &Waker) -> (usize, usize) {
    (
        waker.data().addr(),
        std::ptr::from_ref::<RawWakerVTable>(waker.vtable()).addr(),
    )
}

/// The sleep of a [`ManualTimer`]: completes once the virtual clock reaches its deadline.
///
/// It registers with the clock when first polled, and dropping it removes the registration.
#[must_use = "futures do nothing unless polled"]
pub struct ManualSleep {
    timer: ManualTimer,
    deadline: Instant,
    /// The deadline in nanoseconds since the clock's origin, or [`OUT_OF_RANGE`].
    at: u64,
    key: Option<Key>,
    /// [`waker_id`] of the waker registered with `key`: while it is registered and not due, a
    /// poll with the same waker has nothing to do and takes no lock.
    waker: (usize, usize),
}

impl ManualSleep {
    /// The instant this sleep completes at.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the clock has reached the deadline, read without the lock; `None` when that
    /// needs it (times more than 584 years from the origin). The move of the clock that made a
    /// registered sleep due has taken it out of the queue, under the lock, or is about to.
    #[inline]
    fn is_due(&self) -> Option<bool> {
        match self.timer.now_nanos() {
            Some(now) if self.at != OUT_OF_RANGE => Some(now >= self.at),
            _ => None,
        }
    }

    fn deregister(&mut self) {
        if let Some(key) = self.key.take() {
            if self.is_due() == Some(true) {
                return; // fired: no longer in the queue
            }
            let waker = self.timer.lock().sleepers.remove(key);
            // Dropped here, with the lock released: dropping a waker may run other code.
            drop(waker);
        }
    }
}

impl Future for ManualSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        match this.is_due() {
            Some(true) => {
                // Fired (or never registered): nothing to take out of the queue.
                this.key = None;
                return Poll::Ready(());
            }
            Some(false) if this.key.is_some() && this.waker == waker_id(cx.waker()) => {
                return Poll::Pending;
            }
            _ => {}
        }
        let mut clock = this.timer.lock();
        let (result, old_waker) = if clock.now >= this.deadline {
            let old = this.key.take().and_then(|key| clock.sleepers.remove(key));
            (Poll::Ready(()), old)
        } else {
            let at = (this.at != OUT_OF_RANGE).then_some(this.at);
            let old = match this.key {
                Some(key) if clock.sleepers.contains(key) => {
                    clock.sleepers.set_waker(key, cx.waker())
                }
                // Not registered yet (or, which advance never does, fired before its deadline).
                _ => {
                    let key = clock.sleepers.register(this.deadline, at, cx.waker());
                    this.key = Some(key);
                    None
                }
            };
            this.waker = waker_id(cx.waker());
            (Poll::Pending, old)
        };
        drop(clock);
        drop(old_waker);
        result
    }
}

impl Drop for ManualSleep {
    fn drop(&mut self) {
        self.deregister();
    }
}

impl fmt::Debug for ManualSleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualSleep")
            .field("deadline", &self.deadline)
            .field("registered", &self.key.is_some())
            .finish()
    }
}

/// [`ManualTimer::try_block_on`] found the future idle with no sleep left to fire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stalled {
    /// Virtual time elapsed when the stall was found.
    pub elapsed: Duration,
}

impl fmt::Display for Stalled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the future is pending with no timer left to fire after {:?} of virtual time: \
             it waits on something the ManualTimer does not drive (a real socket, another \
             executor, a channel nobody sends on); drive that from inside the future",
            self.elapsed
        )
    }
}

impl std::error::Error for Stalled {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex as StdMutex;

    #[test]
    fn advance_wakes_due_sleeps_in_deadline_order() {
        let timer = ManualTimer::new();
        let order = Arc::new(StdMutex::new(Vec::new()));
        let mut sleeps: Vec<_> = [30u64, 10, 20, 40]
            .iter()
            .map(|&ms| {
                let order = order.clone();
                let sleep = timer.sleep(Duration::from_millis(ms));
                (ms, sleep, order)
            })
            .collect();
        // Register every sleep with a waker that records its deadline when woken.
        struct Recorder(u64, Arc<StdMutex<Vec<u64>>>);
        impl Wake for Recorder {
            fn wake(self: Arc<Self>) {
                self.1.lock().unwrap().push(self.0);
            }
        }
        for (ms, sleep, order) in &mut sleeps {
            let waker = Waker::from(Arc::new(Recorder(*ms, order.clone())));
            assert!(Pin::new(sleep)
                .poll(&mut Context::from_waker(&waker))
                .is_pending());
        }
        assert_eq!(timer.pending_sleeps(), 4);
        timer.advance(Duration::from_millis(30));
        assert_eq!(*order.lock().unwrap(), vec![10, 20, 30]);
        assert_eq!(timer.pending_sleeps(), 1);
        assert_eq!(timer.elapsed(), Duration::from_millis(30));
        timer.advance(Duration::from_millis(10));
        assert_eq!(*order.lock().unwrap(), vec![10, 20, 30, 40]);
    }

    #[test]
    fn a_new_waker_replaces_the_old_one_and_the_same_one_is_kept() {
        struct Count(AtomicU64);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let timer = ManualTimer::new();
        let (first, second) = (
            Arc::new(Count(AtomicU64::new(0))),
            Arc::new(Count(AtomicU64::new(0))),
        );
        let (a, b) = (Waker::from(first.clone()), Waker::from(second.clone()));
        let mut sleep = timer.sleep(Duration::from_millis(5));
        for waker in [&a, &a, &b, &b] {
            // The repeated polls take the lock-free path; the change of waker must not.
            assert!(Pin::new(&mut sleep)
                .poll(&mut Context::from_waker(waker))
                .is_pending());
        }
        assert_eq!(timer.pending_sleeps(), 1);
        timer.advance(Duration::from_millis(5));
        assert_eq!(first.0.load(Ordering::SeqCst), 0);
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
        assert!(Pin::new(&mut sleep)
            .poll(&mut Context::from_waker(&a))
            .is_ready());
        assert_eq!(timer.pending_sleeps(), 0);
        drop(sleep);
        assert_eq!(timer.pending_sleeps(), 0);
    }

    #[test]
    fn dropping_a_sleep_deregisters_it() {
        let timer = ManualTimer::new();
        let mut sleep = timer.sleep(Duration::from_secs(1));
        let waker = futures::task::noop_waker();
        assert!(Pin::new(&mut sleep)
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        assert_eq!(timer.pending_sleeps(), 1);
        drop(sleep);
        assert_eq!(timer.pending_sleeps(), 0);
        assert_eq!(timer.next_deadline(), None);
    }

    #[test]
    fn past_deadline_is_ready_without_registering() {
        let timer = ManualTimer::new();
        let mut sleep = timer.sleep_until(timer.now());
        let waker = futures::task::noop_waker();
        assert!(Pin::new(&mut sleep)
            .poll(&mut Context::from_waker(&waker))
            .is_ready());
        assert_eq!(timer.pending_sleeps(), 0);
    }

    #[test]
    fn reset_moves_the_deadline() {
        let timer = ManualTimer::new();
        let mut sleep = timer.sleep(Duration::from_secs(10));
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut sleep).poll(&mut cx).is_pending());
        timer.reset(&mut sleep, timer.now() + Duration::from_secs(1));
        assert_eq!(timer.pending_sleeps(), 0);
        assert!(Pin::new(&mut sleep).poll(&mut cx).is_pending());
        assert_eq!(timer.next_deadline(), Some(sleep.deadline()));
        timer.advance(Duration::from_secs(1));
        assert!(Pin::new(&mut sleep).poll(&mut cx).is_ready());
    }

    #[test]
    fn block_on_jumps_to_each_deadline() {
        let timer = ManualTimer::new();
        let t = timer.clone();
        let steps = timer.block_on(async move {
            let mut seen = Vec::new();
            for ms in [5u64, 50, 500] {
                t.sleep(Duration::from_millis(ms)).await;
                seen.push(t.elapsed());
            }
            seen
        });
        assert_eq!(
            steps,
            vec![
                Duration::from_millis(5),
                Duration::from_millis(55),
                Duration::from_millis(555)
            ]
        );
    }

    #[test]
    fn block_on_reports_a_stall() {
        let timer = ManualTimer::new();
        let never = futures::future::pending::<()>();
        let err = timer.try_block_on(never).unwrap_err();
        assert_eq!(err.elapsed, Duration::ZERO);
        assert!(err.to_string().contains("no timer left to fire"));
    }

    #[test]
    fn thousands_of_concurrent_sleeps_finish_in_virtual_time() {
        use futures::stream::{FuturesUnordered, StreamExt};
        let timer = ManualTimer::new();
        let t = timer.clone();
        let total = timer.block_on(async move {
            let mut sleeps: FuturesUnordered<_> = (0..5_000u64)
                .map(|i| {
                    let t = t.clone();
                    async move {
                        t.sleep(Duration::from_millis(i % 997)).await;
                        1u64
                    }
                })
                .collect();
            let mut n = 0;
            while let Some(one) = sleeps.next().await {
                n += one;
            }
            n
        });
        assert_eq!(total, 5_000);
        assert_eq!(timer.elapsed(), Duration::from_millis(996));
        assert_eq!(timer.pending_sleeps(), 0);
    }
}
