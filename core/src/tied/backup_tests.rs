//! The backup of a tied call, in virtual time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::hedge::HedgeBudget;
use crate::time::{ManualTimer, Timer};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const CANCELLED: &str = "cancelled by its twin";

/// Counts live copies: a dropped copy releases its slot.
struct Live(Arc<AtomicUsize>);

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Runs a backed call whose copy on each replica takes `plan(replica).0` ms and then answers
/// `plan(replica).1`; every copy counts itself in `live` until it is dropped.
fn scripted(
    tied: &Tied,
    timer: &ManualTimer,
    live: &Arc<AtomicUsize>,
    plan: impl Fn(usize) -> (u64, Result<usize, &'static str>) + Clone,
) -> impl std::future::Future<Output = Result<Won<usize, usize>, TiedError<&'static str>>> {
    let (t, live) = (timer.clone(), live.clone());
    let call = tied.call_backed(0usize, 1, 2);
    let tied = tied.clone();
    let timer = timer.clone();
    async move {
        tied.run_backed_with(
            timer,
            call,
            |e: &&str| *e == CANCELLED,
            move |copy| {
                live.fetch_add(1, Ordering::Relaxed);
                let guard = Live(live.clone());
                let (took, answer) = plan(copy.replica);
                let sleep = t.sleep(ms(took));
                async move {
                    let _guard = guard;
                    sleep.await;
                    answer
                }
            },
        )
        .await
    }
}

/// Replica 0 starts its copy at once and takes `took[0]`; its twin on replica 1 is cancelled
/// (answers `CANCELLED` as soon as it is sent); the backup on replica 2 takes `took[1]`.
fn stalled(
    tied: &Tied,
    timer: &ManualTimer,
    took: [u64; 2],
    live: &Arc<AtomicUsize>,
) -> impl std::future::Future<Output = Result<Won<usize, usize>, TiedError<&'static str>>> {
    scripted(tied, timer, live, move |replica| match replica {
        0 => (took[0], Ok(0)),
        1 => (0, Err(CANCELLED)),
        _ => (took[1], Ok(2)),
    })
}

fn backed(after: u64, budget: Option<HedgeBudget>) -> Tied {
    let backup = match budget {
        Some(budget) => Backup::new(ms(after), budget).unwrap(),
        None => Backup::unbudgeted(ms(after)).unwrap(),
    };
    Tied::seeded(ms(1), 30).unwrap().with_backup(backup)
}

#[test]
fn a_started_copy_that_stalls_is_backed_up_on_a_third_replica() {
    let timer = ManualTimer::new();
    let tied = backed(10, None);
    let live = Arc::new(AtomicUsize::new(0));
    let won = timer
        .block_on(stalled(&tied, &timer, [500, 2], &live))
        .unwrap();
    // The twin said at 1 ms that copy 0 started; the backup went at 11 ms, answered at 13.
    assert_eq!((won.value, won.leg), (2, Leg::Backup));
    assert_eq!(timer.elapsed(), ms(13));
    assert_eq!(won.cancel, [Some(Twin { replica: 0, id: 30 }), None]);
    let backup = tied.backup().unwrap().stats();
    assert_eq!((backup.sent, backup.won, backup.refused), (1, 1, 0));
    // The stalled copy was dropped with the call.
    assert_eq!(live.load(Ordering::Relaxed), 0);
    assert_eq!(timer.pending_sleeps(), 0);
}

#[test]
fn a_started_copy_that_answers_in_time_sends_no_backup() {
    let timer = ManualTimer::new();
    let tied = backed(10, None);
    let live = Arc::new(AtomicUsize::new(0));
    let won = timer
        .block_on(stalled(&tied, &timer, [10, 2], &live))
        .unwrap();
    assert_eq!(
        (won.value, won.leg, won.cancel),
        (0, Leg::First, [None, None])
    );
    assert_eq!(timer.elapsed(), ms(10));
    assert_eq!(tied.backup().unwrap().stats(), BackupStats::default());
    assert_eq!(timer.pending_sleeps(), 0, "the backup's timer was dropped");
}

