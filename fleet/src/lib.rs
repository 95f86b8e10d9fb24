//! Circuit breakers that open for the whole fleet, retry budgets and rate limits that hold
//! for it: a [`Fleet`] shares tailguard breakers, budgets and rate limiters across the
//! instances of a service through
//! Redis (or Valkey), in one background thread, never on the call path. The keys and values
//! are described in `fleet/SCHEMA.md`, so instances in other languages can join.
//!
//! Every instance keeps deciding locally and lock-free; the breaker's call path is exactly the
//! one it has without a fleet (the sharing reads the counts the breaker keeps anyway). Every
//! [`interval`](FleetBuilder::interval), the background thread
//!
//! 1. publishes this instance's entry for each shared breaker into the Redis hash
//!    `tailguard:{namespace}:breaker:{name}`, field = the instance id, value = the time, the
//!    calls, failures and slow calls of its share of the fleet's window (only while closed:
//!    its newest `window / instances` calls, so the fleet judges the last `window` calls across
//!    the fleet; a time window gives only the calls that will still be in its window one
//!    interval on, when the others read them, so nobody counts calls older than its own
//!    window) and whether the breaker is open on its own evidence; the key gets a `PEXPIRE` of [`stale_after`](FleetBuilder::stale_after),
//! 2. reads the other instances' entries, ignores (and removes) those older than
//!    `stale_after`, and
//! 3. trips the local breaker ([`CircuitBreaker::trip`]) when the **fleet's** failure rate
//!    (or slow-call rate) over the fresh entries crosses the breaker's own threshold with at
//!    least its `minimum_calls`, or (unless switched off with
//!    [`follow_open`](FleetBuilder::follow_open)) when another instance's breaker opened on
//!    its own evidence. A breaker opened by the fleet then probes the dependency itself, as
//!    after any trip: it does not publish that opening, so openings do not echo around the
//!    fleet.
//!
//! An opening reaches every other instance within two intervals (one to publish, one to
//! read), plus a round trip.
//!
//! ## Retry budgets
//!
//! [`Fleet::share_budget`] shares a [`RetryBudget`] under a name: every interval the thread
//! publishes the budget's own balance (its calls' deposits less its retries, in thousandths
//! of a retry: [`RetryBudget::balance_at`]) into `tailguard:{namespace}:budget:{name}`, reads
//! the others', and sets the budget's remote balance
//! ([`RetryBudget::set_remote_balance`]) so that this instance may spend an equal share of the
//! fleet's balance, `floor(F / n)` of the fleet's `F` over `n` instances, plus what its own
//! calls deposit until the next sync. Retry loops keep deciding locally and lock-free (one
//! more atomic load per withdrawal, none per call).
//!
//! **The bound.** Were every read current, the shares would add up to the fleet's balance and
//! the fleet would never retry more than `ratio × its calls` over the window (plus the floors,
//! which stay per instance: `n × min_per_second`). Reads are up to one interval old: what the
//! others spent since they last published is not yet seen, and their deposits that leave the
//! window are seen leaving an interval late. So over any window the fleet's retries are at
//! most `ratio × fleet calls + n × min_per_second × (window + 1 s)` plus, per sync, the
//! retries the other instances were granted in the interval before it (each instance spends
//! at most its share between syncs, so that is at most `(n - 1) / n` of the fleet's balance
//! at the sync before). In a steady retry storm the balance is near zero, and so is the
//! overshoot. At a storm's start, with a balance banked while healthy, the fleet can run
//! ahead of its budget by part of that balance for an interval or two: in virtual time with
//! `n = 3`, 662 retries ahead with 2,000 banked (against 1,974 if every instance could spend
//! the whole balance); the overdraft shows in the instances' published balances and is paid
//! back from later calls' deposits, so over the window the fleet's retries end at its ratio
//! (`budget.rs`'s storm test; `fleet/tests/budgets.rs` against a real redis-server). An instance that retries more than the others gets `1/n` of
//! the surplus per interval, and what it leaves is divided again at the next sync: it may
//! need a few intervals to spend a surplus the others do not use.
//!
//! ## Rate limiters
//!
//! [`Fleet::share_rate`] shares a [`RateLimiter`] under a name so the fleet holds its rate
//! together: every instance's limiter is configured at the **fleet's** rate, and every
//! interval the thread measures the instance's demand (tokens taken plus calls refused, per
//! second), publishes it into `tailguard:{namespace}:rate:{name}`, divides the rate among the
//! fresh instances in proportion to their demands (each at least 5% of an equal share, so an
//! idle instance can start), and takes from the local bucket the tokens the rest of the fleet
//! was given since the last sync ([`RateLimiter::charge_at`]: the bucket may run into debt).
//! Calls keep deciding locally with one compare-and-swap, as without a fleet.
//!
//! **The bound.** Over any window `W`, the fleet admits at most `rate × W`, plus each
//! instance's bucket (`n × burst`: give each instance the fleet's burst divided by `n`),
//! plus the tokens not yet charged when the window ends (each instance is charged for an
//! interval at the sync after it: at most `(n - 1) × rate × (interval + a late sync's delay)`
//! in all), plus the drift of shares computed from reads a fraction of an interval apart
//! while demands change. With `n = 3`, a 50 ms interval and a burst of 2, that is about 1.2%
//! of the rate over 10 s; measured against a real redis-server, the fleet stays at or under
//! its rate (`fleet/tests/rates.rs`, `cargo run -p tailguard-fleet --example
//! rate_overshoot`; BENCHMARKS.md). Within an interval an instance's share comes in a burst
//! at the fleet's rate (the charge pushes its bucket into debt, then it refills at the full
//! rate), so the fleet's rate is held on average over intervals, not call by call.
//!
//! ## When Redis is down or slow
//!
//! The breakers **fall back to their local windows**: they fail neither open nor closed, they
//! behave as without a fleet. The budgets **fall back to their own balance** once no sync has
//! reached Redis for [`stale_after`](FleetBuilder::stale_after) (their remote balance is set
//! to 0): each instance may retry what its own calls earned plus its floor, as without a
//! fleet (a fleet keeping the others' last balances could spend them twice over). A rate
//! limiter does as its [`RateFallback`] says: by default it **keeps its last share** (fails
//! closed: the fleet keeps to its rate if its instances stay, rather than every instance
//! taking the whole rate, `n` times the load on the dependency, exactly when nobody can tell);
//! [`RateFallback::FullRate`] takes the full rate once no sync has reached Redis for
//! `stale_after` (fails open, for limits that protect the instance itself). Either way calls
//! are never slowed by the outage. Calls see no added latency (they never wait for the thread); the
//! thread's connect, read and write are bounded by [`io_timeout`](FleetBuilder::io_timeout)
//! (100 ms by default). One line is logged per outage (and one when Redis is back), the
//! [`Status`] says [`Mode::Local`] and counts `syncs_failed`, the thread reconnects every
//! interval and shares again as soon as Redis answers.
//!
//! ## Clocks
//!
//! Entries carry the publisher's wall-clock time; an entry is fresh while it is younger than
//! `stale_after` on the reader's clock. Instances' clocks should agree to well within an
//! interval (NTP does). Openings are told apart by an id, not by comparing clocks.
//!
//! ```no_run
//! use std::time::Duration;
//! use tailguard::breaker::CircuitBreaker;
//! use tailguard_fleet::Fleet;
//!
//! let fleet = Fleet::builder("redis://127.0.0.1:6379/")
//!     .namespace("checkout")
//!     .interval(Duration::from_millis(250))
//!     .build()?;
//! let payments = CircuitBreaker::builder().name("payments").build()?;
//! fleet.share(&payments)?;
//! // Use `payments` as usual; it now also opens when the fleet sees the dependency fail.
//! # Ok::<(), tailguard::ConfigError>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod budget;
mod entry;
mod ledger;
pub mod local;
mod rate;
mod status;
mod sync;
mod value;

