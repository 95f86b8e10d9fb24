//! Replica-aware hedging and retries: which replica the next attempt of a call goes to.

use std::fmt;

use super::MAX_ATTEMPTS;

/// How a replica looks to a caller choosing where to send an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplicaHealth {
    /// Nothing against it.
    Healthy,
    /// On probation for being slow: an outlier of the balancer's latency estimate
    /// ([`Balancer::is_slow_at`](crate::balance::Balancer::is_slow_at)). A hedge sent there
    /// would likely be as slow as the attempt it backs up.
    Slow,
    /// Its circuit breaker is half-open: a few probes decide whether it closes. A hedge is no
    /// probe worth spending; a retry may go there if nothing better is left.
    HalfOpen,
    /// Its breaker is open (or it is known down): nothing goes there.
    Open,
}

/// Why an attempt is being sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttemptKind {
    /// The call's first attempt.
    Primary,
    /// A backup of an attempt still running: only to a healthy replica not running the call.
    Hedge,
    /// A new try after a failure: preferably a healthy replica the call has not tried yet.
    Retry,
}

/// A replica the next attempt could go to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// The replica's index, as the caller numbers them.
    pub replica: usize,
    /// Its health.
    pub health: ReplicaHealth,
    /// What sending there costs (lower is better): a
    /// [`Balancer::cost_at`](crate::balance::Balancer::cost_at), or 0 to keep the order
    /// given (ties go to the earlier candidate).
    pub cost: f64,
}

/// The replicas one call is using: where its attempts are running, and where it has tried.
/// Sans-IO, fixed-size (it holds up to [`MAX_ATTEMPTS`] replicas) and allocation-free.
///
/// [`pick`](CallReplicas::pick) chooses the replica for the next attempt from candidates
/// (in order of preference, with their health and cost), by these rules:
///
/// - never a replica still running an attempt of this call (a hedge there would queue
///   behind the very attempt it backs up), nor one whose breaker is open;
/// - a **hedge** goes only to a [`Healthy`](ReplicaHealth::Healthy) replica: not one on
///   probation for being slow, not one whose breaker is half-open. No such replica: no
///   hedge (`None`);
/// - a **retry** or a **primary** prefers a healthy replica, then a slow or half-open one;
///   a retry also prefers replicas the call has not tried yet;
/// - within the best class, the lowest cost wins, ties to the earlier candidate.
///
/// ```
/// use tailguard::hedge::{AttemptKind, CallReplicas, Candidate, ReplicaHealth::*};
///
/// let candidates = |health: [_; 3]| {
///     (0..3).map(move |replica| Candidate { replica, health: health[replica], cost: 0.0 })
/// };
/// let mut call = CallReplicas::new();
/// let primary = call.pick(AttemptKind::Primary, candidates([Healthy; 3])).unwrap();
/// assert_eq!(primary, 0);
/// call.start(primary);
/// // Replica 1 is slow: the hedge skips it, and replica 0, which runs the primary.
/// assert_eq!(call.pick(AttemptKind::Hedge, candidates([Healthy, Slow, Healthy])), Some(2));
/// // With 2 half-open too, there is nowhere worth hedging to.
/// assert_eq!(call.pick(AttemptKind::Hedge, candidates([Healthy, Slow, HalfOpen])), None);
/// // The primary failed: the retry goes to a replica not tried, even a slow one.
/// call.finish(primary);
/// assert_eq!(call.pick(AttemptKind::Retry, candidates([Healthy, Slow, Open])), Some(1));
/// ```
#[derive(Clone, Copy)]
pub struct CallReplicas {
    /// Replicas tried, in order; `running` has a bit per entry.
    tried: [usize; MAX_ATTEMPTS as usize],
    len: u8,
    running: u32,
}

impl Default for CallReplicas {
    fn default() -> Self {
        CallReplicas::new()
    }
}

impl CallReplicas {
    /// A call that has sent nothing yet.
    pub const fn new() -> CallReplicas {
        CallReplicas {
            tried: [0; MAX_ATTEMPTS as usize],
            len: 0,
            running: 0,
        }
    }

    fn position(&self, replica: usize) -> Option<usize> {
        self.tried[..usize::from(self.len)]
            .iter()
            .position(|&r| r == replica)
    }

    /// An attempt of this call started on `replica`. Beyond [`MAX_ATTEMPTS`] distinct
    /// replicas, the oldest finished one is forgotten (a call never runs more at once).
    pub fn start(&mut self, replica: usize) {
        if let Some(at) = self.position(replica) {
            self.running |= 1 << at;
            return;
        }
        if usize::from(self.len) == self.tried.len() {
            // Full: forget the oldest replica not running anything, if there is one.
            let Some(oldest) = (0..self.tried.len()).find(|&i| self.running & (1 << i) == 0) else {
                return;
            };
            self.tried.copy_within(oldest + 1.., oldest);
            let low = self.running & ((1 << oldest) - 1);
            let high = (self.running >> 1) & !((1 << oldest) - 1);
            self.running = low | high;
            self.len -= 1;
        }
        let at = usize::from(self.len);
        self.tried[at] = replica;
        self.running |= 1 << at;
        self.len += 1;
    }

    /// The attempt on `replica` ended (answered, failed or cancelled).
    pub fn finish(&mut self, replica: usize) {
        if let Some(at) = self.position(replica) {
            self.running &= !(1 << at);
        }
    }

