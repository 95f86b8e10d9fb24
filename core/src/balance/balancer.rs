use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::ewma::{Endpoint, Observed};
use crate::{validate, ConfigError};

/// Power of two choices over a peak-EWMA of latency: a least-loaded balancer, sans-IO.
///
/// Holds a set of endpoints, each keyed by a `K` (an address, an index), and for each a
/// latency estimate and the calls outstanding. [`pick_at`](Balancer::pick_at) draws two
/// endpoints at random and returns the cheaper, where the cost of an endpoint is its expected
/// latency × (outstanding calls + 1); [`start_at`](Balancer::start_at) then hands out a
/// [`Load`] that counts the call as outstanding until it ends. See the
/// [module documentation](super) for the estimate.
///
/// Picking is lock-free apart from one short lock per endpoint looked at, and allocates
/// nothing. The endpoint set can change at any time between picks
/// ([`insert`](Balancer::insert), [`remove`](Balancer::remove)); a [`Load`] on a removed
/// endpoint still ends cleanly.
pub struct Balancer<K> {
    endpoints: Vec<(K, Arc<Endpoint>)>,
    config: Config,
    /// SplitMix64 state: each pick takes the next value, so a seeded balancer picks the same
    /// sequence every run (when picks come from one thread).
    rng: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
struct Config {
    decay: Duration,
    initial_rtt: Duration,
    slow_factor: f64,
}

/// One call's share of an endpoint's load: counted as outstanding from
/// [`Balancer::start_at`] until it ends.
///
/// End it with [`finish_at`](Load::finish_at) when the call completes (its latency is
/// learnt), or [`cancel_at`](Load::cancel_at) when the call is abandoned (the time it had
/// been out is a lower bound on its latency, learnt only if it raises the estimate). Dropping
/// it ends it too, learning nothing: the outstanding count never leaks.
#[must_use = "a load counts as outstanding until it is finished or dropped"]
pub struct Load {
    endpoint: Arc<Endpoint>,
    started: Instant,
    ended: bool,
}

impl Load {
    /// The call completed at `now`: learn its latency and stop counting it.
    pub fn finish_at(mut self, now: Instant) {
        self.end(now, Observed::Exact);
    }

    /// The call was abandoned at `now` (a hedge won, a timeout): stop counting it, and learn
    /// the time it had been out as a lower bound on the endpoint's latency.
    pub fn cancel_at(mut self, now: Instant) {
        self.end(now, Observed::AtLeast);
    }

    /// When the call started.
    pub fn started(&self) -> Instant {
        self.started
    }

    fn end(&mut self, now: Instant, observed: Observed) {
        if !self.ended {
            self.ended = true;
            self.endpoint.end(self.started, now, observed);
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        let started = self.started;
        self.end(started, Observed::Nothing);
    }
}

impl fmt::Debug for Load {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Load")
            .field("started", &self.started)
            .field("ended", &self.ended)
            .finish()
    }
}

impl Balancer<()> {
    /// A builder with the defaults: a decay of 10 s, a first estimate of 1 ms for a new
    /// endpoint, an endpoint slow at 3× the others' mean, random seed. The key type is chosen by
    /// [`build`](BalancerBuilder::build)'s endpoints.
    pub fn builder() -> BalancerBuilder {
        BalancerBuilder::default()
    }
}

impl<K: PartialEq> Balancer<K> {
    /// Adds endpoint `key` (with a fresh estimate) and returns its index; a key already in the
    /// set keeps its index and its estimate.
    pub fn insert(&mut self, key: K) -> usize {
        if let Some(index) = self.index_of(&key) {
            return index;
        }
        let endpoint = Endpoint::new(self.config.initial_rtt, self.config.decay);
        self.endpoints.push((key, Arc::new(endpoint)));
        self.endpoints.len() - 1
    }

    /// Removes endpoint `key`; `false` if it was not there. The indices of the endpoints after
    /// it shift down by one. Loads still out on it end cleanly.
    pub fn remove(&mut self, key: &K) -> bool {
        match self.index_of(key) {
            Some(index) => {
                self.endpoints.remove(index);
                true
            }
            None => false,
        }
    }

