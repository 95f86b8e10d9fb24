//! An axum server whose every route runs under tailguard's tower layers:
//!
//! ```text
//! HandleErrorLayer     a refusal becomes 503 + Retry-After, a timeout 504
//!  └ AdaptiveLimit       admission control: at most the adaptive limit of requests at once
//!     │                  (learnt from their latency, at most 8); past it, shed at once
//!     └ CircuitBreaker     once half the recent requests failed (a 5xx or a timeout),
//!        │                 requests are turned away at once, until a probe succeeds
//!        └ Timeout           a handler gets 200 ms; past that its future is dropped
//!           └ the routes       /hello, /slow/{ms}
//! ```
//!
//! The limiter sheds rather than queues: a request over the limit is answered 503 with a
//! `Retry-After` at once, instead of waiting behind the ones a saturated server is already
//! late with.
//!
//! The layers run on tailguard's default timer (async-io's), not tokio's: the same stack runs
//! under any executor.
//!
//! Run: `cargo run -p tailguard-tower --example axum_server` (serves 127.0.0.1:3000), or with
//! `--self-test` to start it on a free port, check each behaviour over HTTP and exit 0 only if
//! every check passed.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::error_handling::HandleErrorLayer;
use axum::extract::Path;
use axum::http::{header, Response, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tailguard::breaker::{CircuitBreaker, Outcome, Rejected};
use tailguard::limit::AdaptiveLimiter;
use tailguard::time::DefaultTimer;
use tailguard::timeout::Elapsed;
use tailguard_tower::{AdaptiveLimitLayer, BoxError, CircuitBreakerLayer, TimeoutLayer};
use tower::ServiceBuilder;

/// How long a handler may take.
pub const HANDLER_LIMIT: Duration = Duration::from_millis(200);

/// The breaker the routes share: opens when half of the last 4 requests (at least 4) failed,
/// for 500 ms, then lets one probe through.
pub fn breaker() -> Result<CircuitBreaker<DefaultTimer>, tailguard::ConfigError> {
    CircuitBreaker::builder()
        .failure_rate(0.5)
        .count_window(4)
        .minimum_calls(4)
        .open_duration(Duration::from_millis(500))
        .half_open_calls(1)
        .build()
}

/// The admission limit the routes share: it starts at 4 concurrent requests and adapts to
/// their latency, between 1 and 8.
pub fn limiter() -> Result<AdaptiveLimiter, tailguard::ConfigError> {
    AdaptiveLimiter::builder()
        .initial_limit(4)
        .min_limit(1)
        .max_limit(8)
        .build()
}

/// What a request tells the limiter about load: a timeout or a server error is a drop; a
/// request the breaker turned away says nothing (it did no work).
fn load(result: Result<&Response<axum::body::Body>, &BoxError>) -> tailguard::limit::Outcome {
    use tailguard::limit::Outcome;
    match result {
        Ok(response) if response.status().is_server_error() => Outcome::Dropped,
        Ok(_) => Outcome::Success,
        Err(error) if error.is::<Rejected>() => Outcome::Ignored,
        Err(_) => Outcome::Dropped,
    }
}

/// A server error or a timeout is a failure; anything else (a 404 included) a success.
fn server_errors(result: Result<&Response<axum::body::Body>, &BoxError>) -> Outcome {
    match result {
        Ok(response) if response.status().is_server_error() => Outcome::Failure,
        Ok(_) => Outcome::Success,
        Err(_) => Outcome::Failure,
    }
}

/// The layers' errors as responses: a refusal (the limiter's or the breaker's) says when to
/// come back.
async fn error_response(error: BoxError) -> axum::response::Response {
    if error.is::<tailguard::limit::Rejected>() {
        // The limit frees as requests finish: a second is a polite, honest hint.
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            "overloaded: shed, try again later\n",
        )
            .into_response();
    }
    if let Some(rejected) = error.downcast_ref::<Rejected>() {
        // Whole seconds, rounded up: never earlier than the breaker asks.
        let seconds = rejected
            .retry_after()
            .map_or(1, |after| after.as_millis().div_ceil(1000).max(1));
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, seconds.to_string())],
            "overloaded: try again later\n",
        )
            .into_response();
    }
    if error.is::<Elapsed>() {
        return (StatusCode::GATEWAY_TIMEOUT, "the handler took too long\n").into_response();
    }
    (StatusCode::INTERNAL_SERVER_ERROR, format!("{error}\n")).into_response()
}

async fn slow(Path(ms): Path<u64>) -> String {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    format!("slept {ms} ms\n")
}

/// The application: the routes under the layers.
pub fn app(limiter: AdaptiveLimiter, breaker: CircuitBreaker<DefaultTimer>) -> Router {
    Router::new()
        .route("/hello", get(|| async { "hello\n" }))
        .route("/slow/{ms}", get(slow))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(error_response))
                .layer(AdaptiveLimitLayer::new(limiter).classify(load))
                .layer(CircuitBreakerLayer::new(breaker).classify(server_errors))
                .layer(TimeoutLayer::new(HANDLER_LIMIT)),
        )
}

