//! The caller's deadline over the wire, as the demo's servers honour it.
//!
//! A request may carry the time its caller has left in the `tailguard-timeout` header
//! ([`tailguard::deadline_header`]: `grpc-timeout` syntax, e.g. `tailguard-timeout: 250m`). The
//! demo server and the backend replicas read it on arrival and:
//!
//! | the header | the answer |
//! |---|---|
//! | absent | served as before, bounded only by the server's own limits |
//! | malformed or repeated | `400`, the body says what is wrong (reason `malformed`) |
//! | `0` of any unit: the deadline has passed | `504` at once, nothing done (reason `expired`) |
//! | shorter than the least the work takes | `504` at once, nothing done (reason `too_short`) |
//! | long enough | served, but stopped at the deadline with `504` if still working |
//!
//! Every `504` and `400` body is one line saying why, and the answer names the reason in the
//! `tailguard-refused` header ([`REFUSED_HEADER`]: `malformed`, `expired`, `too_short`, or
//! `stopped` for a handler stopped at the deadline), so a client can tell a refusal for its
//! own deadline from a server's failure. [`admit_at`] makes the decision;
//! [`DeadlineCounts`] counts it, and the server shows the counts in `/metrics`
//! (`tailguard_http_deadline_refusals_total{reason}`, `tailguard_http_deadline_stopped_total`).
//!
//! ```
//! use std::time::{Duration, Instant};
//! use http::{HeaderMap, HeaderValue, StatusCode};
//! use tailguard_demo::wire_deadline::{admit_at, Reason};
//!
//! let now = Instant::now();
//! let mut headers = HeaderMap::new();
//! assert_eq!(admit_at(&headers, now, Duration::from_millis(50)).unwrap(), None);
//!
//! headers.insert("tailguard-timeout", HeaderValue::from_static("20m"));
//! let refusal = admit_at(&headers, now, Duration::from_millis(50)).unwrap_err();
//! assert_eq!((refusal.reason, refusal.status()), (Reason::TooShort, StatusCode::GATEWAY_TIMEOUT));
//! let deadline = admit_at(&headers, now, Duration::from_millis(5)).unwrap().unwrap();
//! assert_eq!(deadline.instant(), now + Duration::from_millis(20));
//! ```

use std::fmt;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue, Response, StatusCode};
use tailguard::deadline_header::{decode_deadline_at, HEADER_NAME};
use tailguard::timeout::Deadline;

use crate::metrics::{Counter, Kind, PromText};
use crate::respond::{text, Body};

/// The response header that names why a request was refused, or stopped, for its deadline.
pub const REFUSED_HEADER: &str = "tailguard-refused";

/// Whether `response` is a refusal (`504` at once) or a stop (`504` at the deadline) for the
/// caller's deadline, as opposed to any other answer, `504` from a gateway included.
pub fn is_deadline_504(status: StatusCode, headers: &HeaderMap) -> bool {
    status == StatusCode::GATEWAY_TIMEOUT && headers.contains_key(REFUSED_HEADER)
}

/// `response`, naming `reason` in the [`REFUSED_HEADER`].
fn marked(mut response: Response<Body>, reason: &'static str) -> Response<Body> {
    response
        .headers_mut()
        .insert(REFUSED_HEADER, HeaderValue::from_static(reason));
    response
}

/// Why a request was refused for its deadline: the `reason` label of the refusal counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The header could not be read (answered `400`).
    Malformed,
    /// The deadline had passed on arrival (answered `504`).
    Expired,
    /// The time left is shorter than the least the work takes (answered `504`).
    TooShort,
}

impl Reason {
    /// Every reason, in label order.
    pub const ALL: [Reason; 3] = [Reason::Malformed, Reason::Expired, Reason::TooShort];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Malformed => "malformed",
            Reason::Expired => "expired",
            Reason::TooShort => "too_short",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request refused for its deadline: why, and what to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Why.
    pub reason: Reason,
    /// One line saying why, for the body.
    pub message: String,
}

impl Refusal {
    fn new(reason: Reason, message: String) -> Refusal {
        Refusal { reason, message }
    }

    /// The refusal of work that takes `work` when the caller's deadline leaves `left`: for a
    /// server that learns what its work takes only after [`admit_at`] (say, once a worker
    /// picks the request up), judged against the same deadline.
    pub fn too_short(left: Duration, work: Duration) -> Refusal {
        Refusal::new(
            Reason::TooShort,
            format!(
                "the caller's deadline leaves {} but this work takes {}; nothing was done\n",
                crate::ms::text(left),
                crate::ms::text(work)
            ),
        )
    }