    /// The index of endpoint `key`, if it is in the set.
    pub fn index_of(&self, key: &K) -> Option<usize> {
        self.endpoints.iter().position(|(k, _)| k == key)
    }
}

impl<K> Balancer<K> {
    /// How many endpoints there are.
    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// The key of endpoint `index`.
    pub fn key(&self, index: usize) -> Option<&K> {
        self.endpoints.get(index).map(|(k, _)| k)
    }

    /// Power of two choices at `now`: two distinct endpoints drawn at random, the cheaper
    /// returned (by index). `None` when the set is empty; the only one when it has one.
    pub fn pick_at(&self, now: Instant) -> Option<usize> {
        let n = self.endpoints.len();
        match n {
            0 => None,
            1 => Some(0),
            _ => {
                let (a, b) = self.two_of(n);
                Some(self.cheaper_at(now, a, b))
            }
        }
    }

    /// Power of two choices among the endpoints `allowed` accepts (by index and key): for a
    /// hedge that must avoid the replicas already running the call, say. `None` if it accepts
    /// none. A scan of the set, allocation-free.
    pub fn pick_where_at(
        &self,
        now: Instant,
        mut allowed: impl FnMut(usize, &K) -> bool,
    ) -> Option<usize> {
        let eligible = self
            .endpoints
            .iter()
            .enumerate()
            .filter(|(i, (k, _))| allowed(*i, k))
            .count();
        let nth = |mut rank: usize, allowed: &mut dyn FnMut(usize, &K) -> bool| {
            self.endpoints
                .iter()
                .enumerate()
                .position(|(i, (k, _))| {
                    if !allowed(i, k) {
                        return false;
                    }
                    let found = rank == 0;
                    rank = rank.wrapping_sub(1);
                    found
                })
                .expect("the rank is below the count of allowed endpoints")
        };
        match eligible {
            0 => None,
            1 => Some(nth(0, &mut allowed)),
            _ => {
                let (a, b) = self.two_of(eligible);
                let (a, b) = (nth(a, &mut allowed), nth(b, &mut allowed));
                Some(self.cheaper_at(now, a, b))
            }
        }
    }

    /// Counts a call to endpoint `index` as outstanding from `now`, until the returned
    /// [`Load`] ends. `None` if there is no such endpoint.
    pub fn start_at(&self, index: usize, now: Instant) -> Option<Load> {
        let (_, endpoint) = self.endpoints.get(index)?;
        endpoint.start(now);
        Some(Load {
            endpoint: endpoint.clone(),
            started: now,
            ended: false,
        })
    }

    /// The cost of one more call to endpoint `index` at `now`: its expected latency in
    /// seconds × (its outstanding calls + 1). What [`pick_at`](Balancer::pick_at) compares.
    pub fn cost_at(&self, index: usize, now: Instant) -> Option<f64> {
        let (_, endpoint) = self.endpoints.get(index)?;
        Some(endpoint.cost_at(now) / 1e9)
    }

    /// The latency endpoint `index` is expected to have at `now`: its decayed peak-EWMA, or
    /// the mean age of its outstanding calls if longer.
    pub fn latency_at(&self, index: usize, now: Instant) -> Option<Duration> {
        let (_, endpoint) = self.endpoints.get(index)?;
        Some(Duration::from_nanos(endpoint.latency_at(now) as u64))
    }

    /// Calls outstanding on endpoint `index`.
    pub fn pending(&self, index: usize) -> Option<u32> {
        self.endpoints.get(index).map(|(_, e)| e.pending())
    }

    /// The mean expected latency over every endpoint at `now` (zero when empty): the yardstick
    /// of [`is_slow_at`](Balancer::is_slow_at). A scan of the set; compute it once and pass it
    /// to [`is_slow_against_at`](Balancer::is_slow_against_at) to judge several endpoints.
    pub fn mean_latency_at(&self, now: Instant) -> Duration {
        if self.endpoints.is_empty() {
            return Duration::ZERO;
        }
        let sum: f64 = self.endpoints.iter().map(|(_, e)| e.latency_at(now)).sum();
        Duration::from_nanos((sum / self.endpoints.len() as f64) as u64)
    }

    /// Whether endpoint `index` is on probation for being slow at `now`: its expected latency
    /// is over `slow_factor` × the mean of the other endpoints' (an outlier; never with fewer
    /// than two endpoints). Replica-aware hedging sends no hedge there.
    pub fn is_slow_at(&self, index: usize, now: Instant) -> bool {
        self.is_slow_against_at(index, now, self.mean_latency_at(now))
    }

