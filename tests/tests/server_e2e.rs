//! The hello server end to end over real sockets on 127.0.0.1: every limit, malformed input,
//! and graceful shutdown with requests in flight.
//!
//! These are real-time tests (the point is real IO); limits are short and bounds generous.

mod server_support;

use std::io::Write;
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use server_support::{closed_within, get, quick_config, read_response, TestServer};
use tailguard_demo::server::ServerConfig;

#[test]
fn hello_echo_and_health() {
    let server = TestServer::start(quick_config());
    let mut c = server.connect();
    assert_eq!(
        get(&mut c, "/gophers"),
        Some((200, "Hi there, I love gophers!".into()))
    );
    assert_eq!(get(&mut c, "/healthz"), Some((200, "ok\n".into())));
    write!(
        c,
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world"
    )
    .unwrap();
    assert_eq!(read_response(&mut c), Some((200, "11\n".into())));
    let report = server.shutdown();
    assert!(report.drained());
    assert_eq!(report.requests, 3);
}

#[test]
fn slow_headers_are_cut_at_the_header_limit() {
    let server = TestServer::start(quick_config());
    let mut c = server.connect();
    c.write_all(b"GET /slowpoke HTTP/1.1\r\nHost: te").unwrap();
    let closed = closed_within(&mut c, Duration::from_secs(5)).expect("server closed");
    assert!(closed >= Duration::from_millis(200), "{closed:?}");
    // A silent new connection is cut too (the first head is timed from accept).
    let mut silent = server.connect();
    assert!(closed_within(&mut silent, Duration::from_secs(5)).is_some());
    // Everyone else is still served.
    assert_eq!(get(&mut server.connect(), "/x").map(|r| r.0), Some(200));
    server.shutdown();
}

#[test]
fn a_stalled_body_gets_408() {
    let server = TestServer::start(quick_config());
    let mut c = server.connect();
    c.write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789")
        .unwrap();
    let start = Instant::now();
    let (status, body) = read_response(&mut c).expect("a response");
    assert_eq!(status, 408);
    assert!(body.contains("body_idle"), "{body}");
    assert!(start.elapsed() < Duration::from_secs(3));
    assert!(closed_within(&mut c, Duration::from_secs(5)).is_some());
    server.shutdown();
}

#[test]
fn a_trickled_body_is_cut_at_the_total_cap() {
    let server = TestServer::start(quick_config());
    let mut c = server.connect();
    c.write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n")
        .unwrap();
    let mut writer = c.try_clone().unwrap();
    let trickle = thread::spawn(move || {
        // One byte per 100 ms: never idle for 200 ms, but far past the 1 s total.
        for _ in 0..40 {
            if writer.write_all(b"x").is_err() {
                break;
            }
            thread::sleep(Duration::from_millis(100));
        }
    });
    let start = Instant::now();
    let (status, body) = read_response(&mut c).expect("a response");
    assert_eq!(status, 408);
    assert!(body.contains("body_total"), "{body}");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(3),
        "{took:?}"
    );
    drop(c);
    trickle.join().unwrap();
    server.shutdown();
}

#[test]
fn idle_keep_alive_outlives_the_header_limit_then_closes() {
    let server = TestServer::start(quick_config());
    let mut c = server.connect();
    assert_eq!(get(&mut c, "/one").map(|r| r.0), Some(200));
    // Idle longer than the header limit (300 ms) but within keep-alive (800 ms): still open.
    thread::sleep(Duration::from_millis(500));
    assert_eq!(get(&mut c, "/two").map(|r| r.0), Some(200));
    // Now idle past keep-alive: the server closes.
    let closed = closed_within(&mut c, Duration::from_secs(5)).expect("closed");
    assert!(closed >= Duration::from_millis(600), "{closed:?}");
    server.shutdown();
}

#[test]
fn malformed_requests_get_4xx_or_a_close_and_the_server_keeps_serving() {
    let server = TestServer::start(quick_config());
    let long_header = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(1 << 20));
    let malformed: Vec<Vec<u8>> = vec![
        b"GARBAGE\r\n\r\n".to_vec(),
        b"GET\r\n\r\n".to_vec(),
        b"GET / HTTP/9.9\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n".to_vec(),
        b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nBad Header Without Colon\r\n\r\n".to_vec(),
        b"\x00\x01\x02\x03\x04\r\n\r\n".to_vec(),
        b"GET /\x7f HTTP/1.1\r\n\r\n".to_vec(),
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
        long_header.into_bytes(),
        b"DELETE /echo HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
    ];
    for request in &malformed {
        let mut c = server.connect();
        let _ = c.write_all(request);
        // A 4xx, or a close without a response: both are fine.
        if let Some((status, _)) = read_response(&mut c) {
            assert!(
                (400..500).contains(&status),
                "{status} for {:?}",
                String::from_utf8_lossy(&request[..request.len().min(40)])
            );
        }
    }
    assert_eq!(
        get(&mut server.connect(), "/still-here").map(|r| r.0),
        Some(200)
    );
    server.shutdown();
}

#[test]
fn graceful_shutdown_finishes_requests_in_flight_and_refuses_new_ones() {
    let server = TestServer::start(quick_config());
    let addr = server.addr;
    let clients: Vec<_> = (0..5)
        .map(|_| {
            let mut c = server.connect();
            thread::spawn(move || get(&mut c, "/slow?ms=700"))
        })
        .collect();
    thread::sleep(Duration::from_millis(200)); // let every request start
    let stop = server.stop.clone();
    let started = Instant::now();
    stop.trigger();
    thread::sleep(Duration::from_millis(100));
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
        "new connections are refused once shutdown began"
    );
    for client in clients {
        assert_eq!(client.join().unwrap(), Some((200, "slept 700 ms\n".into())));
    }
    let report = server.handle.join().unwrap();
    assert!(report.drained(), "{report}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn shutdown_forces_what_outlives_the_deadline() {
    let config = ServerConfig {
        shutdown_deadline: Duration::from_millis(300),
        ..quick_config()
    };
    let server = TestServer::start(config);
    let mut c = server.connect();
    let client = thread::spawn(move || get(&mut c, "/slow?ms=10000"));
    thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let report = server.shutdown();
    assert_eq!(report.forced, 1, "{report}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(
        client.join().unwrap(),
        None,
        "the forced request gets no response"
    );
}
