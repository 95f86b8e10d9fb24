//! Admit only as much concurrent work as the dependency can do without queueing: the adaptive
//! concurrency limit.
//!
//! An [`AdaptiveLimiter`] counts the calls in flight and refuses a call once they reach the
//! limit. Each finished call reports its latency, and a pluggable [`Algorithm`] moves the
//! limit: [`Gradient2`] (the ratio of a long-term latency baseline to the latest latency, plus
//! a queue allowance), [`Aimd`] (add one, multiply down on a drop) or [`Fixed`] (a bulkhead).
//!
//! * **Never 0, never stuck at 1, never far past the load.** The limit stays within
//!   `[min_limit, max_limit]` (`min_limit` ≥ 1); the algorithms always grow again once
//!   latency is back at its baseline; and a limit only grows on a sample taken while at least
//!   half of it was in use, so a quiet service does not build up a limit its load never
//!   tested.
//! * **Slow start**: from the initial limit it grows by one per sample (doubling every round
//!   trip) until the first sign of queueing or the first drop.
//! * **Probes**: every [`probe_interval`](AdaptiveLimiterBuilder::probe_interval) the limit is
//!   held low for a few calls, whose latency re-measures the no-load baseline (as Envoy's
//!   adaptive concurrency filter); a long overload cannot teach the baseline that queueing is
//!   normal.
//! * **Drops and timeouts**, as concurrency-limits handles them: report a timed-out or
//!   downstream-shed call as [`Outcome::Dropped`] with its latency; a permit dropped without
//!   a report is a drop with no latency (it measured nothing); [`Outcome::Ignored`] releases
//!   without a sample.
//! * **Priority**: each call has a [`Criticality`](crate::priority::Criticality); under
//!   overload sheddable work is refused first, then default work, and critical work may fill
//!   the whole limit ([`Shares`](crate::priority::Shares)). Every refusal says why
//!   ([`Reason`]).
//! * **Monitor-only**: [`monitor_only`](AdaptiveLimiterBuilder::monitor_only) admits every
//!   call and counts what it would have refused, by reason and class ([`Metrics`]).
//!
//! ## Sans-IO
//!
//! The limiter reads no clock: [`try_acquire_at`](AdaptiveLimiter::try_acquire_at) and
//! [`Permit::record_at`] take the time, so the same limiter runs on a real clock, in virtual
//! time or from Python. [`call_with`](AdaptiveLimiter::call_with) is the thin async glue that
//! reads a [`Timer`](crate::time::Timer).
//!
//! ```
//! use std::time::{Duration, Instant};
//! use tailguard::limit::{AdaptiveLimiter, Gradient2, Outcome};
//!
//! let limiter = AdaptiveLimiter::builder()
//!     .algorithm(Gradient2::new())
//!     .initial_limit(10)
//!     .build()?;
//! let mut now = Instant::now();
//! // Twenty calls offered at a time, each 10 ms: latency stays at its baseline, so the limit
//! // grows (default calls may fill 90 % of it; the rest is kept for critical ones).
//! for _ in 0..50 {
//!     let permits: Vec<_> = (0..20).filter_map(|_| limiter.try_acquire_at(now).ok()).collect();
//!     now += Duration::from_millis(10);
//!     for permit in permits {
//!         permit.record_at(Outcome::Success, now);
//!     }
//! }
//! assert!(limiter.limit() > 10);
//! # Ok::<(), tailguard::ConfigError>(())
//! ```
//!
//! ## Speed
//!
//! Admission is a compare-and-swap on the in-flight count against a per-class cap published
//! by the last sample, and a reference-count increment for the permit; recording takes a
//! short uncontended lock for the algorithm. No allocation.

mod algorithm;
mod call;
mod config;
mod gradient;
mod limiter;
mod permit;
#[cfg(test)]
mod tests;

pub use self::algorithm::{Aimd, Algorithm, Fixed, Sample};
pub use self::call::CallError;
pub use self::config::AdaptiveLimiterBuilder;
pub use self::gradient::Gradient2;
pub use self::limiter::{AdaptiveLimiter, Metrics};
pub use self::permit::{Outcome, Permit, Reason, Rejected};