    /// [`is_slow_at`](Balancer::is_slow_at) given the [mean over every
    /// endpoint](Balancer::mean_latency_at), computed once beforehand.
    pub fn is_slow_against_at(&self, index: usize, now: Instant, mean: Duration) -> bool {
        let n = self.endpoints.len();
        let Some((_, endpoint)) = self.endpoints.get(index) else {
            return false;
        };
        if n < 2 {
            return false;
        }
        let own = endpoint.latency_at(now);
        let others = (mean.as_nanos() as f64 * n as f64 - own).max(0.0) / (n - 1) as f64;
        own > others * self.config.slow_factor
    }

    fn cheaper_at(&self, now: Instant, a: usize, b: usize) -> usize {
        let cost = |i: usize| self.endpoints[i].1.cost_at(now);
        if cost(b) < cost(a) {
            b
        } else {
            a
        }
    }

    /// Two distinct indices in `0..n` (n ≥ 2), uniformly.
    fn two_of(&self, n: usize) -> (usize, usize) {
        let r = self.next_random();
        let n64 = n as u64;
        let a = (r % n64) as usize;
        // The second from the other n - 1, shifted past the first.
        let b = ((r >> 32) % (n64 - 1)) as usize;
        (a, if b >= a { b + 1 } else { b })
    }

    fn next_random(&self) -> u64 {
        let mut z = self
            .rng
            .fetch_add(0x9E37_79B9_7F4A_7C15, Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl<K: fmt::Debug> fmt::Debug for Balancer<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Balancer")
            .field(
                "endpoints",
                &self.endpoints.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("decay", &self.config.decay)
            .field("initial_rtt", &self.config.initial_rtt)
            .field("slow_factor", &self.config.slow_factor)
            .finish()
    }
}

/// Builds a [`Balancer`]; every value is checked by [`build`](BalancerBuilder::build).
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct BalancerBuilder {
    decay: Duration,
    initial_rtt: Duration,
    slow_factor: f64,
    seed: Option<u64>,
}

impl Default for BalancerBuilder {
    fn default() -> Self {
        BalancerBuilder {
            decay: Duration::from_secs(10),
            initial_rtt: Duration::from_millis(1),
            slow_factor: 3.0,
            seed: None,
        }
    }
}

impl BalancerBuilder {
    /// The time constant over which the estimate forgets (default 10 s, as Finagle): an idle
    /// endpoint's estimate falls to 1/e of itself in `decay`, and a new sample after an idle
    /// spell of `decay` counts for 63 % of the estimate. Must be positive.
    pub fn decay(mut self, decay: Duration) -> Self {
        self.decay = decay;
        self
    }

    /// The estimate of an endpoint before its first call ends (default 1 ms).
    pub fn initial_rtt(mut self, rtt: Duration) -> Self {
        self.initial_rtt = rtt;
        self
    }

    /// An endpoint is on probation for being slow when its expected latency exceeds this
    /// many times the mean of the others' (a finite number ≥ 1.0; default 3.0).
    pub fn slow_factor(mut self, factor: f64) -> Self {
        self.slow_factor = factor;
        self
    }

    /// Seeds the random draws, so that one thread's picks repeat exactly (default: random).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Checks every value and builds a balancer over `endpoints`.
    pub fn build<K: PartialEq>(
        self,
        endpoints: impl IntoIterator<Item = K>,
    ) -> Result<Balancer<K>, ConfigError> {
        validate::positive_duration("decay", self.decay, "the estimate must forget")?;
        validate::nanos("decay", self.decay)?;
        validate::nanos("initial_rtt", self.initial_rtt)?;
        validate::factor("slow_factor", self.slow_factor)?;
        let mut balancer = Balancer {
            endpoints: Vec::new(),
            config: Config {
                decay: self.decay,
                initial_rtt: self.initial_rtt,
                slow_factor: self.slow_factor,
            },
            rng: AtomicU64::new(self.seed.unwrap_or_else(|| fastrand::u64(..))),
        };
        for key in endpoints {
            balancer.insert(key);
        }
        Ok(balancer)
    }
}
