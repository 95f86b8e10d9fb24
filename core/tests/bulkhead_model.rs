//! Model-based test of the bulkhead: random sequences of try-acquire, waits with deadlines,
//! polls, drops of waiters and permits, and advances of virtual time, run against the real
//! bulkhead and a reference model written from the module documentation. After every step
//! they must agree on each outcome, the slots in use and the queue.
//!
//! The second test hammers one bulkhead from several threads and checks that the cap holds and
//! that no slot is lost or made up.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use proptest::prelude::*;
use tailguard::bulkhead::{Acquire, Bulkhead, Permit, QueueOrder, Reason};
use tailguard::time::{ManualTimer, Timer};

const MS: Duration = Duration::from_millis(1);

#[derive(Clone, Debug)]
enum Op {
    TryAcquire,
    /// Start a waiter with a deadline this far ahead and poll it once.
    Wait {
        deadline_ms: u64,
    },
    /// Poll the i-th live waiter (modulo).
    Poll(usize),
    /// Drop the i-th live waiter (modulo).
    DropWaiter(usize),
    /// Drop the i-th held permit (modulo).
    Release(usize),
    Advance {
        ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::TryAcquire),
        4 => (0u64..50).prop_map(|deadline_ms| Op::Wait { deadline_ms }),
        4 => any::<usize>().prop_map(Op::Poll),
        2 => any::<usize>().prop_map(Op::DropWaiter),
        4 => any::<usize>().prop_map(Op::Release),
        2 => (1u64..30).prop_map(|ms| Op::Advance { ms }),
    ]
}

/// The model's view of one waiter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Waiting {
    Queued,
    Granted,
}

struct Model {
    max: u32,
    max_queue: u32,
    order: QueueOrder,
    now_ms: u64,
    /// Held permits plus slots granted to waiters not yet collected.
    in_use: u32,
    /// Waiter ids, oldest first.
    queue: VecDeque<u64>,
}

impl Model {
    /// A slot is given back: to the next waiter, or to the free count. Returns the waiter.
    fn release(&mut self) -> Option<u64> {
        let next = match self.order {
            QueueOrder::Fifo => self.queue.pop_front(),
            QueueOrder::Lifo => self.queue.pop_back(),
        };
        if next.is_none() {
            self.in_use -= 1;
        }
        next
    }
}

struct Live<'a> {
    id: u64,
    deadline_ms: u64,
    state: Waiting,
    fut: Acquire<'a, ManualTimer>,
}

fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    Pin::new(f).poll(&mut Context::from_waker(Waker::noop()))
}

