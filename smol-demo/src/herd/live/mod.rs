//! The herd, live: clients retrying against a backend that comes back from an outage with
//! limited capacity, over real sockets on 127.0.0.1.
//!
//! One backend replica serves each call in `service` and at most `capacity` calls at once;
//! more are answered `503` at once. It is down (connections refused, like a crashed process)
//! from `warmup` to `warmup + outage`. Meanwhile user requests arrive at a steady `rate` (open
//! loop: a slow backend does not slow the users down), each one a call under a
//! [`Retry`](tailguard::retry::Retry) policy of up to `max_attempts` attempts with exponential
//! backoff from `base_delay` to `max_delay`, within `max_elapsed`. Two [`HerdMode`]s are
//! compared:
//!
//! - [`HerdMode::NoJitter`]: every failed call is retried after exactly the backoff's delay,
//!   and nothing limits retries. Every request that arrived during the outage is still
//!   retrying when the backend comes back, so it meets several times its capacity at once;
//!   the calls turned away come back together on the same schedule.
//! - [`HerdMode::JitterBudget`]: full jitter (a delay drawn uniformly between zero and the
//!   backoff's) spreads the retries out, and a
//!   [`RetryBudget`](tailguard::retry::RetryBudget) shared by all clients caps retries at
//!   `budget_ratio` of first tries (plus a small floor): during the outage most requests fail
//!   fast instead of piling up.
//!
//! Measured, per mode: **wasted calls** (calls that got `503`, were refused, or failed
//! otherwise: load that did nothing useful), the requests that succeeded and failed, the
//! **recovery time**: from the backend coming back to the start of the first `window` from
//! which, until the end of the run, at least `high` of the calls in every window succeed; and
//! the latency of the requests that arrived after the backend came back (from their due
//! time, retries included): what the herd costs the users who come after it.

//!
//! The settings are in [`LiveHerdConfig`], the measurements in [`LiveHerdReport`], and
//! [`run`] runs both modes.

mod config;
mod report;
mod run;

pub use self::config::{HerdMode, LiveHerdConfig};
pub use self::report::{HerdRun, LiveHerdReport, Window};
pub use self::run::{run, run_mode};