    /// Whether an attempt of this call is running on `replica`.
    pub fn is_running(&self, replica: usize) -> bool {
        self.position(replica)
            .is_some_and(|at| self.running & (1 << at) != 0)
    }

    /// Whether this call has sent an attempt to `replica`.
    pub fn has_tried(&self, replica: usize) -> bool {
        self.position(replica).is_some()
    }

    /// How many attempts are running.
    pub fn running(&self) -> u32 {
        self.running.count_ones()
    }

    /// The replica for the next attempt of `kind`, from `candidates` (see the rules above);
    /// `None` when none qualifies. Does not record it: call [`start`](CallReplicas::start)
    /// when the attempt is sent.
    pub fn pick(
        &self,
        kind: AttemptKind,
        candidates: impl IntoIterator<Item = Candidate>,
    ) -> Option<usize> {
        // (class, cost) ordered: lower class first, then lower cost; first seen wins ties.
        let mut best: Option<(u8, f64, usize)> = None;
        for c in candidates {
            let Some(class) = self.class(kind, c) else {
                continue;
            };
            let better = match best {
                None => true,
                Some((b_class, b_cost, _)) => {
                    class < b_class || (class == b_class && c.cost < b_cost)
                }
            };
            if better {
                best = Some((class, c.cost, c.replica));
            }
        }
        best.map(|(_, _, replica)| replica)
    }

    /// The preference class of a candidate (lower is better), or `None` if it is out.
    fn class(&self, kind: AttemptKind, c: Candidate) -> Option<u8> {
        if c.health == ReplicaHealth::Open || self.is_running(c.replica) {
            return None;
        }
        let healthy = c.health == ReplicaHealth::Healthy;
        match kind {
            AttemptKind::Hedge if !healthy => None,
            AttemptKind::Hedge | AttemptKind::Primary => Some(u8::from(!healthy)),
            AttemptKind::Retry => {
                let tried = self.has_tried(c.replica);
                Some(u8::from(!healthy) + 2 * u8::from(tried))
            }
        }
    }
}

impl fmt::Debug for CallReplicas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tried = &self.tried[..usize::from(self.len)];
        let running: Vec<usize> = tried
            .iter()
            .enumerate()
            .filter(|(i, _)| self.running & (1 << i) != 0)
            .map(|(_, &r)| r)
            .collect();
        f.debug_struct("CallReplicas")
            .field("tried", &tried)
            .field("running", &running)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ReplicaHealth::*;

    fn all(health: &[ReplicaHealth]) -> impl Iterator<Item = Candidate> + '_ {
        health
            .iter()
            .enumerate()
            .map(|(replica, &health)| Candidate {
                replica,
                health,
                cost: 0.0,
            })
    }

    #[test]
    fn a_hedge_never_goes_where_the_call_runs() {
        let mut call = CallReplicas::new();
        call.start(0);
        call.start(1);
        assert_eq!(call.pick(AttemptKind::Hedge, all(&[Healthy; 3])), Some(2));
        call.start(2);
        assert_eq!(call.pick(AttemptKind::Hedge, all(&[Healthy; 3])), None);
        assert_eq!(call.running(), 3);
        call.finish(1);
        assert!(!call.is_running(1) && call.has_tried(1));
        assert_eq!(call.pick(AttemptKind::Hedge, all(&[Healthy; 3])), Some(1));
    }

    #[test]
    fn hedges_skip_slow_and_half_open_replicas_retries_fall_back_to_them() {
        let mut call = CallReplicas::new();
        call.start(0);
        let health = [Healthy, Slow, HalfOpen, Open];
        assert_eq!(call.pick(AttemptKind::Hedge, all(&health)), None);
        assert_eq!(call.pick(AttemptKind::Retry, all(&health)), Some(1));
        call.finish(0);
        // Replica 0 failed: a retry prefers the untried slow one to the tried healthy one...
        assert_eq!(call.pick(AttemptKind::Retry, all(&health)), Some(1));
        // ...but a healthy untried one beats both.
        let health = [Healthy, Slow, HalfOpen, Healthy];
        assert_eq!(call.pick(AttemptKind::Retry, all(&health)), Some(3));
        // Nothing but open breakers: nowhere to go.
        assert_eq!(call.pick(AttemptKind::Primary, all(&[Open; 3])), None);
    }

    #[test]
    fn the_lowest_cost_wins_within_a_class() {
        let call = CallReplicas::new();
        let candidates = [
            (0, Healthy, 3.0),
            (1, Slow, 0.5),
            (2, Healthy, 2.0),
            (3, Healthy, 2.0),
        ]
        .map(|(replica, health, cost)| Candidate {
            replica,
            health,
            cost,
        });
        assert_eq!(call.pick(AttemptKind::Primary, candidates), Some(2));
    }

    #[test]
    fn more_replicas_than_attempts_forget_the_oldest_finished() {
        let mut call = CallReplicas::new();
        for r in 0..MAX_ATTEMPTS as usize {
            call.start(r);
            if r != 5 {
                call.finish(r);
            }
        }
        call.start(100);
        assert!(!call.has_tried(0), "the oldest finished one is forgotten");
        assert!(call.is_running(5) && call.is_running(100));
        assert!(call.has_tried(1) && !call.is_running(1));
        assert_eq!(call.running(), 2);
        call.finish(100);
        assert_eq!(call.running(), 1);
    }
}
