//! An HTTP server on smol + hyper in which every wait has a limit, and that shuts down
//! gracefully: no client, silent, slow or gone, can hold a connection or the shutdown open.
//!
//! | wait | bounded by |
//! |---|---|
//! | for a request and its head (on a new or a kept-alive connection) | hyper's `header_read_timeout` |
//! | the handler (and the body it reads) | `tailguard::timeout`: past it, a 503 |
//! | a client that stops reading its response | `TimeoutIo::write_idle` |
//! | any read, as a backstop | `TimeoutIo::read_idle` |
//! | shutdown | `TaskTracker::graceful`: requests in flight finish, within a deadline |
//!
//! Run: `cargo run -p tailguard --example bounded_server` serves 127.0.0.1:8080 until Ctrl-C
//! (try `curl localhost:8080/stuck`). With `-- --self-test` it serves on a free port, calls
//! itself with well- and ill-behaved clients, prints what happened, and exits 0 if all went
//! as planned (the clients are in `self_test.rs`).

use std::convert::Infallible;
use std::error::Error;
use std::pin::pin;
use std::time::Duration;

use bytes::Bytes;
use futures::future::{select, Either};
use futures::StreamExt;
use http_body_util::Full;
use hyper::{body::Incoming, server::conn::http1, service::service_fn, Request, Response};
use smol::net::TcpListener;
use smol_hyper::rt::{FuturesIo, SmolTimer};
use tailguard::io::TimeoutIo;
use tailguard::shutdown::{Shutdown, TaskTracker};
use tailguard::time::{AsyncIoTimer, Timer};
use tailguard::timeout::FutureExt;

mod self_test;

// Short, so that the self-test takes seconds; a real server would use seconds to minutes.
const HEAD: Duration = Duration::from_secs(1);
const HANDLER: Duration = Duration::from_secs(1);
const WRITE_IDLE: Duration = Duration::from_millis(500);
// hyper keeps a read pending while a request is handled (to notice a client leaving), so
// this must leave room for the handler and the response.
const READ_IDLE: Duration = Duration::from_secs(5);
const DRAIN: Duration = Duration::from_secs(5);
const BIG: usize = 16 << 20; // more than socket buffers hold: the write must wait for the client

/// What every task of the server shares: the shutdown trigger, and the work in flight.
#[derive(Clone, Default)]
struct Server {
    shutdown: Shutdown,
    connections: TaskTracker,
    requests: TaskTracker,
}

/// `/slow` takes 300 ms, `/stuck` forever, `/big` is 16 MiB; anything else says hello.
async fn handle(
    request: Request<Incoming>,
    server: Server,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let _counted = server.requests.track();
    let work = async {
        match request.uri().path() {
            "/slow" => drop(AsyncIoTimer.sleep(Duration::from_millis(300)).await),
            "/stuck" => std::future::pending().await,
            "/big" => return Bytes::from(vec![b'x'; BIG]),
            _ => {}
        }
        Bytes::from_static(b"hello\n")
    };
    let response = match work.timeout(HANDLER).await {
        Ok(body) => Response::new(Full::new(body)),
        Err(elapsed) => Response::builder()
            .status(503)
            .body(Full::from(format!("{elapsed}\n")))
            .unwrap(), // a valid status and no headers: cannot fail
    };
    Ok(response)
}

/// Accepts connections until shutdown; each one is a task of its own.
async fn serve(listener: TcpListener, server: Server) {
    let mut stop = server.shutdown.signal();
    loop {
        let (stream, peer) = match select(pin!(listener.accept()), &mut stop).await {
            Either::Left((Ok(accepted), _)) => accepted,
            Either::Left((Err(e), _)) => {
                eprintln!("accept failed: {e}"); // e.g. out of file descriptors: wait, go on
                AsyncIoTimer.sleep(Duration::from_millis(100)).await;
                continue;
            }
            Either::Right(_) => return, // shutdown: accept no more
        };
        // hyper reads and writes only through these limits.
        let io = TimeoutIo::new(stream)
            .read_idle(READ_IDLE)
            .write_idle(WRITE_IDLE);
        let (stop, shared) = (stop.clone(), server.clone());
        let service = service_fn(move |request| handle(request, shared.clone()));
        smol::spawn(server.connections.track_future(async move {
            let mut conn = pin!(http1::Builder::new()
                .timer(SmolTimer::new()) // hyper's own timeouts need a timer
                .header_read_timeout(HEAD)
                .serve_connection(FuturesIo::new(io), service));
            let result = match select(conn.as_mut(), stop).await {
                Either::Left((result, _)) => result,
                Either::Right(_) => {
                    // Shutdown: finish the request in flight, if any, then close.
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                let cause = e.source().map(|c| format!(": {c}")).unwrap_or_default();
                println!("    server closed {peer}: {e}{cause}");
            }
        }))
        .detach();
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let self_testing = std::env::args().any(|arg| arg == "--self-test");
    let port = if self_testing { 0 } else { 8080 }; // 0: any free port
    smol::block_on(async {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let server = Server::default();
        let accepting = smol::spawn(serve(listener, server.clone()));
        println!("serving http://{addr}");
        if self_testing {
            // The test's own waits are bounded too: a server that never hangs up fails it.
            let test = self_test::run(addr, &server);
            test.timeout(Duration::from_secs(30)).await??;
        } else {
            let mut signals = async_signal::Signals::new([async_signal::Signal::Int])?;
            signals.next().await;
            server.shutdown.trigger();
        }
        accepting.await;
        match server.connections.graceful(DRAIN).await {
            Ok(()) => println!("shut down: every connection closed cleanly"),
            Err(unfinished) => println!("shut down: {unfinished}"), // the rest are dropped
        }
        Ok(())
    })
}