#[test]
fn the_budget_refuses_backups_beyond_it() {
    let timer = ManualTimer::new();
    // No deposits count (ratio 0) and a reserve of one backup a second.
    let budget = HedgeBudget::builder()
        .ratio(0.0)
        .min_per_second(1)
        .build()
        .unwrap();
    let tied = backed(10, Some(budget));
    let live = Arc::new(AtomicUsize::new(0));
    let first = timer.block_on(stalled(&tied, &timer, [500, 2], &live));
    assert_eq!(first.unwrap().leg, Leg::Backup);
    let second = timer.block_on(stalled(&tied, &timer, [500, 2], &live));
    // Refused: the stalled copy answers, at last.
    assert_eq!(second.unwrap().leg, Leg::First);
    let backup = tied.backup().unwrap().stats();
    assert_eq!((backup.sent, backup.won, backup.refused), (1, 1, 1));
}

#[test]
fn an_error_that_is_no_cancellation_sends_no_backup() {
    let timer = ManualTimer::new();
    let tied = backed(1, None);
    let t = timer.clone();
    let run = tied.run_backed_with(
        timer.clone(),
        tied.call_backed(0u8, 1, 2),
        |_: &u8| false,
        move |copy| {
            let sleep = t.sleep(ms(3));
            async move {
                sleep.await;
                Err::<(), _>(copy.replica)
            }
        },
    );
    assert_eq!(
        timer.block_on(run).unwrap_err(),
        TiedError {
            first: 0,
            second: 1,
            backup: None
        }
    );
    assert_eq!(tied.backup().unwrap().stats().sent, 0);
}

#[test]
fn dropping_a_backed_call_releases_every_copy() {
    let timer = ManualTimer::new();
    let tied = backed(10, None);
    let live = Arc::new(AtomicUsize::new(0));
    // Both the stalled copy and its backup take 500 ms; the call is dropped at 100 ms.
    let run = stalled(&tied, &timer, [500, 500], &live);
    let cut = crate::timeout::timeout_with(timer.clone(), ms(100), run);
    assert!(timer.block_on(cut).is_err());
    assert_eq!(tied.backup().unwrap().stats().sent, 1);
    assert_eq!(live.load(Ordering::Relaxed), 0);
    assert_eq!(timer.pending_sleeps(), 0);
}

#[test]
fn a_call_knows_which_copy_runs_and_sends_the_backup_only_for_it() {
    let mut call = TiedCall::new(['a', 'b'], [1, 2]).with_backup('c', 3);
    call.send(Leg::First).unwrap();
    assert!(call.send(Leg::Backup).is_none(), "nothing known to run");
    call.send(Leg::Second).unwrap();
    assert_eq!(call.cancelled_by_twin(Leg::First), Some(Leg::Second));
    assert_eq!(call.running(), Some(Leg::Second));
    let backup = call.send(Leg::Backup).unwrap();
    assert_eq!((backup.replica, backup.id, backup.tied_to), ('c', 3, None));
    assert!(call.send(Leg::Backup).is_none(), "one backup");
    // The running copy fails: the backup is still in flight, so the call goes on.
    assert!(!call.failed(Leg::Second));
    assert_eq!(call.running(), None);
    assert!(call.failed(Leg::Backup), "every copy has now failed");

    // Without a backup copy, none is sent.
    let mut call = TiedCall::new(['a', 'b'], [1, 2]);
    call.send(Leg::First).unwrap();
    call.send(Leg::Second).unwrap();
    call.cancelled_by_twin(Leg::Second);
    assert!(call.send(Leg::Backup).is_none());
    // A twin cancelled after the call was answered names nothing running.
    let mut call = TiedCall::new(['a', 'b'], [1, 2]).with_backup('c', 3);
    call.send(Leg::First).unwrap();
    call.send(Leg::Second).unwrap();
    assert_eq!(
        call.answered(Leg::First),
        Settled::Won {
            cancel: [
                Some(Twin {
                    replica: 'b',
                    id: 2
                }),
                None
            ]
        }
    );
    assert_eq!(call.cancelled_by_twin(Leg::Second), None);
    assert!(call.send(Leg::Backup).is_none());
}

