//! The client side of tied requests: one call's sans-IO state ([`TiedCall`]): its copies,
//! their ids, which started, which answered first, which losers to cancel.

use super::Twin;

/// One of the copies of a tied call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Leg {
    /// Sent at once.
    First,
    /// Sent after the delay, or at once when the first fails.
    Second,
    /// The [backup](super::Backup): sent to a third replica when the copy that started has
    /// not answered `after` it started (only on a call [with a
    /// backup](TiedCall::with_backup)). It is tied to nothing: the copy it backs up is
    /// already running, so there is nothing left to cancel when it starts.
    Backup,
}

impl Leg {
    pub(super) fn index(self) -> usize {
        match self {
            Leg::First => 0,
            Leg::Second => 1,
            Leg::Backup => 2,
        }
    }

    /// The other copy of the tied pair; `None` for the backup, which is tied to nothing.
    pub fn twin(self) -> Option<Leg> {
        match self {
            Leg::First => Some(Leg::Second),
            Leg::Second => Some(Leg::First),
            Leg::Backup => None,
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
    /// Its twin: the server cancels it there when this copy starts. `None` for the backup.
    pub tied_to: Option<Twin<A>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LegState {
    Unsent,
    Sent,
    Failed,
    /// Cancelled (or refused) by its twin, which started.
    Cancelled,
    Answered,
}

impl LegState {
    fn ended(self) -> bool {
        matches!(self, LegState::Failed | LegState::Cancelled)
    }
}

/// What an answer settled, from [`TiedCall::answered`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled<A> {
    /// This copy answered first: the call is done. `cancel` holds the other copies that were
    /// sent and have not ended (at most two: the twin, the backup): cancel them (drop their
    /// requests, or tell their replicas).
    Won {
        /// The losing copies to cancel, if any.
        cancel: [Option<Twin<A>>; 2],
    },
    /// Another copy had answered already: this one's work was duplicated.
    Late,
}

/// The sans-IO state of one tied call: two copies to two replicas (and, [with a
/// backup](TiedCall::with_backup), a third to a third replica), their ids, which copy is
/// known to have started, and which answered first.
///
/// ```
/// use tailguard::tied::{Leg, Settled, TiedCall, Twin};
///
/// let mut call = TiedCall::new(["a", "b"], [10, 11]);
/// let first = call.send(Leg::First).unwrap();
/// assert_eq!((first.replica, first.id), ("a", 10));
/// assert_eq!(first.tied_to, Some(Twin { replica: "b", id: 11 }));
/// call.send(Leg::Second).unwrap();
/// // b answers first: cancel a's copy.
/// let a = Twin { replica: "a", id: 10 };
/// assert_eq!(call.answered(Leg::Second), Settled::Won { cancel: [Some(a), None] });
/// assert_eq!(call.answered(Leg::First), Settled::Late);
/// ```
///
/// With a backup: the copy on `a` started (its twin on `b` was cancelled, and `b` said so)
/// and has not answered; the backup goes to `c`.
///
/// ```
/// use tailguard::tied::{Leg, Settled, TiedCall, Twin};
///
/// let mut call = TiedCall::new(["a", "b"], [10, 11]).with_backup("c", 12);
/// assert!(call.send(Leg::Backup).is_none(), "no copy is known to be running yet");
/// call.send(Leg::First).unwrap();
/// call.send(Leg::Second).unwrap();
/// assert_eq!(call.cancelled_by_twin(Leg::Second), Some(Leg::First));
/// let backup = call.send(Leg::Backup).unwrap();
/// assert_eq!((backup.replica, backup.id, backup.tied_to), ("c", 12, None));
/// // The backup answers first; a's copy (stalled mid-service) is the loser.
/// let a = Twin { replica: "a", id: 10 };
/// assert_eq!(call.answered(Leg::Backup), Settled::Won { cancel: [Some(a), None] });
/// ```
#[derive(Debug, Clone)]
pub struct TiedCall<A> {
    replicas: [A; 2],
    ids: [u64; 2],
    backup: Option<(A, u64)>,
    state: [LegState; 3],
    /// The copy known to be in service: its twin was cancelled by it.
    running: Option<Leg>,
    winner: Option<Leg>,
}

impl<A: Clone> TiedCall<A> {
    /// A call whose first copy goes to `replicas[0]` with id `ids[0]`, the second to
    /// `replicas[1]` with `ids[1]`.
    pub fn new(replicas: [A; 2], ids: [u64; 2]) -> Self {
        TiedCall {
            replicas,
            ids,
            backup: None,
            state: [LegState::Unsent; 3],
            running: None,
            winner: None,
        }
    }

    /// The same call with a [backup](Leg::Backup) copy to `replica`, with `id`, for when the
    /// copy that started overruns.
    pub fn with_backup(mut self, replica: A, id: u64) -> Self {
        self.backup = Some((replica, id));
        self
    }

    /// Where `leg` goes and its id; `None` for a backup the call does not have.
    pub fn copy(&self, leg: Leg) -> Option<Twin<A>> {
        match leg {
            Leg::First | Leg::Second => Some(Twin {
                replica: self.replicas[leg.index()].clone(),
                id: self.ids[leg.index()],
            }),
            Leg::Backup => self.backup.as_ref().map(|(replica, id)| Twin {
                replica: replica.clone(),
                id: *id,
            }),
        }
    }

    /// The twin of `leg`: the other copy's replica and id (`None` for the backup).
    pub fn twin_of(&self, leg: Leg) -> Option<Twin<A>> {
        self.copy(leg.twin()?)
    }

    /// Marks `leg` sent and says what to send; `None` if it was sent already, or the call is
    /// over, or (for the backup) the call has none or no copy is known to be
    /// [running](TiedCall::running).
    pub fn send(&mut self, leg: Leg) -> Option<Outgoing<A>> {
        let i = leg.index();
        if self.state[i] != LegState::Unsent || self.winner.is_some() {
            return None;
        }
        if leg == Leg::Backup && self.running.is_none() {
            return None;
        }
        let copy = self.copy(leg)?;
        self.state[i] = LegState::Sent;
        Some(Outgoing {
            leg,
            replica: copy.replica,
            id: copy.id,
            tied_to: self.twin_of(leg),
        })
    }

    /// Marks the backup sent although no copy is known to have started, and says what to
    /// send: for a call whose two tied copies were both sent and have neither answered nor
    /// ended (both wait in stalled replicas' queues, see
    /// [`Backup::with_unstarted`](super::Backup::with_unstarted)). `None` if the call has no
    /// backup or sent it, is over, a tied copy is unsent or has ended, or a copy is known to
    /// be [running](TiedCall::running) (then [`send(Leg::Backup)`](TiedCall::send) is the
    /// way). When the backup wins, both tied copies are among the losers to cancel.
    ///
    /// ```
    /// use tailguard::tied::{Leg, Settled, TiedCall, Twin};
    ///
    /// let mut call = TiedCall::new(["a", "b"], [10, 11]).with_backup("c", 12);
    /// call.send(Leg::First).unwrap();
    /// assert!(call.send_unstarted_backup().is_none(), "the second copy is not sent yet");
    /// call.send(Leg::Second).unwrap();
    /// // Neither a nor b starts its copy (both stalled): back the call up on c.
    /// let backup = call.send_unstarted_backup().unwrap();
    /// assert_eq!((backup.leg, backup.replica, backup.tied_to), (Leg::Backup, "c", None));
    /// let a = Twin { replica: "a", id: 10 };
    /// let b = Twin { replica: "b", id: 11 };
    /// assert_eq!(call.answered(Leg::Backup), Settled::Won { cancel: [Some(a), Some(b)] });
    /// ```
    pub fn send_unstarted_backup(&mut self) -> Option<Outgoing<A>> {
        if !self.unstarted_backup_due() {
            return None;
        }
        let copy = self.copy(Leg::Backup)?;
        self.state[Leg::Backup.index()] = LegState::Sent;
        Some(Outgoing {
            leg: Leg::Backup,
            replica: copy.replica,
            id: copy.id,
            tied_to: None,
        })
    }

    /// Whether [`send_unstarted_backup`](TiedCall::send_unstarted_backup) would send the
    /// backup now (the call has one).
    pub(super) fn unstarted_backup_due(&self) -> bool {
        let tied_waiting = self.state[..2].iter().all(|&s| s == LegState::Sent);
        tied_waiting
            && self.running.is_none()
            && self.winner.is_none()
            && self.state[Leg::Backup.index()] == LegState::Unsent
            && self.backup.is_some()
    }

    /// Whether `leg` has not been sent yet.
    pub(super) fn unsent(&self, leg: Leg) -> bool {
        self.state[leg.index()] == LegState::Unsent
    }

    /// `leg` answered successfully.
    pub fn answered(&mut self, leg: Leg) -> Settled<A> {
        self.state[leg.index()] = LegState::Answered;
        if self.running == Some(leg) {
            self.running = None;
        }
        if self.winner.is_some() {
            return Settled::Late;
        }
        self.winner = Some(leg);
        let mut cancel = [None, None];
        let losers = [Leg::First, Leg::Second, Leg::Backup]
            .into_iter()
            .filter(|&other| other != leg && self.state[other.index()] == LegState::Sent);
        for (slot, loser) in cancel.iter_mut().zip(losers) {
            *slot = self.copy(loser);
        }
        Settled::Won { cancel }
    }

    /// `leg` (the first or second copy) was cancelled by its twin, or refused because its
    /// twin's cancel got there first: the twin has started, and is the copy known to be
    /// [running](TiedCall::running) from now on, if it has not ended. Returns it.
    ///
    /// This is how a client learns that a copy started: the server that cancels a copy
    /// answers that copy's request (in the demo, with a 409), and no extra message is needed.
    pub fn cancelled_by_twin(&mut self, leg: Leg) -> Option<Leg> {
        let twin = leg.twin()?;
        if self.running == Some(leg) {
            self.running = None;
        }
        self.state[leg.index()] = LegState::Cancelled;
        if self.state[twin.index()] == LegState::Sent && self.winner.is_none() {
            self.running = Some(twin);
        }
        self.running
    }

    /// The copy known to be in service (its twin was cancelled by it) and not ended, if any.
    pub fn running(&self) -> Option<Leg> {
        self.running
    }

    /// `leg` failed. Returns whether the call has failed: both tied copies have ended without
    /// an answer (failed, or cancelled), and no backup is in flight.
    pub fn failed(&mut self, leg: Leg) -> bool {
        self.state[leg.index()] = LegState::Failed;
        if self.running == Some(leg) {
            self.running = None;
        }
        self.winner.is_none()
            && self.state[0].ended()
            && self.state[1].ended()
            && self.state[2] != LegState::Sent
    }

    /// The copy that answered first, if one has.
    pub fn winner(&self) -> Option<Leg> {
        self.winner
    }
}
