//! The heap timer's contract, on real time (the point is that async-io's reactor drives it):
//! short sleeps, generous bounds, and shapes rather than times.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use super::*;

const GENEROUS: Duration = Duration::from_secs(10);
const HOUR: Duration = Duration::from_secs(3600);

/// A shard of the test's own, so that other tests' sleeps do not show in its census.
fn private_shard() -> &'static Shard {
    Box::leak(Box::new(Shard::new()))
}

/// A sleep polled in a given shard.
struct In(HeapSleep, &'static Shard);

impl Future for In {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let shard = this.1;
        this.0.poll_in(|| shard, cx)
    }
}

/// A waker that counts its wakes.
#[derive(Default)]
struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn poll_once(sleep: &mut HeapSleep, shard: &'static Shard, waker: &Waker) -> Poll<()> {
    sleep.poll_in(|| shard, &mut Context::from_waker(waker))
}

/// Waits (really) until `done`, for at most [`GENEROUS`].
fn wait_until(done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < GENEROUS, "timed out waiting");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_sleep_completes_no_earlier_than_its_deadline() {
    let shard = private_shard();
    for ms in [1, 5, 20] {
        let start = Instant::now();
        let deadline = start + Duration::from_millis(ms);
        futures::executor::block_on(In(HeapTimer.sleep_until(deadline), shard));
        let now = Instant::now();
        assert!(now >= deadline, "{ms} ms: woke {:?} early", deadline - now);
        assert!(now - start < GENEROUS);
    }
    // The shard is empty again and its timer disarmed.
    assert_eq!(shard.census().0, 0);
}

#[test]
fn a_passed_deadline_is_ready_at_once_and_registers_nothing() {
    let shard = private_shard();
    let waker = Waker::noop();
    let mut sleep = HeapTimer.sleep_until(Instant::now());
    assert_eq!(poll_once(&mut sleep, shard, waker), Poll::Ready(()));
    assert_eq!(shard.census(), (0, 0, None));
    // Ready for good.
    assert_eq!(poll_once(&mut sleep, shard, waker), Poll::Ready(()));
}

#[test]
fn only_an_earlier_deadline_moves_the_shards_timer() {
    let shard = private_shard();
    let waker = Waker::noop();
    let first = Instant::now() + HOUR;
    let mut a = HeapTimer.sleep_until(first);
    assert!(poll_once(&mut a, shard, waker).is_pending());
    assert_eq!(shard.census().2, Some(first));
    // Later deadlines leave the armed one alone.
    let mut later: Vec<_> = (1..=10)
        .map(|s| HeapTimer.sleep_until(first + Duration::from_secs(s)))
        .collect();
    for sleep in &mut later {
        assert!(poll_once(sleep, shard, waker).is_pending());
    }
    assert_eq!(shard.census(), (11, 11, Some(first)));
    // An earlier one moves it.
    let earlier = first - Duration::from_secs(60);
    let mut b = HeapTimer.sleep_until(earlier);
    assert!(poll_once(&mut b, shard, waker).is_pending());
    assert_eq!(shard.census().2, Some(earlier));
}

#[test]
fn dropped_sleeps_leave_nothing_registered() {
    let shard = private_shard();
    let waker = Waker::noop();
    let far = Instant::now() + HOUR;
    // Many at once, then all dropped.
    let mut many: Vec<_> = (0..10_000u32)
        .map(|i| HeapTimer.sleep_until(far + Duration::from_nanos(u64::from(i))))
        .collect();
    for sleep in &mut many {
        assert!(poll_once(sleep, shard, waker).is_pending());
    }
    assert_eq!(shard.census().0, 10_000);
    drop(many);
    // Swept by the drops themselves, with no registration after them.
    let (entries, _, _) = shard.census();
    assert!(entries <= 2 * shard::SWEEP_FLOOR, "{entries} entries left");
    // Then one at a time, as timeouts whose futures finish: the keys are reused, and the
    // cancelled entries are swept.
    for i in 0..100_000u64 {
        let mut sleep = HeapTimer.sleep_until(far + Duration::from_micros(i));
        assert!(poll_once(&mut sleep, shard, waker).is_pending());
    }
    let (entries, made, _) = shard.census();
    assert!(
        entries <= 2 * shard::SWEEP_FLOOR + 2,
        "{entries} entries left"
    );
    assert_eq!(made, 10_000, "keys are reused");
}

