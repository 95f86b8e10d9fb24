//! Circuit breakers that open for the whole fleet: a [`Fleet`] shares tailguard breakers
//! across the instances of a service through Redis (or Valkey), in one background thread,
//! never on the call path.
//!
//! Every instance keeps deciding locally and lock-free; the breaker's call path is exactly the
//! one it has without a fleet (the sharing reads the counts the breaker keeps anyway). Every
//! [`interval`](FleetBuilder::interval), the background thread
//!
//! 1. publishes this instance's entry for each shared breaker into the Redis hash
//!    `tailguard:{namespace}:breaker:{name}`, field = the instance id, value = the time, the
//!    calls, failures and slow calls of its share of the fleet's window (only while closed:
//!    its newest `window / instances` calls, so the fleet judges the last `window` calls across
//!    the fleet; a time window gives all its calls) and whether the breaker is open on its own
//!    evidence; the key gets a `PEXPIRE` of [`stale_after`](FleetBuilder::stale_after),
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
//! ## When Redis is down or slow
//!
//! The breakers **fall back to their local windows**: they fail neither open nor closed, they
//! behave as without a fleet. Calls see no added latency (they never wait for the thread); the
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

mod entry;
mod ledger;
pub mod local;
mod status;
mod sync;

use std::fmt;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tailguard::breaker::CircuitBreaker;
use tailguard::time::Timer;
use tailguard::ConfigError;

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

/// Shares circuit breakers with the other instances of a service through Redis; see the
/// [crate documentation](crate). Dropping it stops the background thread and removes this
/// instance's entries (the breakers keep working, locally).
pub struct Fleet {
    inner: Arc<Inner>,
    /// The names of the breakers shared, to refuse a second of the same name.
    names: Mutex<Vec<String>>,
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
        let name = breaker.state_machine().name().to_owned();
        let key = format!("tailguard:{}:breaker:{name}", self.inner.settings.namespace);
        let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        if names.contains(&name) {
            return Err(ConfigError::new(
                "name",
                format!("a breaker named {name:?} is already shared by this fleet"),
            ));
        }
        names.push(name);
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
