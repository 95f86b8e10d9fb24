//! What passes between a caller and the limiter: the [`Permit`] for an admitted call, the
//! [`Outcome`] it reports, and the [`Rejected`] answer, with its [`Reason`], for a refused one.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::limiter::Shared;
use super::Sample;
use crate::priority::Criticality;

/// What a call did, as reported with [`Permit::record_at`]. The names are concurrency-limits'.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The call finished: its latency is a sample.
    Success,
    /// The call was dropped because of load: it timed out, or was shed or refused further
    /// down (a 503, a `RESOURCE_EXHAUSTED`). Its latency is a sample flagged as a drop, which
    /// [`Aimd`](super::Aimd) backs off on and [`Gradient2`](super::Gradient2) measures like any
    /// other. A permit dropped without a report counts as this, with no latency.
    Dropped,
    /// The call says nothing about load (the caller's own bad input, a fast error): released
    /// without a sample.
    Ignored,
}

/// Why a call was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// As many calls as the limit allows are in flight.
    Limit,
    /// The calls in flight fill this class's share of the limit; the rest is kept for more
    /// critical work (see [`Shares`](crate::priority::Shares)).
    Shed,
    /// A probe is re-measuring the no-load latency, and holds the limit low while it does.
    Probe,
}

impl Reason {
    /// Every reason, in the order of [`index`](Self::index).
    pub const ALL: [Reason; 3] = [Reason::Limit, Reason::Shed, Reason::Probe];

    /// `"limit"`, `"shed"` or `"probe"` (a metric label).
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::Limit => "limit",
            Reason::Shed => "shed",
            Reason::Probe => "probe",
        }
    }

    /// 0, 1 or 2: an index into per-reason tables.
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused call: why, its class, and the limit and in-flight count that refused it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejected {
    pub(super) reason: Reason,
    pub(super) class: Criticality,
    pub(super) limit: u32,
    pub(super) in_flight: u32,
}

impl Rejected {
    /// Why the call was refused.
    pub fn reason(&self) -> Reason {
        self.reason
    }

    /// The class of the refused call.
    pub fn class(&self) -> Criticality {
        self.class
    }

    /// The limit when it was refused.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The calls in flight when it was refused.
    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (limit, in_flight, class) = (self.limit, self.in_flight, self.class);
        match self.reason {
            Reason::Limit => write!(
                f,
                "concurrency limit reached ({in_flight} in flight, limit {limit})"
            ),
            Reason::Shed => write!(
                f,
                "{class} call shed: {in_flight} in flight fill its share of the limit {limit}"
            ),
            Reason::Probe => write!(
                f,
                "limit held at {limit} while the no-load latency is re-measured"
            ),
        }
    }
}

impl std::error::Error for Rejected {}

/// Permission for one call, from [`AdaptiveLimiter::try_acquire_at`](super::AdaptiveLimiter::try_acquire_at).
///
/// Report the call with [`record_at`](Self::record_at) (or [`success_at`](Self::success_at),
/// [`dropped_at`](Self::dropped_at)): its latency, from admission to `now`, is a sample for the
/// limit. Dropping the permit instead releases its slot and counts as a drop with no latency
/// ([`Outcome::Dropped`]). The permit owns a handle to its limiter, so it can move across tasks.
///
/// ```
/// use std::time::{Duration, Instant};
/// use tailguard::limit::{AdaptiveLimiter, Outcome};
///
/// let limiter = AdaptiveLimiter::builder().build()?;
/// let start = Instant::now();
/// let permit = limiter.try_acquire_at(start).unwrap();
/// assert_eq!(limiter.in_flight(), 1);
/// permit.record_at(Outcome::Success, start + Duration::from_millis(12));
/// assert_eq!(limiter.in_flight(), 0);
/// # Ok::<(), tailguard::ConfigError>(())
/// ```
#[must_use = "a permit holds a slot until it is recorded or dropped"]
pub struct Permit {
    pub(super) shared: Arc<Shared>,
    pub(super) started: Instant,
    pub(super) in_flight: u32,
    pub(super) epoch: u32,
    pub(super) class: Criticality,
    pub(super) done: bool,
}

impl Permit {
    /// Reports `outcome` at `now`, releasing the slot.
    #[inline]
    pub fn record_at(mut self, outcome: Outcome, now: Instant) {
        self.finish(outcome, Some(now));
    }

    /// The call finished at `now`.
    #[inline]
    pub fn success_at(self, now: Instant) {
        self.record_at(Outcome::Success, now);
    }

    /// The call was dropped (timed out, shed downstream) at `now`.
    pub fn dropped_at(self, now: Instant) {
        self.record_at(Outcome::Dropped, now);
    }

    /// Releases the slot without a sample ([`Outcome::Ignored`]).
    pub fn ignore(mut self) {
        self.finish(Outcome::Ignored, None);
    }

    /// When the call was admitted.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The class it was admitted as.
    pub fn class(&self) -> Criticality {
        self.class
    }

    /// Calls in flight when it was admitted, itself included, scaled by its class's share
    /// (see [`Sample::in_flight`]).
    pub fn in_flight_at_start(&self) -> u32 {
        self.in_flight
    }

    #[inline]
    fn finish(&mut self, outcome: Outcome, now: Option<Instant>) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        self.shared.in_flight.fetch_sub(1, Ordering::Release);
        if outcome == Outcome::Ignored {
            return;
        }
        let sample = Sample {
            now: now.unwrap_or(self.started),
            rtt: now.map(|now| now.saturating_duration_since(self.started)),
            in_flight: self.in_flight,
            dropped: outcome == Outcome::Dropped,
        };
        self.shared.sample(sample, self.epoch);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.finish(Outcome::Dropped, None);
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("class", &self.class)
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}
