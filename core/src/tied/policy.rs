//! The tied-request policy ([`Tied`]): drives a [`TiedCall`] over a timer.

use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use super::{Backup, Leg, Outgoing, Settled, TiedCall, Twin};
use crate::time::Timer;
use crate::validate;
use crate::ConfigError;

/// A tied call's success, from [`Tied::run_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Won<T, A> {
    /// The answer.
    pub value: T,
    /// The copy that gave it.
    pub leg: Leg,
    /// The other copies that were sent and had not ended (at most two): their futures were
    /// dropped; a transport that does not cancel a request on drop should tell their replicas.
    pub cancel: [Option<Twin<A>>; 2],
}

/// Every copy of a tied call failed (or was cancelled by its twin).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TiedError<E> {
    /// The first copy's error.
    pub first: E,
    /// The second copy's error.
    pub second: E,
    /// The backup's error, if one was sent.
    pub backup: Option<E>,
}

impl<E: fmt::Display> fmt::Display for TiedError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "both tied copies failed: {}; {}",
            self.first, self.second
        )?;
        if let Some(backup) = &self.backup {
            write!(f, "; and the backup: {backup}")?;
        }
        Ok(())
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for TiedError<E> {}

/// What a [`Tied`] policy and its clones have done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TiedStats {
    /// Calls started.
    pub calls: u64,
    /// Second copies sent (a call answered within the delay sends none).
    pub seconds_sent: u64,
    /// Calls answered by the second copy.
    pub won_by_second: u64,
    /// Calls whose copies all failed.
    pub failed: u64,
}

#[derive(Debug, Default)]
struct Counters {
    calls: AtomicU64,
    seconds_sent: AtomicU64,
    won_by_second: AtomicU64,
    failed: AtomicU64,
    next_id: AtomicU64,
}

/// The tied-request policy: the delay before the second copy, the [backup](Backup) if any,
/// the ids, the statistics. Cheap to clone; clones share ids and statistics.
#[derive(Debug, Clone)]
pub struct Tied {
    delay: Duration,
    backup: Option<Backup>,
    counters: Arc<Counters>,
}

impl Tied {
    /// A policy sending the second copy `delay` after the first (zero: both at once). Ids
    /// start from a random point, so that two clients' ids rarely meet on one server.
    pub fn new(delay: Duration) -> Result<Tied, ConfigError> {
        Self::seeded(delay, fastrand::u64(..))
    }

    /// Like [`Tied::new`] with ids counting up from `first_id` (two per call, three with a
    /// backup): reproducible.
    pub fn seeded(delay: Duration, first_id: u64) -> Result<Tied, ConfigError> {
        validate::nanos("delay", delay)?;
        let counters = Counters {
            next_id: AtomicU64::new(first_id),
            ..Counters::default()
        };
        Ok(Tied {
            delay,
            backup: None,
            counters: Arc::new(counters),
        })
    }

    /// The same policy, backing up a copy that started and overran as `backup` says (for
    /// calls made with [`call_backed`](Tied::call_backed)).
    pub fn with_backup(mut self, backup: Backup) -> Tied {
        self.backup = Some(backup);
        self
    }

    /// The delay before the second copy.
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// The backup policy, if any.
    pub fn backup(&self) -> Option<&Backup> {
        self.backup.as_ref()
    }

    /// A call to `first` and `second`, with the next two ids.
    pub fn call<A: Clone>(&self, first: A, second: A) -> TiedCall<A> {
        let id = self.counters.next_id.fetch_add(2, Relaxed);
        TiedCall::new([first, second], [id, id.wrapping_add(1)])
    }

    /// A call to `first` and `second` with a backup to `third`, with the next three ids.
    pub fn call_backed<A: Clone>(&self, first: A, second: A, third: A) -> TiedCall<A> {
        let id = self.counters.next_id.fetch_add(3, Relaxed);
        TiedCall::new([first, second], [id, id.wrapping_add(1)])
            .with_backup(third, id.wrapping_add(2))
    }

    /// What the policy has done so far.
    pub fn stats(&self) -> TiedStats {
        let c = &self.counters;
        TiedStats {
            calls: c.calls.load(Relaxed),
            seconds_sent: c.seconds_sent.load(Relaxed),
            won_by_second: c.won_by_second.load(Relaxed),
            failed: c.failed.load(Relaxed),
        }
    }

