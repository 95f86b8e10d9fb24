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

/// Replica 0 starts its copy at once and takes `took[0]`; its twin on replica 1 is cancelled
/// (answers `CANCELLED` as soon as it is sent); the backup on replica 2 takes `took[1]`.
fn stalled(
    tied: &Tied,
    timer: &ManualTimer,
    took: [u64; 2],
    live: &Arc<AtomicUsize>,
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
                let (took, answer) = match copy.replica {
                    0 => (took[0], Ok(0)),
                    1 => (0, Err(CANCELLED)),
                    _ => (took[1], Ok(2)),
                };
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
