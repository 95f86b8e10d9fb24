//! [`KeyedRateLimiter`]: one bucket per key (per client, per host), in bounded memory.

use std::collections::hash_map::{Entry, HashMap, RandomState};
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use super::gcra::{self, Params};
use super::handle::Permit;
use super::rejected::Rejected;
use super::wait::AcquireKey;
use crate::metrics::{self, Counter, PolicyName};
use crate::time::Timer;

/// A shard on a cache line of its own, so that threads working on different shards do not
/// share one.
#[derive(Debug)]
#[repr(align(128))]
struct Shard<K> {
    /// Each key's theoretical arrival time, in nanoseconds since the origin.
    buckets: Mutex<HashMap<K, u64, RandomState>>,
    /// The most keys this shard holds.
    capacity: usize,
}

/// A rate limiter with one bucket per key, in memory that stays bounded.
///
/// Each key gets the rate and burst the builder set, independently of the others. The keys are
/// spread over [`shards`](super::RateLimiterBuilder::shards), each a small hash map under its own
/// lock, so calls for different keys rarely wait on each other.
///
/// # Memory
///
/// At most [`max_keys`](super::RateLimiterBuilder::max_keys) keys are remembered (each shard
/// holds its share, allocated up front), so a flood of new keys cannot grow the limiter.
///
/// * **Idle keys expire, exactly.** A key whose bucket has refilled is indistinguishable from
///   a key never seen, so forgetting it changes no decision. Such keys are removed from a
///   shard whenever it is full and a new key arrives, and from all shards by
///   [`retain_recent_at`](Self::retain_recent_at).
/// * **When a shard is full of active keys**, a new key takes the place of the key whose bucket
///   is closest to full (it would refill first). That key's next call starts from a full bucket,
///   so it may get at most one extra burst; new keys are never refused for lack of room, so a
///   flood of new keys cannot lock out clients that come later. Finding that key scans the
///   shard, so under such a flood a new key costs O(shard size); known keys stay O(1).
///
/// ```
/// use std::time::Duration;
/// use tailguard::rate::RateLimiter;
/// use tailguard::time::{ManualTimer, Timer};
///
/// let timer = ManualTimer::new();
/// let per_client = RateLimiter::builder()
///     .rate(1, Duration::from_secs(1))
///     .max_keys(1000)
///     .build_keyed_with::<String, _>(timer.clone())?;
///
/// let now = timer.now();
/// assert!(per_client.try_acquire_at(&"alice".to_owned(), now).is_ok());
/// assert!(per_client.try_acquire_at(&"alice".to_owned(), now).is_err());
/// assert!(per_client.try_acquire_at(&"bob".to_owned(), now).is_ok()); // a bucket of its own
///
/// // Once their buckets refill, idle keys are forgotten.
/// assert_eq!(per_client.retain_recent_at(now + Duration::from_secs(1)), 0);
/// # Ok::<(), tailguard::ConfigError>(())
/// ```
pub struct KeyedRateLimiter<K, T: Timer> {
    shards: Box<[Shard<K>]>,
    hasher: RandomState,
    params: Params,
    origin: Instant,
    timer: T,
    /// `tailguard_rate_rejections_total`, every key together.
    rejections: Counter,
}

impl<K: Hash + Eq + Clone, T: Timer> KeyedRateLimiter<K, T> {
    pub(super) fn new(
        params: Params,
        max_keys: usize,
        shards: usize,
        name: &PolicyName,
        timer: T,
    ) -> Self {
        let shards = shards.min(max_keys);
        let hasher = RandomState::new();
        let shards = (0..shards)
            .map(|i| {
                // Spread max_keys over the shards, the remainder to the first ones.
                let capacity = max_keys / shards + usize::from(i < max_keys % shards);
                Shard {
                    buckets: Mutex::new(HashMap::with_capacity_and_hasher(
                        capacity,
                        hasher.clone(),
                    )),
                    capacity,
                }
            })
            .collect();
        KeyedRateLimiter {
            shards,
            hasher,
            params,
            origin: timer.now(),
            timer,
            rejections: Counter::new(metrics::RATE_REJECTIONS, name),
        }
    }

    fn since_origin(&self, now: Instant) -> u64 {
        super::handle::nanos_since(self.origin, now)
    }

    fn shard(&self, key: &K) -> &Shard<K> {
        let hash = self.hasher.hash_one(key);
        // The high bits: the map itself uses the low ones.
        &self.shards[((hash >> 32) as usize) % self.shards.len()]
    }