use std::fmt;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tailguard::breaker::CircuitBreaker;
use tailguard::rate::RateLimiter;
use tailguard::retry::RetryBudget;
use tailguard::time::Timer;
use tailguard::ConfigError;

use self::budget::BudgetSlot;
pub use self::rate::RateFallback;
use self::rate::RateSlot;
use self::status::Counters;
pub use self::status::{Mode, Status};
use self::sync::{Inner, Shared, Slot};

type Log = Arc<dyn Fn(&str) + Send + Sync>;

/// A fleet's settings, checked when built.
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) url: String,
    pub(crate) namespace: String,
    pub(crate) instance_id: String,
    pub(crate) interval: Duration,
    pub(crate) stale_after: Duration,
    pub(crate) io_timeout: Duration,
    pub(crate) follow_open: bool,
    pub(crate) log: Log,
}

/// Builds a [`Fleet`]; see [`Fleet::builder`].
#[must_use = "a builder does nothing until built"]
pub struct FleetBuilder {
    url: String,
    namespace: String,
    instance_id: Option<String>,
    interval: Duration,
    stale_after: Option<Duration>,
    io_timeout: Option<Duration>,
    follow_open: bool,
    log: Option<Log>,
}

impl FleetBuilder {
    /// The namespace of the keys (`tailguard:{namespace}:breaker:{name}`): one per service
    /// (default `default`).
    pub fn namespace(mut self, namespace: &str) -> Self {
        namespace.clone_into(&mut self.namespace);
        self
    }