    /// `400` for a malformed header, `504` otherwise.
    pub fn status(&self) -> StatusCode {
        match self.reason {
            Reason::Malformed => StatusCode::BAD_REQUEST,
            Reason::Expired | Reason::TooShort => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The answer: the [`status`](Refusal::status), the message as the body, the reason in the
    /// [`REFUSED_HEADER`].
    pub fn into_response(self) -> Response<Body> {
        marked(text(self.status(), self.message), self.reason.as_str())
    }
}

/// The caller's deadline for a request received at `now` whose work takes at least `work`:
/// `Ok(None)` without the header, `Ok(Some(deadline))` when there is time for the work, and a
/// [`Refusal`] when the header is malformed or repeated, the deadline has passed, or the time
/// left is shorter than `work`. (A deadline exactly `work` away is admitted.)
pub fn admit_at(
    headers: &HeaderMap,
    now: Instant,
    work: Duration,
) -> Result<Option<Deadline>, Refusal> {
    let mut values = headers.get_all(HEADER_NAME).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let repeated = values.count();
    if repeated > 0 {
        return Err(Refusal::new(
            Reason::Malformed,
            format!(
                "the {HEADER_NAME} header appears {} times; send it once\n",
                repeated + 1
            ),
        ));
    }
    let deadline = decode_deadline_at(value.as_bytes(), now).map_err(|error| {
        Refusal::new(
            Reason::Malformed,
            format!(
                "invalid {HEADER_NAME} header {:?}: {error}\n",
                String::from_utf8_lossy(value.as_bytes())
            ),
        )
    })?;
    let left = deadline.instant().saturating_duration_since(now);
    if left.is_zero() {
        return Err(Refusal::new(
            Reason::Expired,
            format!(
                "the caller's deadline ({HEADER_NAME}: {}) had passed on arrival; nothing was done\n",
                String::from_utf8_lossy(value.as_bytes())
            ),
        ));
    }
    if left < work {
        return Err(Refusal::too_short(left, work));
    }
    Ok(Some(deadline))
}

/// The answer of a handler stopped when the caller's deadline passed, `after` its start: `504`.
pub fn stopped(after: Duration) -> Response<Body> {
    marked(
        text(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "the caller's deadline passed after {}; the work was stopped\n",
                crate::ms::text(after)
            ),
        ),
        "stopped",
    )
}

/// Requests refused for their deadline, by reason, and handlers stopped by it.
#[derive(Debug, Default)]
pub struct DeadlineCounts {
    refused: [Counter; Reason::ALL.len()],
    stopped: Counter,
}

impl DeadlineCounts {
    /// Counts one refusal.
    pub fn refused(&self, reason: Reason) {
        self.refused[reason as usize].bump();
    }

    /// Counts one handler stopped at the deadline.
    pub fn stopped(&self) {
        self.stopped.bump();
    }

    /// Refusals so far for `reason`.
    pub fn refusals(&self, reason: Reason) -> u64 {
        self.refused[reason as usize].get()
    }

    /// Handlers stopped at the deadline so far.
    pub fn stops(&self) -> u64 {
        self.stopped.get()
    }

    /// Writes `tailguard_http_deadline_refusals_total{reason}` (every reason, zeros included)
    /// and `tailguard_http_deadline_stopped_total`.
    pub fn write(&self, out: &mut PromText) {
        out.family(
            "tailguard_http_deadline_refusals_total",
            Kind::Counter,
            "Requests refused at once for the caller's deadline (tailguard-timeout header), by reason: malformed (400), expired or too_short (504).",
        );
        for reason in Reason::ALL {
            out.sample(
                "tailguard_http_deadline_refusals_total",
                &[("reason", reason.as_str())],
                self.refusals(reason) as f64,
            );
        }
        out.single(
            "tailguard_http_deadline_stopped_total",
            Kind::Counter,
            "Requests whose handler was stopped when the caller's deadline passed (answered 504).",
            self.stops() as f64,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(HEADER_NAME, HeaderValue::from_static(value));
        }
        headers
    }

    fn body(response: &Response<Body>) -> String {
        use http_body_util::BodyExt;
        let bytes = futures_lite::future::block_on(response.body().clone().collect())
            .unwrap()
            .to_bytes();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[test]
    fn each_header_gets_its_answer() {
        let now = Instant::now();
        let work = Duration::from_millis(10);
        assert_eq!(admit_at(&with(&[]), now, work).unwrap(), None);
        assert_eq!(
            admit_at(&with(&["10m"]), now, work).unwrap(),
            Some(Deadline::at(now + work))
        );
        let cases = [
            (&["0n"][..], Reason::Expired, 504, "had passed on arrival"),
            (&["0H"][..], Reason::Expired, 504, "(tailguard-timeout: 0H)"),
            (&["9999u"][..], Reason::TooShort, 504, "leaves 10.0 ms but"),
            (
                &["soon"][..],
                Reason::Malformed,
                400,
                "invalid tailguard-timeout",
            ),
            (&["5m", "5m"][..], Reason::Malformed, 400, "appears 2 times"),
        ];
        for (values, reason, status, says) in cases {
            let refusal = admit_at(&with(values), now, work).unwrap_err();
            assert_eq!(refusal.reason, reason, "{values:?}");
            let response = refusal.into_response();
            assert_eq!(response.status().as_u16(), status, "{values:?}");
            assert_eq!(
                response.headers()[REFUSED_HEADER],
                reason.as_str(),
                "{values:?}"
            );
            assert_eq!(
                is_deadline_504(response.status(), response.headers()),
                status == 504
            );
            let text = body(&response);
            assert!(text.contains(says), "{values:?}: {text}");
            assert_eq!(text.lines().count(), 1, "{text}");
        }
        // Any work is too long for an expired deadline, and none is for a live one.
        assert_eq!(
            admit_at(&with(&["1n"]), now, Duration::ZERO).unwrap(),
            Some(Deadline::at(now + Duration::from_nanos(1)))
        );
    }

    #[test]
    fn counts_are_written_for_every_reason() {
        let counts = DeadlineCounts::default();
        counts.refused(Reason::TooShort);
        counts.refused(Reason::TooShort);
        counts.stopped();
        let mut out = PromText::new();
        counts.write(&mut out);
        let text = out.finish();
        assert!(text.contains("tailguard_http_deadline_refusals_total{reason=\"too_short\"} 2\n"));
        assert!(text.contains("tailguard_http_deadline_refusals_total{reason=\"expired\"} 0\n"));
        assert!(text.contains("tailguard_http_deadline_stopped_total 1\n"));
    }
}