    /// Runs `call` on `timer`: `send` the first copy now and the second after the delay (at
    /// once if the first has failed; never if the first answered within the delay). The first
    /// success wins and the other copies' futures are dropped, which releases what they held;
    /// the errors of all when all fail. Dropping the returned future drops every copy.
    ///
    /// Sends no backup: an error is never taken to mean that the copy's twin started. See
    /// [`run_backed_with`](Tied::run_backed_with).
    pub async fn run_with<T, V, E, A, F, Fut>(
        &self,
        timer: T,
        call: TiedCall<A>,
        send: F,
    ) -> Result<Won<V, A>, TiedError<E>>
    where
        T: Timer,
        A: Clone,
        F: FnMut(Outgoing<A>) -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        self.run_backed_with(timer, call, |_: &E| false, send).await
    }

    /// Like [`run_with`](Tied::run_with), and backs up the copy that started: when a copy
    /// ends with an error that `twin_started` says is its cancellation by its twin (the
    /// twin started), and the twin has not answered [`Backup::after`] later, the call's
    /// [backup](TiedCall::with_backup) copy is sent, if the policy has a [`Backup`] and its
    /// budget allows. With [`Backup::with_unstarted`], the backup is also sent when both
    /// tied copies are out and neither has answered, ended or been learnt to start
    /// [`Backup::unstarted`] after the second was sent (both replicas stalled). A call sends
    /// at most one backup. Each call deposits once in the backup's budget.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tailguard::tied::{Backup, Leg, Tied};
    /// use tailguard::time::{ManualTimer, Timer};
    ///
    /// let backup = Backup::unbudgeted(Duration::from_millis(10)).unwrap();
    /// let tied = Tied::new(Duration::from_millis(1)).unwrap().with_backup(backup);
    /// let timer = ManualTimer::new();
    /// let t = timer.clone();
    /// let call = tied.call_backed("a", "b", "c");
    /// let won = timer.block_on(tied.run_backed_with(timer.clone(), call, |e| *e == "cancelled", move |copy| {
    ///     // a starts at once and stalls for 500 ms; it cancels b's copy, and b says so.
    ///     let (took, answer) = match copy.replica {
    ///         "a" => (500, Ok("a")),
    ///         "b" => (0, Err("cancelled")),
    ///         _ => (2, Ok("c")),
    ///     };
    ///     let sleep = t.sleep(Duration::from_millis(took));
    ///     async move {
    ///         sleep.await;
    ///         answer
    ///     }
    /// }));
    /// let won = won.unwrap();
    /// assert_eq!((won.value, won.leg), ("c", Leg::Backup));
    /// // b refused at 1 ms: the backup went at 11 ms and answered at 13 ms.
    /// assert_eq!(timer.elapsed(), Duration::from_millis(13));
    /// assert_eq!(won.cancel[0].unwrap().replica, "a");
    /// ```
    pub async fn run_backed_with<T, V, E, A, C, F, Fut>(
        &self,
        timer: T,
        mut call: TiedCall<A>,
        twin_started: C,
        mut send: F,
    ) -> Result<Won<V, A>, TiedError<E>>
    where
        T: Timer,
        A: Clone,
        C: Fn(&E) -> bool,
        F: FnMut(Outgoing<A>) -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let c = &*self.counters;
        c.calls.fetch_add(1, Relaxed);
        let backup = self.backup.as_ref();
        if let Some(backup) = backup {
            backup.deposit();
        }
        let first = call
            .send(Leg::First)
            .expect("a new call sends its first copy");
        let mut copies = [
            pin!(Some(send(first))),
            pin!(None::<Fut>),
            pin!(None::<Fut>),
        ];
        let mut sleep = (!self.delay.is_zero()).then(|| timer.sleep(self.delay));
        let mut backup_sleep: Option<T::Sleep> = None;
        // The backup of a call none of whose copies starts: armed when the second copy goes.
        let unstarted_after = backup
            .and_then(Backup::unstarted)
            .filter(|_| call.copy(Leg::Backup).is_some());
        let mut unstarted_sleep: Option<T::Sleep> = None;
        let mut errors: [Option<E>; 3] = [None, None, None];
        let mut second_sent = false;
        let mut unstarted_sent = false;
        // When the client learnt that a copy started (for a learnt backup delay).
        let mut started_at = None;
        let outcome = poll_fn(|cx| {
            for leg in [Leg::First, Leg::Second, Leg::Backup] {
                let i = leg.index();
                if i == 1 && !second_sent {
                    let due = errors[0].is_some()
                        || sleep
                            .as_mut()
                            .is_none_or(|s| Pin::new(s).poll(cx).is_ready());
                    if due {
                        second_sent = true;
                        sleep = None;
                        if let Some(out) = call.send(Leg::Second) {
                            c.seconds_sent.fetch_add(1, Relaxed);
                            copies[1].set(Some(send(out)));
                            // Polled below, on this same pass (the backup comes last).
                            unstarted_sleep = unstarted_after.map(|after| timer.sleep(after));
                        }
                    }
                }
                if i == 2 {
                    let unstarted_due = unstarted_sleep
                        .as_mut()
                        .is_some_and(|s| Pin::new(s).poll(cx).is_ready());
                    if unstarted_due {
                        unstarted_sleep = None;
                        let budget_ok = call.unstarted_backup_due()
                            && backup.is_some_and(|b| b.try_send_at(timer.now()));
                        if let Some(out) = budget_ok.then(|| call.send_unstarted_backup()).flatten()
                        {
                            unstarted_sent = true;
                            if let Some(b) = backup {
                                b.sent_unstarted();
                            }
                            copies[2].set(Some(send(out)));
                        }
                    }
                    let due = backup_sleep
                        .as_mut()
                        .is_some_and(|s| Pin::new(s).poll(cx).is_ready());
                    if due {
                        backup_sleep = None;
                        let budget_ok = call.running().is_some()
                            && call.unsent(Leg::Backup)
                            && backup.is_some_and(|b| b.try_send_at(timer.now()));
                        if let Some(out) = budget_ok.then(|| call.send(Leg::Backup)).flatten() {
                            copies[2].set(Some(send(out)));
                        }
                    }
                }
                let Some(fut) = copies[i].as_mut().as_pin_mut() else {
                    continue;
                };
                let Poll::Ready(result) = fut.poll(cx) else {
                    continue;
                };
                copies[i].set(None);
                match result {
                    Ok(value) => return Poll::Ready(Ok((value, leg))),
                    Err(error) => {
                        let started = twin_started(&error)
                            .then(|| call.cancelled_by_twin(leg))
                            .flatten();
                        match (started, backup) {
                            // Armed once; polled below, on this same pass (the backup
                            // comes last), which registers its waker.
                            (Some(_), Some(b))
                                if backup_sleep.is_none()
                                    && call.copy(Leg::Backup).is_some()
                                    && call.unsent(Leg::Backup) =>
                            {
                                let now = timer.now();
                                started_at = Some(now);
                                backup_sleep = Some(timer.sleep_until(b.due_at(now)));
                            }
                            (Some(_), _) => {}
                            (None, _) => {
                                call.failed(leg);
                            }
                        }
                        errors[i] = Some(error);
                    }
                }
            }
            // Both tied copies ended without an answer: no copy is running, so no backup
            // will be sent; the call has failed unless one is in flight.
            if errors[0].is_some() && errors[1].is_some() && copies[2].is_none() {
                backup_sleep = None;
                let [first, second, backup] =
                    [errors[0].take(), errors[1].take(), errors[2].take()];
                if let (Some(first), Some(second)) = (first, second) {
                    return Poll::Ready(Err(TiedError {
                        first,
                        second,
                        backup,
                    }));
                }
            }
            Poll::Pending
        })
        .await;
        match outcome {
            Ok((value, leg)) => {
                if let (Some(b), Some(started)) = (backup, started_at) {
                    if b.learnt_percentile().is_some() && call.running() == Some(leg) {
                        let now = timer.now();
                        b.record_run_at(now, now.saturating_duration_since(started));
                    }
                }
                let cancel = match call.answered(leg) {
                    Settled::Won { cancel } => cancel,
                    Settled::Late => [None, None],
                };
                match leg {
                    Leg::Second => {
                        c.won_by_second.fetch_add(1, Relaxed);
                    }
                    Leg::Backup => {
                        if let Some(b) = backup {
                            b.won();
                            if unstarted_sent {
                                b.won_unstarted();
                            }
                        }
                    }
                    Leg::First => {}
                }
                Ok(Won { value, leg, cancel })
            }
            Err(error) => {
                c.failed.fetch_add(1, Relaxed);
                Err(error)
            }
        }
    }
}