    /// This instance's field in every hash (default: the process id and a random suffix).
    /// Each instance needs its own.
    pub fn instance_id(mut self, id: &str) -> Self {
        self.instance_id = Some(id.to_owned());
        self
    }

    /// How often to publish and merge (default 250 ms; 10 ms to 60 s).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// How old an entry may be and still count, and the keys' expiry (default 3 intervals;
    /// at least 2 intervals).
    pub fn stale_after(mut self, stale_after: Duration) -> Self {
        self.stale_after = Some(stale_after);
        self
    }

    /// The bound on connecting to Redis and on each read and write (default 100 ms or the
    /// interval, whichever is shorter; 1 ms to the interval).
    pub fn io_timeout(mut self, timeout: Duration) -> Self {
        self.io_timeout = Some(timeout);
        self
    }

    /// Whether another instance's breaker opening on its own evidence opens this one
    /// (default `true`). Off, only the fleet's summed failure rate does.
    pub fn follow_open(mut self, follow: bool) -> Self {
        self.follow_open = follow;
        self
    }

    /// Where the fleet's log lines go (default: standard error, prefixed `tailguard-fleet:`):
    /// one per Redis outage, one when it ends, one per breaker the fleet opens.
    pub fn on_log(mut self, log: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.log = Some(Arc::new(log));
        self
    }

    /// The fleet, with its background thread started. Connecting happens in that thread: a
    /// Redis that is down now is not an error here (the fleet starts in [`Mode::Local`]).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the field: `url` (not a Redis URL), `namespace` or
    /// `instance_id` (empty), `interval`, `stale_after` or `io_timeout` (out of range).
    pub fn build(self) -> Result<Fleet, ConfigError> {
        let client = redis::Client::open(self.url.as_str())
            .map_err(|e| ConfigError::new("url", format!("is not a Redis URL: {e}")))?;
        if self.namespace.is_empty() {
            return Err(ConfigError::new("namespace", "must not be empty"));
        }
        let instance_id = self.instance_id.unwrap_or_else(default_instance_id);
        if instance_id.is_empty() {
            return Err(ConfigError::new("instance_id", "must not be empty"));
        }
        if !(Duration::from_millis(10)..=Duration::from_secs(60)).contains(&self.interval) {
            return Err(ConfigError::new(
                "interval",
                format!("must be between 10 ms and 60 s, got {:?}", self.interval),
            ));
        }
        let stale_after = self.stale_after.unwrap_or(self.interval * 3);
        if stale_after < self.interval * 2 {
            return Err(ConfigError::new(
                "stale_after",
                format!(
                    "must be at least two intervals ({:?}), got {stale_after:?}",
                    self.interval * 2
                ),
            ));
        }
        let io_timeout = self
            .io_timeout
            .unwrap_or(Duration::from_millis(100).min(self.interval));
        if io_timeout < Duration::from_millis(1) || io_timeout > self.interval {
            return Err(ConfigError::new(
                "io_timeout",
                format!(
                    "must be between 1 ms and the interval ({:?}), got {:?}",
                    self.interval, io_timeout
                ),
            ));
        }
        let settings = Settings {
            url: self.url,
            namespace: self.namespace,
            instance_id,
            interval: self.interval,
            stale_after,
            io_timeout,
            follow_open: self.follow_open,
            log: self
                .log
                .unwrap_or_else(|| Arc::new(|line: &str| eprintln!("tailguard-fleet: {line}"))),
        };
        let inner = Arc::new(Inner {
            settings,
            counters: Counters::default(),
            pending: Mutex::new(Vec::new()),
            pending_budgets: Mutex::new(Vec::new()),
            pending_rates: Mutex::new(Vec::new()),
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        let thread = {
            let inner = Arc::clone(&inner);
            std::thread::Builder::new()
                .name("tailguard-fleet".to_owned())
                .spawn(move || sync::run(inner, client))
                .map_err(|e| ConfigError::new("thread", format!("could not be started: {e}")))?
        };
        Ok(Fleet {
            inner,
            names: Mutex::new(Vec::new()),
            shares: Mutex::new(Vec::new()),
            thread: Some(thread),
        })
    }
}

fn default_instance_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{}-{nanos:08x}", std::process::id())
}

/// Shares circuit breakers, retry budgets and rate limiters with the other instances of a
/// service through Redis; see the [crate documentation](crate). Dropping it stops the
/// background thread and removes this instance's entries: the breakers keep working on their
/// own windows, the budgets on their own balance (their remote balance set back to 0), the
/// rate limiters at their full rate (no longer charged; a debt already charged is paid as
/// usual).
pub struct Fleet {
    inner: Arc<Inner>,
    /// The keys of the objects shared, to refuse a second of the same name and kind.
    names: Mutex<Vec<String>>,
    /// The shares of the rate limiters shared, by name (`f64` bits).
    shares: Mutex<Vec<(String, Arc<std::sync::atomic::AtomicU64>)>>,
    thread: Option<JoinHandle<()>>,
}

impl Fleet {
    /// A builder for a fleet synced through the Redis at `url` (`redis://host:port/db`).
    pub fn builder(url: &str) -> FleetBuilder {
        FleetBuilder {
            url: url.to_owned(),
            namespace: "default".to_owned(),
            instance_id: None,
            interval: Duration::from_millis(250),
            stale_after: None,
            io_timeout: None,
            follow_open: true,
            log: None,
        }
    }

