use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::time::{ManualTimer, Timer};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn the_queue_is_fifo_and_reports_the_wait() {
    let mut q = TiedQueue::<u32, u8>::new(4).unwrap();
    let t0 = Instant::now();
    q.push_at(t0, 1, None).unwrap();
    q.push_at(t0 + ms(1), 2, Some(Tag::id(20))).unwrap();
    q.push_at(t0 + ms(2), 3, None).unwrap();
    let s = q.start_next_at(t0 + ms(5)).unwrap();
    assert_eq!(
        (s.item, s.id, s.cancel_twin, s.waited),
        (1, None, None, ms(5))
    );
    let s = q.start_next_at(t0 + ms(5)).unwrap();
    assert_eq!((s.item, s.id, s.waited), (2, Some(20), ms(4)));
    assert_eq!(q.start_next_at(t0 + ms(5)).unwrap().item, 3);
    assert!(q.start_next_at(t0 + ms(5)).is_none());
}

#[test]
fn a_full_queue_refuses_and_hands_the_request_back() {
    let mut q = TiedQueue::<&str, u8>::new(2).unwrap();
    let now = Instant::now();
    q.push_at(now, "a", None).unwrap();
    q.push_at(now, "b", None).unwrap();
    let refused = q.push_at(now, "c", Some(Tag::id(3))).unwrap_err();
    assert_eq!(refused.reason, Refusal::Full { capacity: 2 });
    assert_eq!(refused.item, "c");
    assert!(!q.contains(3));
    assert_eq!(q.stats().refused_full, 1);
    // Room again once one starts.
    q.start_next_at(now).unwrap();
    q.push_at(now, "c", Some(Tag::id(3))).unwrap();
    assert!(q.contains(3));
}

#[test]
fn a_cancel_removes_from_the_middle_and_keeps_the_order() {
    let mut q = TiedQueue::<u32, u8>::new(8).unwrap();
    let now = Instant::now();
    for id in 1..=5 {
        q.push_at(now, id as u32, Some(Tag::id(id))).unwrap();
    }
    assert_eq!(q.cancel(3), Cancelled::InQueue(3));
    assert_eq!(q.cancel(1), Cancelled::InQueue(1));
    assert_eq!(q.cancel(5), Cancelled::InQueue(5));
    assert_eq!(q.len(), 2);
    let order: Vec<u32> = std::iter::from_fn(|| q.start_next_at(now).map(|s| s.item)).collect();
    assert_eq!(order, [2, 4]);
    let stats = q.stats();
    assert_eq!(
        (stats.queued, stats.started, stats.cancelled_in_queue),
        (5, 2, 3)
    );
}

#[test]
fn a_started_request_cancels_its_twin_once_and_is_too_late_to_cancel() {
    let mut q = TiedQueue::<(), &str>::new(2).unwrap();
    let now = Instant::now();
    let twin = Twin {
        replica: "b",
        id: 8,
    };
    q.push_at(now, (), Some(Tag::tied(7, twin))).unwrap();
    assert_eq!(q.start_next_at(now).unwrap().cancel_twin, Some(twin));
    assert_eq!(q.cancel(7), Cancelled::TooLate);
    assert_eq!(q.cancel(7), Cancelled::TooLate);
    assert_eq!(q.stats().cancels_too_late, 2);
    // The same id again is a duplicate, not a second twin cancel.
    let again = q.push_at(now, (), Some(Tag::tied(7, twin))).unwrap_err();
    assert_eq!(again.reason, Refusal::DuplicateId(7));
}

#[test]
fn a_cancel_that_overtakes_its_request_refuses_it_on_arrival() {
    let mut q = TiedQueue::<&str, u8>::new(2).unwrap();
    let now = Instant::now();
    assert_eq!(q.cancel(42), Cancelled::NotHere);
    let refused = q.push_at(now, "late copy", Some(Tag::id(42))).unwrap_err();
    assert_eq!(refused.reason, Refusal::Cancelled(42));
    assert_eq!(refused.item, "late copy");
    assert!(q.is_empty());
    let stats = q.stats();
    assert_eq!((stats.cancels_early, stats.refused_cancelled), (1, 1));
}