#[test]
fn backups_are_validated_by_field() {
    let err = Backup::unbudgeted(Duration::MAX).unwrap_err();
    assert_eq!(err.field(), "after");
    // The longest accepted delay is due far off, never at once.
    let longest = Backup::unbudgeted(Duration::from_nanos(u64::MAX)).unwrap();
    let now = std::time::Instant::now();
    assert!(longest.due_at(now) > now + Duration::from_secs(86_400 * 365));
}

/// Replicas 0 and 1 are both stalled: neither starts its copy (no 409, no answer) for
/// `stall` ms; the backup on replica 2 answers in 2 ms.
fn both_stalled(
    tied: &Tied,
    timer: &ManualTimer,
    stall: u64,
    live: &Arc<AtomicUsize>,
) -> impl std::future::Future<Output = Result<Won<usize, usize>, TiedError<&'static str>>> {
    scripted(tied, timer, live, move |replica| {
        let took = if replica == 2 { 2 } else { stall };
        (took, Ok(replica))
    })
}

#[test]
fn a_call_whose_two_replicas_are_both_stalled_waits_out_the_stall_without_unstarted() {
    // The hole `with_unstarted` fills: no copy starts, so none is known to run, and the
    // started copy's backup is never sent.
    let timer = ManualTimer::new();
    let tied = backed(10, None);
    let live = Arc::new(AtomicUsize::new(0));
    let won = timer
        .block_on(both_stalled(&tied, &timer, 40, &live))
        .unwrap();
    assert_eq!(won.leg, Leg::First);
    assert_eq!(timer.elapsed(), ms(40));
    assert_eq!(tied.backup().unwrap().stats().sent, 0);
}

#[test]
fn a_call_none_of_whose_copies_starts_is_backed_up_on_a_third_replica() {
    let timer = ManualTimer::new();
    let backup = Backup::unbudgeted(ms(10))
        .unwrap()
        .with_unstarted(ms(8))
        .unwrap();
    let tied = Tied::seeded(ms(1), 30).unwrap().with_backup(backup);
    let live = Arc::new(AtomicUsize::new(0));
    let won = timer
        .block_on(both_stalled(&tied, &timer, 40, &live))
        .unwrap();
    // The second copy went at 1 ms, the backup 8 ms later, answered 2 ms after that.
    assert_eq!((won.value, won.leg), (2, Leg::Backup));
    assert_eq!(timer.elapsed(), ms(11));
    // Both tied copies still wait in their replicas' queues: both are to be cancelled.
    assert_eq!(
        won.cancel,
        [
            Some(Twin { replica: 0, id: 30 }),
            Some(Twin { replica: 1, id: 31 })
        ]
    );
    let stats = tied.backup().unwrap().stats();
    assert_eq!((stats.sent, stats.won, stats.refused), (1, 1, 0));
    assert_eq!((stats.sent_unstarted, stats.won_unstarted), (1, 1));
    assert_eq!(live.load(Ordering::Relaxed), 0, "every copy was dropped");
    assert_eq!(timer.pending_sleeps(), 0);
}