fn run(max: u32, max_queue: u32, order: QueueOrder, ops: Vec<Op>) {
    let timer = ManualTimer::new();
    let start = timer.now();
    let bulkhead = Bulkhead::builder()
        .max_concurrent(max)
        .max_queue(max_queue)
        .queue_order(order)
        .build_with(timer.clone())
        .unwrap();
    let mut model = Model {
        max,
        max_queue,
        order,
        now_ms: 0,
        in_use: 0,
        queue: VecDeque::new(),
    };
    let mut permits: Vec<Permit<'_>> = Vec::new();
    let mut waiters: Vec<Live<'_>> = Vec::new();
    let mut next_id = 0;
    // Marks the waiter the model granted a slot to.
    let grant = |waiters: &mut Vec<Live<'_>>, id: Option<u64>| {
        if let Some(id) = id {
            let w = waiters
                .iter_mut()
                .find(|w| w.id == id)
                .expect("granted a live waiter");
            w.state = Waiting::Granted;
        }
    };
    for op in ops {
        match op {
            Op::TryAcquire => {
                let expect_ok = model.in_use < model.max;
                match bulkhead.try_acquire() {
                    Ok(p) => {
                        assert!(expect_ok, "admitted with every slot taken");
                        model.in_use += 1;
                        permits.push(p);
                    }
                    Err(e) => {
                        assert!(!expect_ok, "refused with a slot free");
                        assert_eq!(e.reason(), Reason::Full);
                    }
                }
            }
            Op::Wait { deadline_ms } => {
                let deadline = model.now_ms + deadline_ms;
                let mut fut = bulkhead.acquire_until(start + MS * deadline as u32);
                let expected: Result<bool, Reason> = if model.in_use < model.max {
                    Ok(true)
                } else if model.max_queue == 0 {
                    Err(Reason::Full)
                } else if model.now_ms >= deadline {
                    Err(Reason::Deadline)
                } else if model.queue.len() as u32 >= model.max_queue {
                    Err(Reason::Full)
                } else {
                    Ok(false)
                };
                match (poll_once(&mut fut), expected) {
                    (Poll::Ready(Ok(p)), Ok(true)) => {
                        model.in_use += 1;
                        permits.push(p);
                    }
                    (Poll::Ready(Err(e)), Err(reason)) => assert_eq!(e.reason(), reason),
                    (Poll::Pending, Ok(false)) => {
                        model.queue.push_back(next_id);
                        waiters.push(Live {
                            id: next_id,
                            deadline_ms: deadline,
                            state: Waiting::Queued,
                            fut,
                        });
                        next_id += 1;
                    }
                    (got, want) => panic!("wait: got {got:?}, model says {want:?}"),
                }
            }
            Op::Poll(i) if !waiters.is_empty() => {
                let i = i % waiters.len();
                let w = &mut waiters[i];
                let got = poll_once(&mut w.fut);
                match (w.state, got) {
                    (Waiting::Granted, Poll::Ready(Ok(p))) => {
                        permits.push(p);
                        waiters.remove(i);
                    }
                    (Waiting::Queued, Poll::Ready(Err(e))) if model.now_ms >= w.deadline_ms => {
                        assert_eq!(e.reason(), Reason::Deadline);
                        model.queue.retain(|&id| id != w.id);
                        waiters.remove(i);
                    }
                    (Waiting::Queued, Poll::Pending) if model.now_ms < w.deadline_ms => {}
                    (state, got) => panic!("poll of a {state:?} waiter gave {got:?}"),
                }
            }
            Op::DropWaiter(i) if !waiters.is_empty() => {
                let w = waiters.remove(i % waiters.len());
                let (id, state) = (w.id, w.state);
                drop(w);
                match state {
                    Waiting::Queued => model.queue.retain(|&q| q != id),
                    // The slot handed to it goes on.
                    Waiting::Granted => {
                        let next = model.release();
                        grant(&mut waiters, next);
                    }
                }
            }
            Op::Release(i) if !permits.is_empty() => {
                drop(permits.remove(i % permits.len()));
                let next = model.release();
                grant(&mut waiters, next);
            }
            Op::Advance { ms } => {
                timer.advance(MS * ms as u32);
                model.now_ms += ms;
            }
            _ => {}
        }
        let metrics = bulkhead.metrics();
        assert_eq!(metrics.in_flight, model.in_use, "slots in use");
        assert_eq!(metrics.queued, model.queue.len() as u32, "queue");
        assert!(metrics.in_flight <= max);
    }
    drop(waiters);
    drop(permits);
    let metrics = bulkhead.metrics();
    assert_eq!(
        (metrics.in_flight, metrics.queued),
        (0, 0),
        "every slot given back"
    );
}

fn order() -> impl Strategy<Value = QueueOrder> {
    prop_oneof![Just(QueueOrder::Fifo), Just(QueueOrder::Lifo)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn the_bulkhead_follows_the_model(
        max in 1u32..4,
        max_queue in 0u32..4,
        order in order(),
        ops in prop::collection::vec(op(), 1..120),
    ) {
        run(max, max_queue, order, ops);
    }
}

#[test]
fn threads_never_exceed_the_cap_nor_lose_a_slot() {
    const MAX: u32 = 3;
    let timer = ManualTimer::new();
    let bulkhead = Bulkhead::builder()
        .max_concurrent(MAX)
        .max_queue(8)
        .build_with(timer.clone())
        .unwrap();
    let inside = AtomicU32::new(0);
    let admitted = AtomicU32::new(0);
    std::thread::scope(|s| {
        for t in 0..4 {
            let (bulkhead, inside, admitted) = (&bulkhead, &inside, &admitted);
            s.spawn(move || {
                let far = bulkhead.timer().now() + Duration::from_secs(3600);
                for i in 0..2_000 {
                    // Half the callers wait (a spinning executor of their own), half do not.
                    let permit = if (i + t) % 2 == 0 {
                        bulkhead.try_acquire().ok()
                    } else {
                        let mut fut = bulkhead.acquire_until(far);
                        loop {
                            match poll_once(&mut fut) {
                                Poll::Ready(out) => break out.ok(),
                                Poll::Pending => std::thread::yield_now(),
                            }
                        }
                    };
                    if let Some(permit) = permit {
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        assert!(now <= MAX, "{now} inside");
                        admitted.fetch_add(1, Ordering::SeqCst);
                        inside.fetch_sub(1, Ordering::SeqCst);
                        drop(permit);
                    }
                }
            });
        }
    });
    let metrics = bulkhead.metrics();
    assert_eq!((metrics.in_flight, metrics.queued), (0, 0));
    assert!(admitted.load(Ordering::SeqCst) > 0);
    // Every slot is still there.
    let held: Vec<_> = (0..MAX).map(|_| bulkhead.try_acquire().unwrap()).collect();
    assert!(bulkhead.try_acquire().is_err());
    drop(held);
}
