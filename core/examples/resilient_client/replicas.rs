//! The replicas `resilient_client` calls: tiny hyper servers on 127.0.0.1 that answer
//! `200 OK`, `503`, or very late, as the script tells them.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{server::conn::http1, service::service_fn, Response, StatusCode};
use smol::net::TcpListener;
use smol_hyper::rt::FuturesIo;
use tailguard::time::{AsyncIoTimer, Timer};

/// How a replica answers its next requests.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// `200 OK` at once.
    Up,
    /// `200 OK` after 10 s: a stall (a GC pause, a busy disk).
    Stall,
    /// `503` once, then `Up`.
    FailOnce,
    /// `503` every time.
    Down,
}

/// A running replica.
pub struct Replica {
    pub name: &'static str,
    pub addr: SocketAddr,
    mode: Arc<AtomicU8>,
    requests: Arc<AtomicU64>,
}

impl Replica {
    /// Starts a replica on a free port of 127.0.0.1; it serves until the program ends.
    pub async fn start(name: &'static str) -> std::io::Result<Replica> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let (mode, requests) = (Arc::new(AtomicU8::new(0)), Arc::new(AtomicU64::new(0)));
        let replica = Replica {
            name,
            addr: listener.local_addr()?,
            mode,
            requests,
        };
        let (mode, requests) = (replica.mode.clone(), replica.requests.clone());
        smol::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (mode, requests) = (mode.clone(), requests.clone());
                let service = service_fn(move |_| answer(mode.clone(), requests.clone()));
                let connection =
                    http1::Builder::new().serve_connection(FuturesIo::new(stream), service);
                smol::spawn(connection).detach();
            }
        })
        .detach();
        Ok(replica)
    }

    pub fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::Relaxed);
    }

    /// How many requests it has received.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

async fn answer(
    mode: Arc<AtomicU8>,
    requests: Arc<AtomicU64>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    requests.fetch_add(1, Ordering::Relaxed);
    let status = match mode.load(Ordering::Relaxed) {
        m if m == Mode::Stall as u8 => {
            AsyncIoTimer.sleep(Duration::from_secs(10)).await;
            StatusCode::OK
        }
        m if m == Mode::FailOnce as u8 => {
            mode.store(Mode::Up as u8, Ordering::Relaxed);
            StatusCode::SERVICE_UNAVAILABLE
        }
        m if m == Mode::Down as u8 => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::OK,
    };
    let mut response = Response::new(Full::from(status.to_string()));
    *response.status_mut() = status;
    Ok(response)
}
