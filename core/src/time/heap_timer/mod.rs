//! [`HeapTimer`]: sleeps in sharded heaps of deadlines, each shard driven by one async-io timer
//! (`shard.rs`); the sleep future and the choice of shard here.

mod shard;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use self::shard::{Registered, Shard};
use super::{AsyncIoTimer, Timer};

/// The system clock, with sleeps kept in tailguard's own heaps of deadlines, each driven by one
/// async-io timer armed at its earliest deadline.
///
/// A sleep registers on its first poll, in the shard of the thread that polls it: it takes the
/// shard's lock and pushes its deadline on a heap. Only a deadline earlier than every other in
/// the shard reads the clock and moves the shard's async-io timer (a trip through async-io's
/// reactor); a later one touches neither. A poll after that reads a flag that the shard sets
/// when the deadline has passed, instead of the clock. Dropping a sleep before it fires marks
/// it cancelled with one atomic operation; the cancelled entries are swept from the heap once
/// they are half of it, so the memory a shard holds is bounded by the sleeps alive at once.
///
/// Against [`AsyncIoTimer`], which reads the clock on every poll and goes through the reactor
/// for every registration, a timeout whose future waits a few polls costs 5–11× less, and less
/// than tokio's (0.4–1.0× in wall time, 0.64× in instructions: BENCHMARKS.md, "A timer of
/// tailguard's own"). The firing is the same: async-io's reactor wakes the shard, on its own
/// thread or on the thread running `async_io::block_on` (smol's `block_on`), and the shard
/// wakes every due sleep. A sleep that is never polled costs nothing but its construction, as
/// with `AsyncIoTimer`. [`reset`](Timer::reset) gives the registration back and registers again
/// at the next poll.
///
/// The price: process-wide state (the shards' slots are reused, never freed, so their memory
/// follows the peak number of sleeps alive at once), a sweep of cancelled entries that is
/// O(heap) under a shard's lock (amortized O(1) per sleep), and a lock taken where a deadline
/// has already passed at the first poll. It is the [`DefaultTimer`](super::DefaultTimer) with
/// the `async-io` feature; its docs say what `AsyncIoTimer` is still for.
///
/// Works under any executor (smol, async-executor, `futures::executor`, tokio): the shards are
/// global, and a sleep moved to another thread keeps its registration (its waker is updated on
/// every poll).
///
/// ```
/// use std::time::Duration;
/// use tailguard::time::{HeapTimer, Timer};
/// use tailguard::timeout::timeout_with;
///
/// let timer = HeapTimer;
/// let start = timer.now();
/// futures::executor::block_on(timer.sleep(Duration::from_millis(1)));
/// assert!(timer.now() - start >= Duration::from_millis(1));
///
/// // Any API that takes a timer takes this one.
/// let never = futures::future::pending::<()>();
/// let out = futures::executor::block_on(timeout_with(timer, Duration::from_millis(5), never));
/// assert!(out.is_err());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapTimer;

impl Timer for HeapTimer {
    type Sleep = HeapSleep;

    #[inline]
    fn now(&self) -> Instant {
        Instant::now()
    }

    #[inline]
    fn sleep_until(&self, deadline: Instant) -> HeapSleep {
        HeapSleep {
            deadline,
            state: State::New,
        }
    }

    #[inline]
    fn reset(&self, sleep: &mut HeapSleep, deadline: Instant) {
        sleep.deadline = deadline;
        sleep.state = State::New;
    }

    /// As [`AsyncIoTimer::now_coarse`](Timer::now_coarse).
    #[inline]
    fn now_coarse(&self) -> Instant {
        AsyncIoTimer.now_coarse()
    }

    /// As [`AsyncIoTimer::now_coarse_nanos`](Timer::now_coarse_nanos).
    #[inline]
    fn now_coarse_nanos(&self) -> u64 {
        AsyncIoTimer.now_coarse_nanos()
    }

    /// As [`AsyncIoTimer::coarse_resolution`](Timer::coarse_resolution).
    fn coarse_resolution(&self) -> Duration {
        AsyncIoTimer.coarse_resolution()
    }
}

/// The sleep of a [`HeapTimer`]: completes once its deadline has passed.
///
/// Registers on its first poll; dropping it gives its registration back.
#[must_use = "futures do nothing unless polled"]
pub struct HeapSleep {
    deadline: Instant,
    state: State,
}

enum State {
    /// Not registered yet.
    New,
    Registered(Registration),
    /// Fired (or found due): ready for good.
    Done,
}

/// A key in a shard, given back when dropped.
struct Registration {
    shard: &'static Shard,
    key: u32,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.shard.cancel(self.key);
    }
}

impl HeapSleep {
    /// The instant this sleep completes at.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Polls, registering in `shard` if not registered yet.
    #[inline]
    fn poll_in(
        &mut self,
        shard: impl FnOnce() -> &'static Shard,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        match &self.state {
            State::Registered(reg) => {
                if reg.shard.poll(reg.key, cx.waker()).is_pending() {
                    return Poll::Pending;
                }
            }
            State::New => {
                let shard = shard();
                if let Registered::Key(key) = shard.register(self.deadline, cx.waker()) {
                    self.state = State::Registered(Registration { shard, key });
                    if !shard.fired(key) {
                        return Poll::Pending;
                    }
                }
            }
            State::Done => return Poll::Ready(()),
        }
        self.state = State::Done;
        Poll::Ready(())
    }
}

impl Future for HeapSleep {
    type Output = ();

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.get_mut().poll_in(local_shard, cx)
    }
}

impl fmt::Debug for HeapSleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::New => "new",
            State::Registered(_) => "registered",
            State::Done => "done",
        };
        f.debug_struct("HeapSleep")
            .field("deadline", &self.deadline)
            .field("state", &state)
            .finish()
    }
}

/// The shards every `HeapTimer` shares: a few per core.
fn shards() -> &'static [Shard] {
    static SHARDS: OnceLock<Box<[Shard]>> = OnceLock::new();
    SHARDS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (0..(cores * 4).clamp(4, 256))
            .map(|_| Shard::new())
            .collect()
    })
}

/// The shard of the calling thread: threads take shards in turn, on their first sleep.
fn local_shard() -> &'static Shard {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static HOME: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
    }
    let shards = shards();
    let home = HOME
        .try_with(|home| {
            let mut index = home.get();
            if index == usize::MAX {
                index = NEXT.fetch_add(1, Ordering::Relaxed) % shards.len();
                home.set(index);
            }
            index
        })
        // A thread being torn down still gets a shard.
        .unwrap_or(0);
    &shards[home]
}

#[cfg(test)]
mod tests;