    /// Shares `breaker` (a clone of the handle is kept) under its [name](CircuitBreaker): the
    /// instances that share a breaker of the same name see one dependency. From the next sync
    /// on, the fleet may open it.
    ///
    /// # Errors
    ///
    /// `name` if a breaker of that name is already shared by this fleet.
    pub fn share<T: Timer>(&self, breaker: &CircuitBreaker<T>) -> Result<(), ConfigError> {
        let name = breaker.state_machine().name();
        let key = self.claim("breaker", name)?;
        let mut pending = self.inner.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.push(Slot {
            breaker: Box::new(breaker.clone()) as Box<dyn Shared>,
            key,
            ledger: Default::default(),
            instances: 1,
        });
        self.inner
            .counters
            .breakers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Shares `budget` (a clone of the handle is kept) under `name` with the instances that
    /// share a budget of that name, so that retries across the fleet stay within the fleet's
    /// ratio of calls. The budget reads the system clock (as
    /// [`RetryBudget::deposit`] and [`RetryBudget::try_withdraw`] do); for a budget driven by a
    /// timer, use [`share_budget_with`](Self::share_budget_with).
    ///
    /// Every interval the thread publishes the budget's own balance
    /// ([`RetryBudget::balance_at`]) and sets its remote balance
    /// ([`RetryBudget::set_remote_balance`]) to its equal share of the fleet's balance less
    /// its own; the calls keep deciding locally and lock-free. See the crate docs, "Retry
    /// budgets", for the bound, and SCHEMA.md for the format.
    ///
    /// # Errors
    ///
    /// `name` if it is empty or a budget of that name is already shared by this fleet.
    ///
    /// ```no_run
    /// use tailguard::retry::RetryBudget;
    /// use tailguard_fleet::Fleet;
    ///
    /// let fleet = Fleet::builder("redis://127.0.0.1:6379/").namespace("checkout").build()?;
    /// let budget = RetryBudget::builder().ratio(0.1).build()?;
    /// fleet.share_budget("payments", &budget)?;
    /// // Retry loops use `budget` as usual; it now holds for the fleet.
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    pub fn share_budget(&self, name: &str, budget: &RetryBudget) -> Result<(), ConfigError> {
        self.share_budget_from(name, budget, Box::new(std::time::Instant::now))
    }

    /// [`share_budget`](Self::share_budget) for a budget whose instants come from `timer`
    /// (the budget's window moves by that clock).
    ///
    /// # Errors
    ///
    /// As [`share_budget`](Self::share_budget).
    pub fn share_budget_with<T: Timer>(
        &self,
        name: &str,
        budget: &RetryBudget,
        timer: T,
    ) -> Result<(), ConfigError> {
        self.share_budget_from(name, budget, Box::new(move || timer.now()))
    }

    fn share_budget_from(
        &self,
        name: &str,
        budget: &RetryBudget,
        now: Box<dyn Fn() -> std::time::Instant + Send>,
    ) -> Result<(), ConfigError> {
        let key = self.claim("budget", name)?;
        let mut pending = self
            .inner
            .pending_budgets
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        pending.push(BudgetSlot {
            budget: budget.clone(),
            now,
            key,
        });
        self.inner
            .counters
            .budgets
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Shares `limiter` (a clone of the handle is kept) under `name`: the instances that share
    /// a limiter of that name hold its rate **together**. Configure every instance's limiter
    /// at the fleet's rate (and, since each instance's bucket holds its own burst, a burst of
    /// the fleet's burst divided by the instances).
    ///
    /// Every interval the thread measures this instance's demand (tokens taken, from
    /// [`RateLimiter::full_at`], plus calls refused, [`RateLimiter::refusals`]), publishes it
    /// into `tailguard:{namespace}:rate:{name}`, divides the rate among the fresh instances in
    /// proportion to their demands (each at least 5% of an equal share), and takes from the
    /// local bucket the tokens the rest of the fleet was given since the last sync
    /// ([`RateLimiter::charge_at`]). Calls keep deciding locally, lock-free (one compare-and-
    /// swap, as without a fleet). `fallback` says what to do while Redis is down. See the crate
    /// docs, "Rate limiters", for the bound.
    ///
    /// # Errors
    ///
    /// `name` if it is empty or a rate limiter of that name is already shared by this fleet.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use tailguard::rate::RateLimiter;
    /// use tailguard_fleet::{Fleet, RateFallback};
    ///
    /// let fleet = Fleet::builder("redis://127.0.0.1:6379/").namespace("checkout").build()?;
    /// // 1,000 calls a second across the fleet.
    /// let limiter = RateLimiter::builder().rate(1_000, Duration::from_secs(1)).build()?;
    /// fleet.share_rate("payments", &limiter, RateFallback::LastShare)?;
    /// # Ok::<(), tailguard::ConfigError>(())
    /// ```
    pub fn share_rate<T: Timer>(
        &self,
        name: &str,
        limiter: &RateLimiter<T>,
        fallback: RateFallback,
    ) -> Result<(), ConfigError> {
        let key = self.claim("rate", name)?;
        let share = Arc::new(std::sync::atomic::AtomicU64::new(1.0_f64.to_bits()));
        self.shares
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((name.to_owned(), Arc::clone(&share)));
        self.inner
            .pending_rates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(RateSlot::new(
                Box::new(limiter.clone()),
                key,
                fallback,
                share,
            ));
        self.inner
            .counters
            .rate_limiters
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// The share of the fleet's rate the limiter shared under `name` has now, in (0, 1] (1
    /// until its first sync, or alone), or `None` if no limiter is shared under that name.
    pub fn rate_share(&self, name: &str) -> Option<f64> {
        let shares = self.shares.lock().unwrap_or_else(|p| p.into_inner());
        shares
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, share)| f64::from_bits(share.load(std::sync::atomic::Ordering::Relaxed)))
    }

    /// The key of the object of `kind` shared under `name`, refused if empty or taken.
    fn claim(&self, kind: &str, name: &str) -> Result<String, ConfigError> {
        if name.is_empty() {
            return Err(ConfigError::new(
                "name",
                format!("a {kind}'s name must not be empty"),
            ));
        }
        let key = format!("tailguard:{}:{kind}:{name}", self.inner.settings.namespace);
        let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        if names.contains(&key) {
            return Err(ConfigError::new(
                "name",
                format!("a {kind} named {name:?} is already shared by this fleet"),
            ));
        }
        names.push(key.clone());
        Ok(key)
    }

    /// What the sharing is doing now.
    pub fn status(&self) -> Status {
        self.inner.counters.snapshot()
    }

    /// This instance's id (its field in the hashes).
    pub fn instance_id(&self) -> &str {
        &self.inner.settings.instance_id
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        *self.inner.stop.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.inner.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl fmt::Debug for Fleet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fleet")
            .field("url", &self.inner.settings.url)
            .field("namespace", &self.inner.settings.namespace)
            .field("instance_id", &self.inner.settings.instance_id)
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}
