//! A hyper-util HTTP client under tailguard's tower layers, against a local backend that
//! misbehaves on cue:
//!
//! ```text
//! Retry              503s and failed attempts are tried again (3 attempts, a shared budget);
//!  │                 a breaker's refusal is final
//!  └ Hedge             no answer after 50 ms: send the request again, take the first answer
//!     └ CircuitBreaker   3 server errors in a row: calls fail fast for 500 ms
//!        └ Timeout         each attempt gets 1 s
//!           └ GET            hyper-util's pooled client
//! ```
//!
//! `http::Request` is not `Clone`, and retries and hedges send a request more than once, so
//! the stack takes a `Uri` and builds the request beneath them (as tower's own `Retry` and
//! `Hedge` need a request they can clone).
//!
//! Run: `cargo run -p tailguard-tower --example hyper_client`; it exits 0 only if each layer
//! did what the step expects.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tailguard::backoff::{Backoff, Jitter};
use tailguard::breaker::{CircuitBreaker, Outcome, Rejected};
use tailguard::hedge::Hedge;
use tailguard::retry::{Decision, Retry, RetryBudget};
use tailguard_tower::{BoxError, CircuitBreakerLayer, HedgeLayer, RetryLayer, TimeoutLayer};
use tower::{Service, ServiceBuilder, ServiceExt};

/// How many requests each of the backend's routes has seen.
#[derive(Default)]
pub struct Seen {
    flaky: AtomicU32,
    slow_first: AtomicU32,
    down: AtomicU32,
}

/// The backend: `/flaky` answers 503 twice then 200; `/slow-first` stalls 3 s on its first
/// request and answers the others at once; `/down` always answers 503.
pub fn backend(seen: Arc<Seen>) -> Router {
    Router::new()
        .route(
            "/flaky",
            get(|State(seen): State<Arc<Seen>>| async move {
                match seen.flaky.fetch_add(1, Ordering::SeqCst) {
                    0 | 1 => StatusCode::SERVICE_UNAVAILABLE,
                    _ => StatusCode::OK,
                }
            }),
        )
        .route(
            "/slow-first",
            get(|State(seen): State<Arc<Seen>>| async move {
                if seen.slow_first.fetch_add(1, Ordering::SeqCst) == 0 {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                }
                StatusCode::OK
            }),
        )
        .route(
            "/down",
            get(|State(seen): State<Arc<Seen>>| async move {
                seen.down.fetch_add(1, Ordering::SeqCst);
                StatusCode::SERVICE_UNAVAILABLE
            }),
        )
        .with_state(seen)
}

/// Retry what may be transient: 502, 503, 504 and failed attempts, but not a breaker's refusal
/// (it says the dependency needs a rest).
fn transient(_: &Uri, result: Result<&Response<Incoming>, &BoxError>) -> Decision {
    match result {
        Ok(response) => match response.status().as_u16() {
            502..=504 => Decision::Retry,
            _ => Decision::Stop,
        },
        Err(error) if error.is::<Rejected>() => Decision::Stop,
        Err(_) => Decision::Retry,
    }
}

/// A 5xx or an error is the dependency's failure.
fn server_errors(result: Result<&Response<Incoming>, &BoxError>) -> Outcome {
    match result {
        Ok(response) if response.status().is_server_error() => Outcome::Failure,
        Ok(_) => Outcome::Success,
        Err(_) => Outcome::Failure,
    }
}

/// The policies the example's stack uses, kept to report what they did.
pub struct Policies {
    /// The hedging policy (its statistics).
    pub hedge: Hedge,
    /// The breaker.
    pub breaker: CircuitBreaker,
}

/// The client: hyper-util's, under retry, hedge, breaker and timeout.
pub fn client(
    policies: &Policies,
) -> Result<
    impl Service<Uri, Response = Response<Incoming>, Error = BoxError, Future: Send> + Clone,
    BoxError,