#[test]
fn the_unstarted_backup_defers_to_a_copy_known_to_run_and_to_the_budget() {
    // A copy started (its twin said so at 1 ms): the unstarted timer sends nothing, and the
    // started copy's own backup goes at 1 + 10 ms, once.
    let timer = ManualTimer::new();
    let backup = Backup::unbudgeted(ms(10))
        .unwrap()
        .with_unstarted(ms(5))
        .unwrap();
    let tied = Tied::seeded(ms(1), 30).unwrap().with_backup(backup);
    let live = Arc::new(AtomicUsize::new(0));
    let won = timer
        .block_on(stalled(&tied, &timer, [500, 2], &live))
        .unwrap();
    assert_eq!(won.leg, Leg::Backup);
    assert_eq!(timer.elapsed(), ms(13));
    let stats = tied.backup().unwrap().stats();
    assert_eq!(
        (stats.sent, stats.sent_unstarted, stats.won_unstarted),
        (1, 0, 0)
    );

    // A budget with no backup to spare: refused, and the call waits out the stall.
    let budget = HedgeBudget::builder()
        .ratio(0.0)
        .min_per_second(0)
        .build()
        .unwrap();
    let backup = Backup::new(ms(10), budget)
        .unwrap()
        .with_unstarted(ms(8))
        .unwrap();
    let tied = Tied::seeded(ms(1), 30).unwrap().with_backup(backup);
    let timer = ManualTimer::new();
    let won = timer
        .block_on(both_stalled(&tied, &timer, 40, &live))
        .unwrap();
    assert_eq!((won.leg, timer.elapsed()), (Leg::First, ms(40)));
    let stats = tied.backup().unwrap().stats();
    assert_eq!((stats.sent, stats.refused), (0, 1));
    assert_eq!(live.load(Ordering::Relaxed), 0);
}

#[test]
fn the_unstarted_delay_is_validated_by_field() {
    let backup = Backup::unbudgeted(ms(10)).unwrap();
    let err = backup.with_unstarted(Duration::MAX).unwrap_err();
    assert_eq!(err.field(), "after_sent");
}

#[test]
fn a_learnt_delay_backs_up_a_stalled_copy_once_it_overruns_what_started_copies_take() {
    let timer = ManualTimer::new();
    let backup = Backup::unbudgeted(ms(10))
        .unwrap()
        .with_learnt_after(0.99)
        .unwrap();
    let tied = Tied::seeded(ms(1), 30).unwrap().with_backup(backup);
    let live = Arc::new(AtomicUsize::new(0));
    // 200 calls whose started copy answers 3 ms after it was sent, 2 ms after its twin's
    // 409 said that it started: no backup, and 200 run times of 2 ms learnt.
    for _ in 0..200 {
        let won = timer
            .block_on(stalled(&tied, &timer, [3, 2], &live))
            .unwrap();
        assert_eq!(won.leg, Leg::First);
    }
    assert_eq!(tied.backup().unwrap().stats().sent, 0);
    let learnt = tied.backup().unwrap().after_at(timer.now());
    assert!(
        learnt > ms(1) && learnt < Duration::from_micros(2100),
        "{learnt:?}"
    );
    // A copy that starts and stalls is backed up ~2 ms after its start was learnt (at 1 ms),
    // not 10 ms: the backup answers 2 ms later.
    let start = timer.elapsed();
    let won = timer
        .block_on(stalled(&tied, &timer, [500, 2], &live))
        .unwrap();
    assert_eq!(won.leg, Leg::Backup);
    let took = timer.elapsed() - start;
    assert!(
        took > ms(4) && took < Duration::from_micros(5100),
        "{took:?}"
    );
    assert_eq!(live.load(Ordering::Relaxed), 0);
    assert_eq!(timer.pending_sleeps(), 0);
}

#[test]
fn a_learnt_delay_never_exceeds_after_and_is_after_until_learnt() {
    let now = std::time::Instant::now();
    let backup = Backup::unbudgeted(ms(10))
        .unwrap()
        .with_learnt_after(0.99)
        .unwrap();
    for _ in 0..99 {
        backup.record_run_at(now, ms(1));
    }
    assert_eq!(backup.after_at(now), ms(10), "99 samples are too few");
    for _ in 0..1000 {
        backup.record_run_at(now, ms(50));
    }
    assert_eq!(backup.after_at(now), ms(10), "capped at `after`");
    let err = Backup::unbudgeted(ms(10))
        .unwrap()
        .with_learnt_after(1.0)
        .unwrap_err();
    assert_eq!(err.field(), "percentile");
    assert!(Backup::unbudgeted(ms(10))
        .unwrap()
        .with_learnt_after(f64::NAN)
        .is_err());
}
