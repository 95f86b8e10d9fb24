//! Server-side admission control: an adaptive concurrency limit in front of the handlers, with
//! priority from the `tailguard-criticality` header. What it sheds is answered `503` with
//! `Retry-After`; `/metrics` shows the limit, the requests in flight and the refusals by reason
//! and class.
//!
//! `/healthz` and `/metrics` are never limited (a shedding server must still say how it is).
//! `/slow?ms=N` holds a slot for its N ms but its latency is not a sample: the client chose it,
//! and it says nothing about load.

use std::time::Instant;

use http::{header, HeaderValue, Request, Response, StatusCode};
use tailguard::limit::{AdaptiveLimiter, Outcome, Permit, Reason, Rejected};
use tailguard::priority::{Criticality, HEADER};
use tailguard::ConfigError;

use crate::metrics::{Kind, PromText, Route};
use crate::respond::{text, Body};

/// How the server limits the requests it works on at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionConfig {
    /// The limit to start from.
    pub initial_limit: u32,
    /// The most it may grow to.
    pub max_limit: u32,
    /// Admit everything; only count what would have been shed.
    pub monitor_only: bool,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            initial_limit: 100,
            max_limit: 10_000,
            monitor_only: false,
        }
    }
}

impl AdmissionConfig {
    /// The limiter, or the setting refused (`initial_limit`, `max_limit`).
    pub fn limiter(&self) -> Result<AdaptiveLimiter, ConfigError> {
        AdaptiveLimiter::builder()
            .initial_limit(self.initial_limit)
            .max_limit(self.max_limit)
            .monitor_only(self.monitor_only)
            .build()
    }
}

/// Whether `route` goes through admission.
pub(crate) fn limited(route: Route) -> bool {
    !matches!(route, Route::Healthz | Route::Metrics)
}

/// The request's class from its header: absent is default; a value that is not a class is
/// refused with 400 (never silently taken as default).
#[allow(clippy::result_large_err)] // the error is the answer, sent at once
pub(crate) fn criticality<B>(request: &Request<B>) -> Result<Criticality, Response<Body>> {
    let Some(value) = request.headers().get(HEADER) else {
        return Ok(Criticality::Default);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            text(
                StatusCode::BAD_REQUEST,
                format!("{HEADER} must be critical, default or sheddable\n"),
            )
        })
}

/// The answer to a shed request: 503, `Retry-After: 1`, and why.
pub(crate) fn shed(rejected: &Rejected) -> Response<Body> {
    let mut response = text(StatusCode::SERVICE_UNAVAILABLE, format!("{rejected}\n"));
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// Reports a finished request to its permit: its latency, except for `/slow` (ignored).
pub(crate) fn finish(permit: Permit, route: Route, now: Instant) {
    if route == Route::Slow {
        permit.ignore();
    } else {
        permit.record_at(Outcome::Success, now);
    }
}

/// The limiter's series in the Prometheus text format.
pub(crate) fn write_metrics(limiter: &AdaptiveLimiter, out: &mut PromText) {
    let m = limiter.metrics();
    out.single(
        "tailguard_admission_limit",
        Kind::Gauge,
        "The adaptive concurrency limit on requests.",
        m.limit,
    );
    out.single(
        "tailguard_admission_in_flight",
        Kind::Gauge,
        "Requests admitted and not yet answered.",
        m.in_flight,
    );
    out.single(
        "tailguard_admission_monitor_only",
        Kind::Gauge,
        "1 when the limit only counts what it would shed.",
        u32::from(m.monitor_only),
    );
    out.family(
        "tailguard_admission_rejected_total",
        Kind::Counter,
        "Requests shed (in monitor-only mode: that would have been), by reason and class.",
    );
    for reason in Reason::ALL {
        for class in Criticality::ALL {
            out.sample(
                "tailguard_admission_rejected_total",
                &[("reason", reason.as_str()), ("class", class.as_str())],
                m.rejected(reason, class) as f64,
            );
        }
    }
}
