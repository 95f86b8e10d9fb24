//! The client side of tied requests: one call's state ([`TiedCall`]) and the policy that drives
//! it over a timer ([`Tied`]).

use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use super::Twin;
use crate::time::Timer;
use crate::validate;
use crate::ConfigError;

/// One of the two copies of a tied call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Leg {
    /// Sent at once.
    First,
    /// Sent after the delay, or at once when the first fails.
    Second,
}

impl Leg {
    fn index(self) -> usize {
        match self {
            Leg::First => 0,
            Leg::Second => 1,
        }
    }

    /// The other copy.
    pub fn other(self) -> Leg {
        match self {
            Leg::First => Leg::Second,
            Leg::Second => Leg::First,
        }
    }
}

/// One copy to send: where, with which id, tied to which twin (for the transport's headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outgoing<A> {
    /// Which copy this is.
    pub leg: Leg,
    /// The replica to send it to.
    pub replica: A,
    /// Its request id.
    pub id: u64,
    /// Its twin: the server cancels it there when this copy starts.
    pub tied_to: Twin<A>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LegState {
    Unsent,
    Sent,
    Failed,
    Answered,
}

/// What an answer settled, from [`TiedCall::answered`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled<A> {
    /// This copy answered first: the call is done. `cancel` is the other copy if it was sent
    /// and has not ended: cancel it (drop its request, or tell its replica).
    Won {
        /// The losing copy to cancel, if any.
        cancel: Option<Twin<A>>,
    },
    /// The other copy had answered already: this one's work was duplicated.
    Late,
}

/// The sans-IO state of one tied call: two copies to two replicas, their ids, and which
/// answered first.
///
/// ```
/// use tailguard::tied::{Leg, Settled, TiedCall, Twin};
///
/// let mut call = TiedCall::new(["a", "b"], [10, 11]);
/// let first = call.send(Leg::First).unwrap();
/// assert_eq!((first.replica, first.id), ("a", 10));
/// assert_eq!(first.tied_to, Twin { replica: "b", id: 11 });
/// call.send(Leg::Second).unwrap();
/// // b answers first: cancel a's copy.
/// assert_eq!(call.answered(Leg::Second), Settled::Won { cancel: Some(Twin { replica: "a", id: 10 }) });
/// assert_eq!(call.answered(Leg::First), Settled::Late);
/// ```
#[derive(Debug, Clone)]
pub struct TiedCall<A> {
    replicas: [A; 2],
    ids: [u64; 2],
    state: [LegState; 2],
    winner: Option<Leg>,
}

impl<A: Clone> TiedCall<A> {
    /// A call whose first copy goes to `replicas[0]` with id `ids[0]`, the second to
    /// `replicas[1]` with `ids[1]`.
    pub fn new(replicas: [A; 2], ids: [u64; 2]) -> Self {
        TiedCall {
            replicas,
            ids,
            state: [LegState::Unsent; 2],
            winner: None,
        }
    }

    /// The twin of `leg`: the other copy's replica and id.
    pub fn twin_of(&self, leg: Leg) -> Twin<A> {
        let other = leg.other().index();
        Twin {
            replica: self.replicas[other].clone(),
            id: self.ids[other],
        }
    }

    /// Marks `leg` sent and says what to send; `None` if it was sent already or the call is
    /// over.
    pub fn send(&mut self, leg: Leg) -> Option<Outgoing<A>> {
        let i = leg.index();
        if self.state[i] != LegState::Unsent || self.winner.is_some() {
            return None;
        }
        self.state[i] = LegState::Sent;
        Some(Outgoing {
            leg,
            replica: self.replicas[i].clone(),
            id: self.ids[i],
            tied_to: self.twin_of(leg),
        })
    }

    /// `leg` answered successfully.
    pub fn answered(&mut self, leg: Leg) -> Settled<A> {
        self.state[leg.index()] = LegState::Answered;
        if self.winner.is_some() {
            return Settled::Late;
        }
        self.winner = Some(leg);
        let cancel = (self.state[leg.other().index()] == LegState::Sent).then(|| self.twin_of(leg));
        Settled::Won { cancel }
    }

    /// `leg` failed. Returns whether the call has failed (both copies failed).
    pub fn failed(&mut self, leg: Leg) -> bool {
        self.state[leg.index()] = LegState::Failed;
        self.state[leg.other().index()] == LegState::Failed
    }

    /// The copy that answered first, if one has.
    pub fn winner(&self) -> Option<Leg> {
        self.winner
    }
}