/// Serves `app` on `listener` until the task is dropped.
pub async fn serve(
    listener: tokio::net::TcpListener,
    limiter: AdaptiveLimiter,
    breaker: CircuitBreaker<DefaultTimer>,
) {
    axum::serve(listener, app(limiter, breaker))
        .await
        .expect("the server runs until dropped");
}

/// One GET: status, `Retry-After` header, body.
async fn fetch(addr: SocketAddr, path: &str) -> Result<(u16, Option<String>, String), BoxError> {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let response = client.get(format!("http://{addr}{path}").parse()?).await?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .map(|value| value.to_str().unwrap_or("?").to_owned());
    let body = response.into_body().collect().await?.to_bytes();
    Ok((
        status,
        retry_after,
        String::from_utf8_lossy(&body).into_owned(),
    ))
}

/// Starts the server on 127.0.0.1 (a free port), checks each behaviour over HTTP, and says
/// what it saw; `Err` names the first check that failed.
pub async fn self_test() -> Result<(), BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let breaker = breaker()?;
    let limiter = limiter()?;
    let server = tokio::spawn(serve(listener, limiter.clone(), breaker.clone()));
    let result = checks(addr, &limiter, &breaker).await;
    server.abort();
    result
}

async fn checks(
    addr: SocketAddr,
    limiter: &AdaptiveLimiter,
    breaker: &CircuitBreaker<DefaultTimer>,
) -> Result<(), BoxError> {
    let (status, _, body) = fetch(addr, "/hello").await?;
    println!("GET /hello            -> {status} {}", body.trim());
    expect(status == 200 && body == "hello\n", "a fast handler answers")?;

    // A burst of 24 requests of 150 ms each, all at once, against a limit of at most 8: the
    // limiter admits what it can and sheds the rest at once with 503 + Retry-After.
    let burst = (0..24).map(|_| fetch(addr, "/slow/150"));
    let answers = futures::future::join_all(burst).await;
    let (mut served, mut shed) = (0, 0);
    for answer in answers {
        match answer? {
            (200, _, _) => served += 1,
            (503, Some(retry_after), _) if retry_after == "1" => shed += 1,
            (status, retry_after, body) => {
                return Err(format!("burst: unexpected {status} {retry_after:?} {body}").into())
            }
        }
    }
    println!(
        "burst of 24           -> {served} served, {shed} shed (limit {})",
        limiter.limit()
    );
    expect(served > 0, "the limiter admits requests under a burst")?;
    expect(
        shed > 0,
        "the limiter sheds a burst over its limit with 503 + Retry-After",
    )?;
    expect(
        limiter.in_flight() == 0,
        "every admitted request gave its slot back",
    )?;

    let started = Instant::now();
    let (status, _, body) = fetch(addr, "/slow/5000").await?;
    let took = started.elapsed();
    println!(
        "GET /slow/5000        -> {status} {} (after {took:?})",
        body.trim()
    );
    expect(status == 504, "a slow handler is cut at the limit with 504")?;
    // The 5 s handler was dropped at 200 ms; a loaded machine may add some delay, never 4 s.
    expect(
        took < Duration::from_secs(4),
        "the slow handler was not waited for",
    )?;

    // Keep failing until the breaker opens: then even /hello is turned away at once.
    let mut turned_away = None;
    for _ in 0..8 {
        let (status, retry_after, _) = fetch(addr, "/slow/5000").await?;
        if status == 503 {
            turned_away = Some(retry_after);
            break;
        }
        expect(
            status == 504,
            "a slow handler times out until the breaker opens",
        )?;
    }
    let retry_after = turned_away.ok_or("the breaker never opened")?;
    println!(
        "breaker               -> {} (Retry-After: {retry_after:?})",
        breaker.state()
    );
    expect(retry_after.is_some(), "a refusal says when to come back")?;
    let (status, _, _) = fetch(addr, "/hello").await?;
    println!("GET /hello while open -> {status}");
    expect(status == 503, "an open breaker turns every request away")?;

    // After the open duration one probe goes through; its success closes the breaker.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (status, _, _) = fetch(addr, "/hello").await?;
    println!(
        "GET /hello later      -> {status}; breaker {}",
        breaker.state()
    );
    expect(
        status == 200,
        "a probe goes through after the open duration",
    )?;
    expect(
        breaker.state() == tailguard::breaker::State::Closed,
        "a successful probe closes the breaker",
    )?;
    Ok(())
}

fn expect(ok: bool, what: &str) -> Result<(), BoxError> {
    if ok {
        Ok(())
    } else {
        Err(format!("check failed: {what}").into())
    }
}

#[allow(dead_code)] // the tests include this file for `self_test` alone
#[tokio::main]
async fn main() -> Result<(), BoxError> {
    if std::env::args().any(|arg| arg == "--self-test") {
        self_test().await?;
        println!("self-test: ok");
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    serve(listener, limiter()?, breaker()?).await;
    Ok(())
}
