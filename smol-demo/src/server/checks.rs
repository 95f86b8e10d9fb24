//! What RFC 9110 and 9112 require of a request before it is routed: a known method, a target
//! form that fits the method, exactly one valid Host in HTTP/1.1, and transfer codings the
//! server can decode.

use http::{header, Method, Request, Response, StatusCode, Version};
use hyper::body::Incoming;

use crate::respond::{text, Body};

/// `Allow` of the GET routes and of `/echo`.
pub(super) const ALLOW_GET: &str = "GET, HEAD, OPTIONS";
pub(super) const ALLOW_POST: &str = "POST, OPTIONS";
/// `Allow` of the server as a whole (`OPTIONS *`).
pub(super) const ALLOW_ANY: &str = "GET, HEAD, POST, OPTIONS";

/// `status` with `Allow: allow` and `body` (none for 204).
pub(super) fn allowing(
    status: StatusCode,
    allow: &'static str,
    body: impl Into<bytes::Bytes>,
) -> Response<Body> {
    let mut response = if status == StatusCode::NO_CONTENT {
        let mut empty = Response::new(Body::default());
        *empty.status_mut() = status;
        empty
    } else {
        text(status, body)
    };
    response
        .headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(allow));
    response
}

/// The methods of RFC 9110 §9 and PATCH (RFC 5789): known, so a resource that does not allow
/// one answers 405; any other method is not implemented (501).
pub(super) fn is_known(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET
            | Method::HEAD
            | Method::POST
            | Method::PUT
            | Method::DELETE
            | Method::CONNECT
            | Method::OPTIONS
            | Method::TRACE
            | Method::PATCH
    )
}

/// The answer to a target that is not a path: `*` (asterisk-form, RFC 9112 §3.2.4) is for
/// `OPTIONS` only, an authority (`host:port`, §3.2.3) for `CONNECT` only, which this server
/// does not allow.
pub(super) fn other_form(method: &Method, target: &str) -> Response<Body> {
    if *method == Method::CONNECT {
        allowing(
            StatusCode::METHOD_NOT_ALLOWED,
            ALLOW_ANY,
            "this server is not a proxy: CONNECT is not allowed\n",
        )
    } else if target == "*" && *method == Method::OPTIONS {
        allowing(StatusCode::NO_CONTENT, ALLOW_ANY, "")
    } else if target == "*" {
        text(
            StatusCode::BAD_REQUEST,
            format!("the target * is for OPTIONS only, not {method}\n"),
        )
    } else {
        text(
            StatusCode::BAD_REQUEST,
            format!(
                "{method} needs a target that starts with /; an authority is for CONNECT only\n"
            ),
        )
    }
}

/// What is wrong with the request's Host field, if anything (RFC 9112 §3.2): an HTTP/1.1
/// request must have exactly one, and it must be a valid `host[:port]` (or empty).
pub(super) fn host_problem(request: &Request<Incoming>) -> Option<&'static str> {
    let mut hosts = request.headers().get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if request.version() == Version::HTTP_11 => {
            Some("an HTTP/1.1 request needs a Host header field\n")
        }
        (None, _) => None,
        (Some(_), Some(_)) => Some("more than one Host header field\n"),
        (Some(host), None) if !valid_host(host.as_bytes()) => {
            Some("the Host header field is not a valid host[:port]\n")
        }
        (Some(_), None) => None,
    }
}

/// Whether `value` is `uri-host [ ":" port ]` (RFC 3986 §3.2.2-3; empty is allowed).
fn valid_host(value: &[u8]) -> bool {
    let (host, port) = match value.iter().rposition(|&b| b == b':') {
        // An IP literal has colons inside its brackets: the port's colon follows the `]`.
        Some(at) if !value.starts_with(b"[") || value[..at].ends_with(b"]") => {
            (&value[..at], &value[at + 1..])
        }
        _ => (value, &b""[..]),
    };
    let port_ok = port.len() <= 5 && port.iter().all(u8::is_ascii_digit);
    let host_ok = match host {
        [b'[', inner @ .., b']'] => {
            !inner.is_empty()
                && inner
                    .iter()
                    .all(|&b| b.is_ascii_hexdigit() || b":.vV".contains(&b))
        }
        _ => host
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&b)),
    };
    port_ok && host_ok
}

/// The first transfer coding other than chunked, if any (RFC 9112 §6.1: 501 for a coding the
/// server does not understand).
pub(super) fn unknown_coding(request: &Request<Incoming>) -> Option<String> {
    request
        .headers()
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .map(|coding| String::from_utf8_lossy(coding).trim().to_string())
        .find(|coding| !coding.eq_ignore_ascii_case("chunked"))
}

#[cfg(test)]
mod tests {
    use super::valid_host;

    #[test]
    fn hosts() {
        for good in [
            "",
            "example.com",
            "example.com:80",
            "127.0.0.1:8080",
            "[::1]",
            "[::1]:80",
            "a:",
            "xn--bcher-kva.example",
        ] {
            assert!(valid_host(good.as_bytes()), "{good:?}");
        }
        for bad in [
            "a b",
            "a/b",
            "user@host",
            "host:port",
            "host:123456",
            "[::1",
            "[]",
            "[::1]x",
            "a:1:2",
        ] {
            assert!(!valid_host(bad.as_bytes()), "{bad:?}");
        }
    }
}