#[test]
fn memory_is_bounded_and_forgets_the_oldest() {
    let mut q = TiedQueue::<(), u8>::remembering(1, 3).unwrap();
    let now = Instant::now();
    for id in 0..10 {
        assert_eq!(q.cancel(id), Cancelled::NotHere);
    }
    // Ids 7, 8 and 9 are remembered; 0 is forgotten and may arrive.
    assert_eq!(
        q.push_at(now, (), Some(Tag::id(9))).unwrap_err().reason,
        Refusal::Cancelled(9)
    );
    q.push_at(now, (), Some(Tag::id(0))).unwrap();
    assert!(q.recent.len() <= 3 && q.order.len() <= 3);
}

#[test]
fn remove_by_ticket_takes_only_its_own_request() {
    let mut q = TiedQueue::<&str, u8>::new(1).unwrap();
    let now = Instant::now();
    let old = q.push_at(now, "old", Some(Tag::id(1))).unwrap();
    assert_eq!(q.remove(old), Some("old"));
    assert!(!q.contains(1));
    assert_eq!(q.remove(old), None);
    // The slot is reused: the old ticket cannot take the new request.
    let new = q.push_at(now, "new", None).unwrap();
    assert_eq!(q.remove(old), None);
    assert_eq!(q.remove(new), Some("new"));
    // A removed request is not remembered: its id may come again.
    q.push_at(now, "again", Some(Tag::id(1))).unwrap();
}

#[test]
fn queues_are_validated_by_field() {
    assert_eq!(TiedQueue::<(), u8>::new(0).unwrap_err().field(), "capacity");
    assert_eq!(
        TiedQueue::<(), u8>::new(MAX_QUEUE + 1).unwrap_err().field(),
        "capacity"
    );
    assert_eq!(
        TiedQueue::<(), u8>::remembering(8, 4).unwrap_err().field(),
        "remember"
    );
}

/// What [`race`] saw: the outcome, the time taken, the statistics, the copies sent.
type Raced = (
    Result<Won<usize, usize>, TiedError<usize>>,
    Duration,
    TiedStats,
    usize,
);

/// Two replicas, each answering its copy after `took[replica]`.
fn race(delay: u64, took: [u64; 2]) -> Raced {
    let timer = ManualTimer::new();
    let tied = Tied::seeded(ms(delay), 100).unwrap();
    let call = tied.call(0usize, 1usize);
    let sent = Arc::new(AtomicUsize::new(0));
    let (t, s) = (timer.clone(), sent.clone());
    let run = tied.run_with(timer.clone(), call, move |copy| {
        s.fetch_add(1, Ordering::Relaxed);
        let sleep = t.sleep(ms(took[copy.replica]));
        async move {
            sleep.await;
            Ok::<_, usize>(copy.replica)
        }
    });
    let result = timer.block_on(run);
    (
        result,
        timer.elapsed(),
        tied.stats(),
        sent.load(Ordering::Relaxed),
    )
}

#[test]
fn the_first_answer_wins_and_the_loser_is_named_for_cancelling() {
    let (won, took, stats, sent) = race(1, [50, 3]);
    let won = won.unwrap();
    assert_eq!((won.value, won.leg), (1, Leg::Second));
    assert_eq!(
        won.cancel,
        [
            Some(Twin {
                replica: 0,
                id: 100
            }),
            None
        ]
    );
    assert_eq!(took, ms(4));
    assert_eq!(
        (stats.calls, stats.seconds_sent, stats.won_by_second),
        (1, 1, 1)
    );
    assert_eq!(sent, 2);
}

#[test]
fn an_answer_within_the_delay_sends_no_second_copy() {
    let (won, took, stats, sent) = race(5, [2, 1]);
    let won = won.unwrap();
    assert_eq!((won.leg, won.cancel), (Leg::First, [None, None]));
    assert_eq!(took, ms(2));
    assert_eq!((stats.seconds_sent, sent), (0, 1));
}