    fn lock(shard: &Shard<K>) -> MutexGuard<'_, HashMap<K, u64, RandomState>> {
        // Every update is one assignment or insertion: a poisoned map is still consistent.
        shard.buckets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a token from `key`'s bucket at `now` (sans-IO: no clock read). A known key
    /// costs a hash, a lock and no allocation; a new key is cloned into the map (which never
    /// grows: room is made as described under "Memory").
    pub fn try_acquire_at(&self, key: &K, now: Instant) -> Result<Permit, Rejected> {
        self.try_acquire_n_at(key, 1, now)
    }

    /// Takes `n` tokens at once from `key`'s bucket at `now`, or none.
    pub fn try_acquire_n_at(&self, key: &K, n: u32, now: Instant) -> Result<Permit, Rejected> {
        self.take_n_at(key, n, now)
            .inspect_err(|_| self.count_rejection())
    }

    /// Counts one refusal in `tailguard_rate_rejections_total`.
    pub(super) fn count_rejection(&self) {
        self.rejections.increment();
    }

    /// `n` tokens from `key`'s bucket at `now`, or the refusal, not counted (a waiting
    /// caller's attempts).
    pub(super) fn take_n_at(&self, key: &K, n: u32, now: Instant) -> Result<Permit, Rejected> {
        let t = self.since_origin(now);
        let shard = self.shard(key);
        let mut buckets = Self::lock(shard);
        if let Some(tat) = buckets.get_mut(key) {
            *tat = self.params.admit(*tat, n, t)?;
            return Ok(Permit);
        }
        // A new key starts with a full bucket (as a forgotten one does).
        let tat = self.params.admit(0, n, t)?;
        if buckets.len() >= shard.capacity {
            make_room(&mut buckets, t);
        }
        match buckets.entry(key.clone()) {
            Entry::Vacant(slot) => {
                slot.insert(tat);
            }
            Entry::Occupied(_) => unreachable!("the key was looked up under the same lock"),
        }
        Ok(Permit)
    }

    /// [`try_acquire_at`](Self::try_acquire_at) the timer's now.
    pub fn try_acquire(&self, key: &K) -> Result<Permit, Rejected> {
        self.try_acquire_at(key, self.timer.now())
    }

    /// Waits for a token from `key`'s bucket until `deadline` at the latest; refuses at once if
    /// it would come later. Holds nothing while it waits.
    pub fn acquire_until<'a>(&'a self, key: &'a K, deadline: Instant) -> AcquireKey<'a, K, T> {
        AcquireKey::new(self, key, Some(deadline))
    }

    /// Waits for a token from `key`'s bucket, as long as it takes.
    pub fn until_ready<'a>(&'a self, key: &'a K) -> AcquireKey<'a, K, T> {
        AcquireKey::new(self, key, None)
    }

    /// Whole tokens in `key`'s bucket at `now` (a key not remembered has a full bucket).
    pub fn available_at(&self, key: &K, now: Instant) -> u32 {
        let t = self.since_origin(now);
        let tat = Self::lock(self.shard(key)).get(key).copied().unwrap_or(0);
        gcra::available(&self.params, tat, t)
    }

    /// Forgets every key whose bucket has refilled by `now` (which changes no decision) and
    /// returns how many keys remain. Call it now and then to give memory back sooner than the
    /// shards' own sweeps do.
    pub fn retain_recent_at(&self, now: Instant) -> usize {
        let t = self.since_origin(now);
        self.shards
            .iter()
            .map(|shard| {
                let mut buckets = Self::lock(shard);
                buckets.retain(|_, tat| *tat > t);
                buckets.len()
            })
            .sum()
    }

    /// Keys remembered now.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| Self::lock(s).len()).sum()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most keys remembered at once.
    pub fn max_keys(&self) -> usize {
        self.shards.iter().map(|s| s.capacity).sum()
    }

    /// Tokens each bucket holds when full.
    pub fn burst(&self) -> u32 {
        self.params.burst
    }

    /// The timer this limiter reads.
    pub fn timer(&self) -> &T {
        &self.timer
    }
}

/// A full shard about to take a new key: drop every key whose bucket is full at `t`, or, if
/// none is, the one that will be full first.
fn make_room<K: Hash + Eq + Clone>(buckets: &mut HashMap<K, u64, RandomState>, t: u64) {
    let before = buckets.len();
    buckets.retain(|_, tat| *tat > t);
    if buckets.len() < before {
        return;
    }
    let soonest = buckets
        .iter()
        .min_by_key(|(_, tat)| **tat)
        .map(|(key, _)| key.clone());
    if let Some(key) = soonest {
        buckets.remove(&key);
    }
}

impl<K, T: Timer> fmt::Debug for KeyedRateLimiter<K, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateLimiter")
            .field("interval_nanos", &self.params.interval)
            .field("burst", &self.params.burst)
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}
