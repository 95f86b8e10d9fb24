//! The self-test of `bounded_server`: clients that behave, and clients that do not.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures::{AsyncReadExt, AsyncWriteExt};
use smol::net::TcpStream;
use tailguard::time::{AsyncIoTimer, Timer};

use super::{Server, BIG, READ_IDLE, WRITE_IDLE};

/// Sends `request`, reads nothing for `deaf`, then reads until the server hangs up. Returns
/// the status line, the bytes received and the time it all took.
async fn call(addr: SocketAddr, request: &str, deaf: Duration) -> (String, usize, Duration) {
    let start = Instant::now();
    let mut response = Vec::new();
    if let Ok(mut stream) = TcpStream::connect(addr).await {
        let _ = stream.write_all(request.as_bytes()).await;
        AsyncIoTimer.sleep(deaf).await;
        let mut buf = vec![0; 1 << 16];
        while let Ok(n @ 1..) = stream.read(&mut buf).await {
            response.extend_from_slice(&buf[..n]); // a reset ends the loop as EOF does
        }
    }
    let text = String::from_utf8_lossy(&response[..response.len().min(100)]).into_owned();
    let status = text.lines().next().unwrap_or("(no response)").to_owned();
    (status, response.len(), start.elapsed())
}

/// A client that starts a head, then sends a byte every 200 ms: fast enough for any idle
/// limit, too slow for the head limit. Returns how long the server let it go on.
async fn slow_client(addr: SocketAddr) -> std::io::Result<Duration> {
    let (start, mut stream) = (Instant::now(), TcpStream::connect(addr).await?);
    stream.write_all(b"GET / HTTP/1.1\r\nx-slow: ").await?;
    while stream.write_all(b"z").await.is_ok() {
        AsyncIoTimer.sleep(Duration::from_millis(200)).await;
    }
    Ok(start.elapsed())
}

/// Prints what a step of the self-test saw, and fails the test if it was not `ok`.
fn report(what: &str, ok: bool, seen: String) -> Result<(), String> {
    println!("{what}: {seen}");
    ok.then_some(()).ok_or(format!("{what}: unexpected"))
}

/// Calls the server with well- and ill-behaved clients; `Err` names the first surprise.
pub async fn run(addr: SocketAddr, server: &Server) -> Result<(), String> {
    let get = |path| format!("GET {path} HTTP/1.1\r\nhost: example\r\nconnection: close\r\n\r\n");
    let (status, ..) = call(addr, &get("/"), Duration::ZERO).await;
    report("GET /", status.ends_with("200 OK"), status)?;
    let (status, _, took) = call(addr, &get("/stuck"), Duration::ZERO).await;
    let seen = format!("{status} after {took:.1?} (handler limit)");
    report("GET /stuck", status.contains("503"), seen)?;
    let (_, _, took) = call(addr, "", Duration::ZERO).await;
    let seen = format!("cut after {took:.1?} (head limit)");
    report("silent client", took < READ_IDLE, seen)?;
    let took = slow_client(addr).await.map_err(|e| e.to_string())?;
    let seen = format!("cut after {took:.1?} (head limit)");
    report("slow client", took < READ_IDLE, seen)?;
    let (_, got, _) = call(addr, &get("/big"), WRITE_IDLE * 3).await;
    let seen = format!("GET /big cut after {got} of {BIG} bytes (write limit)");
    report("deaf client", got < BIG, seen)?;
    // Shutdown while a request is in flight: it is answered, then the server stops.
    let in_flight = smol::spawn(async move { call(addr, &get("/slow"), Duration::ZERO).await });
    while server.requests.is_empty() {
        AsyncIoTimer.sleep(Duration::from_millis(10)).await; // until the server is handling it
    }
    server.shutdown.trigger();
    let (status, ..) = in_flight.await;
    let ok = status.ends_with("200 OK");
    report("GET /slow during shutdown", ok, status)
}