/// A tied call's success, from [`Tied::run_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Won<T, A> {
    /// The answer.
    pub value: T,
    /// The copy that gave it.
    pub leg: Leg,
    /// The other copy, if it was sent and had not ended: its future was dropped; a transport
    /// that does not cancel a request on drop should tell its replica.
    pub cancel: Option<Twin<A>>,
}

/// Both copies of a tied call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TiedError<E> {
    /// The first copy's error.
    pub first: E,
    /// The second copy's error.
    pub second: E,
}

impl<E: fmt::Display> fmt::Display for TiedError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "both tied copies failed: {}; {}",
            self.first, self.second
        )
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
    /// Calls whose two copies both failed.
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

/// The tied-request policy: the delay before the second copy, the ids, the statistics.
/// Cheap to clone; clones share ids and statistics.
#[derive(Debug, Clone)]
pub struct Tied {
    delay: Duration,
    counters: Arc<Counters>,
}

impl Tied {
    /// A policy sending the second copy `delay` after the first (zero: both at once). Ids
    /// start from a random point, so that two clients' ids rarely meet on one server.
    pub fn new(delay: Duration) -> Result<Tied, ConfigError> {
        Self::seeded(delay, fastrand::u64(..))
    }

    /// Like [`Tied::new`] with ids counting up (in pairs) from `first_id`: reproducible.
    pub fn seeded(delay: Duration, first_id: u64) -> Result<Tied, ConfigError> {
        validate::nanos("delay", delay)?;
        let counters = Counters {
            next_id: AtomicU64::new(first_id),
            ..Counters::default()
        };
        Ok(Tied {
            delay,
            counters: Arc::new(counters),
        })
    }

    /// The delay before the second copy.
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// A call to `first` and `second`, with the next two ids.
    pub fn call<A: Clone>(&self, first: A, second: A) -> TiedCall<A> {
        let id = self.counters.next_id.fetch_add(2, Relaxed);
        TiedCall::new([first, second], [id, id.wrapping_add(1)])
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
    /// success wins and the other copy's future is dropped, which releases what it held; the
    /// error of both when both fail. Dropping the returned future drops both copies.
    pub async fn run_with<T, V, E, A, F, Fut>(
        &self,
        timer: T,
        mut call: TiedCall<A>,
        mut send: F,
    ) -> Result<Won<V, A>, TiedError<E>>
    where
        T: Timer,
        A: Clone,
        F: FnMut(Outgoing<A>) -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let c = &*self.counters;
        c.calls.fetch_add(1, Relaxed);
        let first = call
            .send(Leg::First)
            .expect("a new call sends its first copy");
        let mut first = pin!(Some(send(first)));
        let mut second = pin!(None::<Fut>);
        let mut sleep = (!self.delay.is_zero()).then(|| timer.sleep(self.delay));
        let mut errors: [Option<E>; 2] = [None, None];
        let mut second_sent = false;
        let outcome = poll_fn(|cx| {
            if let Some(fut) = first.as_mut().as_pin_mut() {
                if let Poll::Ready(result) = fut.poll(cx) {
                    first.set(None);
                    match result {
                        Ok(value) => return Poll::Ready(Ok((value, Leg::First))),
                        Err(error) => errors[0] = Some(error),
                    }
                }
            }
            if !second_sent {
                let due = errors[0].is_some()
                    || sleep
                        .as_mut()
                        .is_none_or(|s| std::pin::Pin::new(s).poll(cx).is_ready());
                if due {
                    second_sent = true;
                    sleep = None;
                    if let Some(out) = call.send(Leg::Second) {
                        c.seconds_sent.fetch_add(1, Relaxed);
                        second.set(Some(send(out)));
                    }
                }
            }
            if let Some(fut) = second.as_mut().as_pin_mut() {
                if let Poll::Ready(result) = fut.poll(cx) {
                    second.set(None);
                    match result {
                        Ok(value) => return Poll::Ready(Ok((value, Leg::Second))),
                        Err(error) => errors[1] = Some(error),
                    }
                }
            }
            if errors[0].is_some() && errors[1].is_some() {
                let [first, second] = [errors[0].take(), errors[1].take()];
                if let (Some(first), Some(second)) = (first, second) {
                    return Poll::Ready(Err(TiedError { first, second }));
                }
            }
            Poll::Pending
        })
        .await;
        match outcome {
            Ok((value, leg)) => {
                if errors[leg.other().index()].is_some() {
                    call.failed(leg.other());
                }
                let cancel = match call.answered(leg) {
                    Settled::Won { cancel } => cancel,
                    Settled::Late => None,
                };
                if leg == Leg::Second {
                    c.won_by_second.fetch_add(1, Relaxed);
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