#[test]
fn a_dropped_sleep_releases_its_waker() {
    let shard = private_shard();
    let counter = Arc::new(Counter::default());
    let waker = Waker::from(counter.clone());
    let mut sleep = HeapTimer.sleep_until(Instant::now() + HOUR);
    assert!(poll_once(&mut sleep, shard, &waker).is_pending());
    assert_eq!(Arc::strong_count(&counter), 3, "the shard holds a clone");
    drop(sleep);
    assert_eq!(Arc::strong_count(&counter), 2);
    assert_eq!(counter.0.load(Ordering::SeqCst), 0, "not woken");
}

#[test]
fn the_waker_of_the_latest_poll_is_the_one_woken() {
    let shard = private_shard();
    let (first, second) = (Arc::new(Counter::default()), Arc::new(Counter::default()));
    let deadline = Instant::now() + Duration::from_millis(20);
    let mut sleep = HeapTimer.sleep_until(deadline);
    assert!(poll_once(&mut sleep, shard, &Waker::from(first.clone())).is_pending());
    // The task moved: polled with another waker.
    assert!(poll_once(&mut sleep, shard, &Waker::from(second.clone())).is_pending());
    wait_until(|| second.0.load(Ordering::SeqCst) > 0);
    assert!(Instant::now() >= deadline);
    assert_eq!(first.0.load(Ordering::SeqCst), 0);
    assert_eq!(poll_once(&mut sleep, shard, Waker::noop()), Poll::Ready(()));
    // Done: the key is back on the free list and the heap is empty.
    drop(sleep);
    assert_eq!(shard.census().0, 0);
}

#[test]
fn reset_moves_a_registered_sleep() {
    let shard = private_shard();
    let mut sleep = HeapTimer.sleep_until(Instant::now() + HOUR);
    assert!(poll_once(&mut sleep, shard, Waker::noop()).is_pending());
    let deadline = Instant::now() + Duration::from_millis(5);
    HeapTimer.reset(&mut sleep, deadline);
    assert_eq!(sleep.deadline(), deadline);
    futures::executor::block_on(In(sleep, shard));
    assert!(Instant::now() >= deadline);
    // The hour-long registration was given back (and swept when it reached the top, or is
    // left as one cancelled entry).
    assert!(shard.census().0 <= 1);
}

#[test]
fn many_threads_share_the_shards() {
    // Eight threads, each with sleeps of mixed lengths at once, and some dropped early, on the
    // global shards (threads share them when there are more threads than shards).
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            std::thread::spawn(move || {
                let start = Instant::now();
                let sleeps = (0..50u64).map(|i| {
                    let deadline = start + Duration::from_micros((i * 97 + t * 31) % 5_000);
                    async move {
                        HeapTimer.sleep_until(deadline).await;
                        assert!(Instant::now() >= deadline);
                    }
                });
                let dropped = (0..50u64).map(|i| {
                    let sleep = HeapTimer.sleep(Duration::from_secs(60 + i));
                    tailguard_timeout(sleep, Duration::from_micros(i * 50))
                });
                futures::executor::block_on(async {
                    futures::future::join_all(sleeps).await;
                    futures::future::join_all(dropped).await;
                });
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("no thread panicked");
    }
}

/// A sleep cut short by another: the long one is dropped before it fires.
async fn tailguard_timeout(sleep: HeapSleep, limit: Duration) {
    let out = crate::timeout::timeout_with(HeapTimer, limit, sleep).await;
    assert!(out.is_err());
}

#[test]
fn drops_racing_the_firing_lose_no_key() {
    // Four threads register sleeps due within a millisecond or two and drop half of them around
    // their deadline, so that drops race the shard's firing; the others are awaited. Once every
    // deadline has passed, every key is back on the free list, idle, with no waker held.
    let shard = private_shard();
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            std::thread::spawn(move || {
                let mut rng = fastrand::Rng::with_seed(t);
                for round in 0..50 {
                    let start = Instant::now();
                    let mut sleeps: Vec<_> = (0..20)
                        .map(|_| {
                            let due = start + Duration::from_micros(rng.u64(0..1_500));
                            In(HeapTimer.sleep_until(due), shard)
                        })
                        .collect();
                    for sleep in &mut sleeps {
                        let _ = poll_once(&mut sleep.0, shard, Waker::noop());
                    }
                    std::thread::sleep(Duration::from_micros(rng.u64(0..1_500)));
                    let (kept, _dropped): (Vec<_>, Vec<_>) = sleeps
                        .into_iter()
                        .enumerate()
                        .partition(|(i, _)| (i + round) % 2 == 0);
                    for (_, sleep) in kept {
                        let due = sleep.0.deadline();
                        futures::executor::block_on(sleep);
                        assert!(Instant::now() >= due);
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("no thread panicked");
    }
    wait_until(|| shard.census().0 == 0);
    assert!(shard.all_keys_free());
    assert_eq!(shard.census().2, None, "nothing armed");
}
