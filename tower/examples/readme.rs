use std::time::Duration;

use tailguard::breaker::CircuitBreaker;
use tailguard::hedge::Hedge;
use tailguard::retry::{Retry, RetryBudget};
use tailguard_tower::{BoxError, CircuitBreakerLayer, HedgeLayer, RetryLayer, TimeoutLayer};
use tower::{service_fn, ServiceBuilder, ServiceExt};

fn main() -> Result<(), BoxError> {
    // Any tower service will do: a hyper-util client, a tonic channel, an axum router.
    let backend =
        service_fn(|name: &'static str| async move { Ok::<_, BoxError>(format!("hello, {name}")) });

    let budget = RetryBudget::builder().ratio(0.2).build()?; // retries ≤ 20 % of calls
    let retry = Retry::builder().max_attempts(3).budget(budget).build()?;
    let hedge = Hedge::builder()
        .fixed_delay(Duration::from_millis(50))
        .build()?;
    let breaker = CircuitBreaker::builder().failure_rate(0.5).build()?;
    let client = ServiceBuilder::new()
        .layer(RetryLayer::new(retry))
        .layer(HedgeLayer::new(hedge))
        .layer(CircuitBreakerLayer::new(breaker))
        .layer(TimeoutLayer::new(Duration::from_secs(1)))
        .service(backend);

    // The layers bring no runtime: this runs on smol, tokio or any other executor.
    let reply = smol::block_on(client.oneshot("world"))?;
    assert_eq!(reply, "hello, world");
    println!("{reply}");
    Ok(())
}
