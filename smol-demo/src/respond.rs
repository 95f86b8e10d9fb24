//! Small response builders shared by the demo's HTTP servers.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;

/// The body type every demo server answers with.
pub type Body = Full<Bytes>;

/// A `text/plain` response.
pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    with_type(status, body.into(), "text/plain; charset=utf-8")
}

/// An `application/json` response of `value`.
pub fn json(status: StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(mut body) => {
            body.push(b'\n');
            with_type(status, body.into(), "application/json")
        }
        Err(error) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("could not encode the answer: {error}\n"),
        ),
    }
}

/// A response with `body` of `content_type`.
pub fn with_type(status: StatusCode, body: Bytes, content_type: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The value of `name` in a query string like `a=1&b=2`.
///
/// ```
/// use tailguard_demo::respond::query_param;
///
/// assert_eq!(query_param(Some("keys=8&x=1"), "keys"), Some("8"));
/// assert_eq!(query_param(Some("keys=8"), "x"), None);
/// assert_eq!(query_param(None, "keys"), None);
/// ```
pub fn query_param<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then_some(value)
    })
}
