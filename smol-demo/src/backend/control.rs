//! The control endpoint: replica state as JSON, and taking replicas down and up.

use std::convert::Infallible;
use std::sync::Arc;

use futures_lite::future;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use smol::net::TcpListener;
use smol_hyper::rt::{FuturesIo, SmolTimer};
use tailguard::shutdown::{ShutdownSignal, TaskTracker};

use super::Shared;
use crate::respond::{json, text, Body};
use crate::rt::Exec;

pub(super) async fn run(
    shared: Arc<Shared>,
    listener: TcpListener,
    ex: Exec,
    stop: ShutdownSignal,
    tasks: TaskTracker,
) {
    let accept = async {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                smol::Timer::after(std::time::Duration::from_millis(20)).await;
                continue;
            };
            let shared = shared.clone();
            let service = service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(&shared, request)) }
            });
            let connection = async move {
                let _ = http1::Builder::new()
                    .timer(SmolTimer::new())
                    .serve_connection(FuturesIo::new(stream), service)
                    .await;
            };
            ex.spawn(tasks.track_future(future::or(connection, stop.clone())))
                .detach();
        }
    };
    future::or(accept, stop.clone()).await;
}

fn handle(shared: &Shared, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path();
    let usage = "serve GET /replicas, POST /replicas/{i}/down and POST /replicas/{i}/up\n";
    if path == "/replicas" {
        return if request.method() == Method::GET {
            states(shared)
        } else {
            text(StatusCode::METHOD_NOT_ALLOWED, usage)
        };
    }
    let Some(rest) = path.strip_prefix("/replicas/") else {
        return text(StatusCode::NOT_FOUND, usage);
    };
    let Some((index, action)) = rest.split_once('/') else {
        return text(StatusCode::NOT_FOUND, usage);
    };
    let down = match action {
        "down" => true,
        "up" => false,
        _ => return text(StatusCode::NOT_FOUND, usage),
    };
    if request.method() != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, usage);
    }
    let replica = index
        .parse::<usize>()
        .ok()
        .and_then(|i| shared.replicas.get(i));
    match replica {
        Some(replica) => {
            replica.set_down(down);
            json(StatusCode::OK, &replica.stats())
        }
        None => text(
            StatusCode::NOT_FOUND,
            format!(
                "no replica `{index}`: replicas are numbered 0 to {}\n",
                shared.replicas.len() - 1
            ),
        ),
    }
}

fn states(shared: &Shared) -> Response<Body> {
    let stats: Vec<_> = shared
        .replicas
        .iter()
        .map(|replica| replica.stats())
        .collect();
    json(StatusCode::OK, &stats)
}