> {
    let retry = Retry::builder()
        .max_attempts(3)
        .backoff(
            Backoff::constant(Duration::from_millis(20))
                .jitter(Jitter::None)
                .build()?,
        )
        .budget(RetryBudget::default())
        .build()?;
    let http = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    Ok(ServiceBuilder::new()
        .layer(RetryLayer::new(retry).policy(transient))
        .layer(HedgeLayer::new(policies.hedge.clone()))
        .layer(CircuitBreakerLayer::new(policies.breaker.clone()).classify(server_errors))
        .layer(TimeoutLayer::new(Duration::from_secs(1)))
        .map_request(|uri: Uri| {
            Request::get(uri)
                .body(Empty::<Bytes>::new())
                .expect("a GET with a valid Uri")
        })
        .service(http))
}

/// Starts the backend on 127.0.0.1 (a free port), runs each step through the client, and says
/// what every layer did; `Err` names the first step that did not go as expected.
pub async fn run() -> Result<(), BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let seen = Arc::new(Seen::default());
    let server = tokio::spawn(axum::serve(listener, backend(seen.clone())).into_future());
    let result = steps(addr, &seen).await;
    server.abort();
    result
}

async fn steps(addr: SocketAddr, seen: &Seen) -> Result<(), BoxError> {
    let policies = Policies {
        hedge: Hedge::builder()
            .fixed_delay(Duration::from_millis(50))
            .build()?,
        breaker: CircuitBreaker::builder()
            .consecutive_failures(3)
            .open_duration(Duration::from_millis(500))
            .half_open_calls(1)
            .build()?,
    };
    let client = client(&policies)?;
    let uri = |path: &str| -> Result<Uri, BoxError> { Ok(format!("http://{addr}{path}").parse()?) };

    let response = client.clone().oneshot(uri("/flaky")?).await?;
    let tries = seen.flaky.load(Ordering::SeqCst);
    println!(
        "GET /flaky      -> {} after {tries} requests (retry)",
        response.status()
    );
    expect(
        response.status() == 200 && tries == 3,
        "the retry got past two 503s",
    )?;

    let started = Instant::now();
    let response = client.clone().oneshot(uri("/slow-first")?).await?;
    let took = started.elapsed();
    let stats = policies.hedge.stats();
    println!(
        "GET /slow-first -> {} in {took:?}; hedges sent {}, won {} (hedge)",
        response.status(),
        stats.hedges_sent,
        stats.hedges_won
    );
    expect(response.status() == 200, "the hedge answered")?;
    expect(
        stats.hedges_won == 1,
        "the hedge won over the stalled primary",
    )?;
    expect(
        took < Duration::from_secs(2),
        "the 3 s stall was not waited for",
    )?;

    let response = client.clone().oneshot(uri("/down")?).await?;
    let sent = seen.down.load(Ordering::SeqCst);
    println!(
        "GET /down       -> {} after {sent} requests; breaker {}",
        response.status(),
        policies.breaker.state()
    );
    expect(
        response.status() == 503 && sent == 3,
        "three attempts, then the 503",
    )?;
    let refused = client
        .clone()
        .oneshot(uri("/down")?)
        .await
        .err()
        .ok_or("an open breaker must refuse")?;
    let rejected = refused
        .downcast_ref::<Rejected>()
        .ok_or("the refusal is the breaker's")?;
    println!("GET /down again -> refused: {rejected} (breaker)");
    expect(
        seen.down.load(Ordering::SeqCst) == 3,
        "a refused call sends nothing",
    )?;
    Ok(())
}

fn expect(ok: bool, what: &str) -> Result<(), BoxError> {
    if ok {
        Ok(())
    } else {
        Err(format!("step failed: {what}").into())
    }
}

#[allow(dead_code)] // the tests include this file for `run` alone
#[tokio::main]
async fn main() -> Result<(), BoxError> {
    run().await?;
    println!("every layer did what was expected");
    Ok(())
}
