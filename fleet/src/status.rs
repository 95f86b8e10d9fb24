//! What the sharing is doing: a snapshot for metrics and health checks.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Whether the instance is deciding with the fleet or alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// The last sync with Redis succeeded: the fleet's entries are merged.
    Shared,
    /// Redis is unreachable (or not reached yet): every breaker decides on its own window, as
    /// it does without a fleet, and every budget on its own balance once the others' are
    /// stale. The background thread reconnects every interval.
    Local,
}

impl Mode {
    /// `shared` or `local`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Mode::Shared => "shared",
            Mode::Local => "local",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A snapshot of a [`Fleet`](crate::Fleet)'s sharing, from [`Fleet::status`](crate::Fleet::status).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Status {
    /// Shared or local.
    pub mode: Mode,
    /// Syncs that reached Redis.
    pub syncs: u64,
    /// Syncs that did not (connection refused, timed out, an error reply).
    pub syncs_failed: u64,
    /// Times the fleet opened a local breaker.
    pub fleet_trips: u64,
    /// Other instances with fresh entries at the last sync, summed over the shared breakers,
    /// budgets and rate limiters.
    pub peers: usize,
    /// Breakers shared.
    pub breakers: usize,
    /// Retry budgets shared.
    pub budgets: usize,
    /// Rate limiters shared.
    pub rate_limiters: usize,
}

/// The counters behind [`Status`], written by the background thread.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) shared: AtomicBool,
    pub(crate) syncs: AtomicU64,
    pub(crate) syncs_failed: AtomicU64,
    pub(crate) fleet_trips: AtomicU64,
    pub(crate) peers: AtomicUsize,
    pub(crate) breakers: AtomicUsize,
    pub(crate) budgets: AtomicUsize,
    pub(crate) rate_limiters: AtomicUsize,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> Status {
        Status {
            mode: if self.shared.load(Ordering::Acquire) {
                Mode::Shared
            } else {
                Mode::Local
            },
            syncs: self.syncs.load(Ordering::Relaxed),
            syncs_failed: self.syncs_failed.load(Ordering::Relaxed),
            fleet_trips: self.fleet_trips.load(Ordering::Relaxed),
            peers: self.peers.load(Ordering::Relaxed),
            breakers: self.breakers.load(Ordering::Relaxed),
            budgets: self.budgets.load(Ordering::Relaxed),
            rate_limiters: self.rate_limiters.load(Ordering::Relaxed),
        }
    }
}
