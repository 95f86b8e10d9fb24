//! Least-loaded replica choice for the gateway ([`Balance::P2c`]): power of two choices over a
//! peak-EWMA of latency for each key's first call, replica-aware hedges and retries.
//!
//! With [`Balance::Home`] (the default) key `k`'s first call goes to replica `k mod n`, and
//! each hedge or retry one replica further along. With [`Balance::P2c`]:
//!
//! - a key's **first call** goes to the cheaper of two replicas drawn at random, by a
//!   [`Balancer`]'s cost (expected latency × (outstanding calls + 1)), among those whose
//!   breaker is not open;
//! - a **hedge** goes to the cheapest replica not running a call of this key, whose breaker is
//!   closed and which is not on probation for being slow ([`Balancer::is_slow_at`]); with none,
//!   no hedge is sent (the attempt ends as `Unsent("no_replica_for_hedge")`, which no backend
//!   sees);
//! - a **retry** prefers a healthy replica this key has not tried, then any not running it.
//!
//! Every call's load is counted from when it is sent until it answers (its latency is learnt)
//! or is dropped (a hedge won: the time out is learnt as a lower bound).

use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tailguard::balance::{Balancer, Load};
use tailguard::breaker::State;
use tailguard::hedge::{AttemptKind, CallReplicas, Candidate, ReplicaHealth};

use super::Inner;

/// How the gateway picks the replica of a key's call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Balance {
    /// Key `k` on replica `k mod n` first; each hedge or retry one replica further along.
    #[default]
    Home,
    /// Power of two choices over a peak-EWMA of latency; hedges and retries replica-aware.
    P2c,
}

impl FromStr for Balance {
    type Err = String;

    /// `home` or `p2c`.
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "home" => Ok(Balance::Home),
            "p2c" => Ok(Balance::P2c),
            _ => Err(format!(
                "`{text}` is not a balancing mode: write home or p2c"
            )),
        }
    }
}

impl fmt::Display for Balance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Balance::Home => "home",
            Balance::P2c => "p2c",
        })
    }
}

/// The replicas one key is using, across its tries and hedges.
pub(super) type KeyReplicas = Mutex<CallReplicas>;

/// One call's load on its replica and its place in the key's [`CallReplicas`]; dropped
/// unfinished (a hedge won, the fan-out was cut), it cancels: the time out is learnt as a
/// lower bound.
pub(super) struct Tracked<'a> {
    load: Option<Load>,
    replicas: &'a KeyReplicas,
    replica: usize,
}

impl Tracked<'_> {
    /// The call answered (or failed) now: learn its latency.
    pub(super) fn finish(mut self) {
        if let Some(load) = self.load.take() {
            load.finish_at(Instant::now());
        }
    }
}

impl Drop for Tracked<'_> {
    fn drop(&mut self) {
        if let Some(load) = self.load.take() {
            load.cancel_at(Instant::now());
        }
        lock(self.replicas).finish(self.replica);
    }
}

fn lock(replicas: &KeyReplicas) -> std::sync::MutexGuard<'_, CallReplicas> {
    replicas.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Inner {
    /// With a balancer: the replica to try first for this call of `key` (`try_offset` is 0 for
    /// the key's first try), or `None` when a hedge has nowhere worth going. Without one: the
    /// home replica `key + offset`.
    pub(super) fn first_replica(
        &self,
        key: usize,
        offset: usize,
        hedge: u32,
        replicas: &KeyReplicas,
    ) -> Option<usize> {
        let n = self.replicas.len();
        let Some(balancer) = &self.balancer else {
            return Some((key + offset) % n);
        };
        let now = Instant::now();
        let call = lock(replicas);
        if offset == 0 {
            return balancer.pick_where_at(now, |i, _| !self.is_open(i));
        }
        let kind = if hedge > 1 {
            AttemptKind::Hedge
        } else {
            AttemptKind::Retry
        };
        let mean = balancer.mean_latency_at(now);
        let candidates = (0..n).map(|i| Candidate {
            replica: i,
            health: match self.replicas[i].breaker.state() {
                State::Open | State::ForcedOpen => ReplicaHealth::Open,
                State::HalfOpen => ReplicaHealth::HalfOpen,
                _ if balancer.is_slow_against_at(i, now, mean) => ReplicaHealth::Slow,
                _ => ReplicaHealth::Healthy,
            },
            cost: balancer.cost_at(i, now).unwrap_or(f64::INFINITY),
        });
        call.pick(kind, candidates)
    }

    fn is_open(&self, replica: usize) -> bool {
        matches!(
            self.replicas[replica].breaker.state(),
            State::Open | State::ForcedOpen
        )
    }

    /// Counts a call to `replica` as outstanding (with a balancer) and as running for its key.
    pub(super) fn track<'a>(&self, replica: usize, replicas: &'a KeyReplicas) -> Tracked<'a> {
        lock(replicas).start(replica);
        Tracked {
            load: self
                .balancer
                .as_ref()
                .and_then(|b| b.start_at(replica, Instant::now())),
            replicas,
            replica,
        }
    }
}

/// The gateway's balancer in [`Balance::P2c`], over replicas `0..n`.
pub(super) fn balancer(
    balance: Balance,
    replicas: usize,
    seed: Option<u64>,
) -> Result<Option<Balancer<usize>>, tailguard::ConfigError> {
    match balance {
        Balance::Home => Ok(None),
        Balance::P2c => {
            // Half a second of memory: a replica's pauses are short and come back often, and
            // a stall in progress shows in its outstanding calls' age anyway. The default 10 s
            // would keep a replica's one slow answer against it for most of a run.
            let mut builder = Balancer::builder().decay(Duration::from_millis(500));
            if let Some(seed) = seed {
                builder = builder.seed(seed);
            }
            builder.build(0..replicas).map(Some)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balance_modes_parse_and_print() {
        assert_eq!("p2c".parse::<Balance>(), Ok(Balance::P2c));
        assert_eq!("home".parse::<Balance>(), Ok(Balance::Home));
        assert_eq!(Balance::P2c.to_string(), "p2c");
        assert!("random".parse::<Balance>().is_err());
        assert_eq!(Balance::default(), Balance::Home);
    }
}