#[test]
fn a_zero_delay_sends_both_at_once() {
    let (won, took, stats, _) = race(0, [7, 5]);
    assert_eq!(won.unwrap().leg, Leg::Second);
    assert_eq!(took, ms(5));
    assert_eq!(stats.seconds_sent, 1);
}

#[test]
fn a_failed_first_copy_sends_the_second_at_once_and_both_failing_fail() {
    let timer = ManualTimer::new();
    let tied = Tied::seeded(ms(10), 0).unwrap();
    let t = timer.clone();
    let run = tied.run_with(timer.clone(), tied.call(0u8, 1u8), move |copy| {
        let sleep = t.sleep(ms(2));
        async move {
            sleep.await;
            if copy.replica == 0 {
                Err("first broke")
            } else {
                Ok(copy.id)
            }
        }
    });
    let won = timer.block_on(run).unwrap();
    // Sent at 2 ms (when the first failed, not at 10 ms), answered at 4 ms; nothing to cancel.
    assert_eq!(
        (won.leg, won.value, won.cancel),
        (Leg::Second, 1, [None, None])
    );
    assert_eq!(timer.elapsed(), ms(4));

    let t = timer.clone();
    let run = tied.run_with(timer.clone(), tied.call(0u8, 1u8), move |copy| {
        let sleep = t.sleep(ms(1));
        async move {
            sleep.await;
            Err::<(), _>(copy.replica)
        }
    });
    assert_eq!(
        timer.block_on(run).unwrap_err(),
        TiedError {
            first: 0,
            second: 1,
            backup: None
        }
    );
    assert_eq!(tied.stats().failed, 1);
}

/// Counts live copies: a dropped copy releases its slot.
struct Live(Arc<AtomicUsize>);

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[test]
fn dropping_the_call_or_losing_releases_every_copy() {
    let timer = ManualTimer::new();
    let tied = Tied::seeded(ms(1), 0).unwrap();
    let live = Arc::new(AtomicUsize::new(0));
    let copies = |took: [u64; 2]| {
        let (t, live) = (timer.clone(), live.clone());
        move |copy: Outgoing<usize>| {
            live.fetch_add(1, Ordering::Relaxed);
            let guard = Live(live.clone());
            let sleep = t.sleep(ms(took[copy.replica]));
            async move {
                let _guard = guard;
                sleep.await;
                Ok::<_, ()>(())
            }
        }
    };
    // The loser is dropped when the winner answers.
    timer
        .block_on(tied.run_with(timer.clone(), tied.call(0, 1), copies([100, 2])))
        .unwrap();
    assert_eq!(live.load(Ordering::Relaxed), 0);
    // Dropping the whole call mid-way drops both.
    let run = tied.run_with(timer.clone(), tied.call(0, 1), copies([100, 100]));
    let cut = crate::timeout::timeout_with(timer.clone(), ms(10), run);
    assert!(timer.block_on(cut).is_err());
    assert_eq!(live.load(Ordering::Relaxed), 0);
    assert_eq!(timer.pending_sleeps(), 0);
}

#[test]
fn a_tied_call_records_late_answers_as_duplicates() {
    let mut call = TiedCall::new(['a', 'b'], [1, 2]);
    assert_eq!(
        call.send(Leg::First).unwrap().tied_to,
        Some(Twin {
            replica: 'b',
            id: 2
        })
    );
    assert!(call.send(Leg::First).is_none());
    assert_eq!(
        call.answered(Leg::First),
        Settled::Won {
            cancel: [None, None]
        }
    );
    // Sent after the call is over: nothing.
    assert!(call.send(Leg::Second).is_none());
    let mut call = TiedCall::new(['a', 'b'], [1, 2]);
    call.send(Leg::First);
    call.send(Leg::Second);
    assert!(!call.failed(Leg::First));
    assert_eq!(
        call.answered(Leg::Second),
        Settled::Won {
            cancel: [None, None]
        }
    );
    assert_eq!(call.winner(), Some(Leg::Second));
}
