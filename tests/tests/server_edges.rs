//! The server at its edges, over real sockets on 127.0.0.1: requests of every form and method,
//! what RFC 9110/9112 require of an origin server, handler panics, the connection limit, heads
//! that arrive with an earlier request, and half-closed clients.
//!
//! Real-time tests (the point is real IO): bounds are generous and the shapes are what is
//! judged (a cut near one limit, well before another).

mod server_support;

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use server_support::{closed_within, exchange, get, quick_config, read_answer, Answer, TestServer};
use tailguard_demo::server::ServerConfig;

fn metrics(server: &TestServer) -> String {
    exchange(server, b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("metrics")
        .body
}

fn status(answer: &Option<Answer>) -> Option<u16> {
    answer.as_ref().map(|a| a.status)
}

#[test]
fn every_target_form_and_method_gets_an_answer() {
    let server = TestServer::start(quick_config());
    // The request: an authority-form target used to panic the handler (no answer).
    let authority = exchange(&server, b"GET 127.0.0.1:80 HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("an answer to an authority-form GET");
    assert_eq!(authority.status, 400, "{authority:?}");
    assert!(authority.body.contains("CONNECT"), "{authority:?}");

    let options = exchange(&server, b"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n").expect("answer");
    assert_eq!(options.status, 204);
    assert_eq!(options.field("allow"), Some("GET, HEAD, POST, OPTIONS"));
    let connect = exchange(
        &server,
        b"CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .expect("answer");
    assert_eq!(connect.status, 405);
    assert!(connect.field("allow").is_some(), "{connect:?}");
    let absolute = exchange(&server, b"GET http://t/gophers HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(
        absolute.map(|a| a.body),
        Some("Hi there, I love gophers!".into())
    );

    let methods = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "BREW",
    ];
    let targets = [
        "/",
        "*",
        "127.0.0.1:80",
        "localhost:8080",
        "http://t",
        "http://t/x?y=1",
        "/echo",
        "//",
        "/%00",
        "/metrics?x",
    ];
    for method in methods {
        for target in targets {
            let request =
                format!("{method} {target} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
            let answer = exchange(&server, request.as_bytes());
            let status = status(&answer).unwrap_or_else(|| panic!("no answer to {request:?}"));
            assert!(status < 500 || status == 501, "{status} for {request:?}");
        }
    }
    assert!(
        metrics(&server).contains("tailguard_http_handler_panics_total 0\n"),
        "no handler panicked"
    );
    server.shutdown();
}

#[test]
fn a_panicking_handler_is_answered_500_counted_and_the_server_keeps_serving() {
    let server = TestServer::start_with(quick_config(), |server| {
        server.with_route("/boom", || panic!("induced by the test"))
    });
    let mut c = server.connect();
    let answer = get(&mut c, "/boom").expect("a 500, not a dropped connection");
    assert_eq!(answer.0, 500, "{answer:?}");
    assert!(closed_within(&mut c, Duration::from_secs(5)).is_some());
    assert_eq!(
        status(&exchange(&server, b"GET /boom HTTP/1.1\r\nHost: t\r\n\r\n")),
        Some(500)
    );
    let text = metrics(&server);
    assert!(
        text.contains("tailguard_http_handler_panics_total 2\n"),
        "{text}"
    );
    assert!(
        text.contains("tailguard_http_requests_total{route=\"other\",status=\"500\"} 2\n"),
        "{text}"
    );
    assert_eq!(
        get(&mut server.connect(), "/still-here").map(|r| r.0),
        Some(200)
    );
    server.shutdown();
}

#[test]
fn host_must_be_there_once_and_valid_in_http_1_1() {
    let server = TestServer::start(quick_config());
    let cases: [(&[u8], u16); 7] = [
        (b"GET /x HTTP/1.1\r\n\r\n", 400),
        (b"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET /x HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
        (b"GET /x HTTP/1.1\r\nHost: user@a\r\n\r\n", 400),
        (b"GET /x HTTP/1.1\r\nHost: a:port\r\n\r\n", 400),
        // An empty Host is what a client sends when the target has no authority.
        (b"GET /x HTTP/1.1\r\nHost:\r\n\r\n", 200),
        // HTTP/1.0 does not require one.
        (b"GET /x HTTP/1.0\r\n\r\n", 200),
    ];
    for (request, expected) in cases {
        let answer = exchange(&server, request).expect("an answer");
        assert_eq!(
            answer.status,
            expected,
            "{:?}",
            String::from_utf8_lossy(request)
        );
        if expected == 400 {
            assert!(answer.body.contains("Host"), "{answer:?}");
        }
    }
    server.shutdown();
}

#[test]
fn head_is_get_without_the_body_and_methods_get_405_or_501() {
    let server = TestServer::start(quick_config());
    let mut c = server.connect();
    c.write_all(b"HEAD /gophers HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let head = read_answer(&mut c, true).expect("an answer to HEAD");
    assert_eq!(head.status, 200);
    assert_eq!(head.field("content-length"), Some("25"), "same as GET");
    // No body came: the next answer on the connection starts right after the head.
    assert_eq!(
        get(&mut c, "/again"),
        Some((200, "Hi there, I love again!".into()))
    );

    let cases: [(&[u8], u16, Option<&str>); 5] = [
        (b"BREW /pot HTTP/1.1\r\nHost: t\r\n\r\n", 501, None),
        (
            b"DELETE /echo HTTP/1.1\r\nHost: t\r\n\r\n",
            405,
            Some("POST, OPTIONS"),
        ),
        (
            b"PUT /x HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
            405,
            Some("GET, HEAD, OPTIONS"),
        ),
        (
            b"GET /echo HTTP/1.1\r\nHost: t\r\n\r\n",
            405,
            Some("POST, OPTIONS"),
        ),
        (
            b"OPTIONS /metrics HTTP/1.1\r\nHost: t\r\n\r\n",
            204,
            Some("GET, HEAD, OPTIONS"),
        ),
    ];
    for (request, expected, allow) in cases {
        let answer = exchange(&server, request).expect("an answer");
        assert_eq!(
            answer.status,
            expected,
            "{:?}",
            String::from_utf8_lossy(request)
        );
        assert_eq!(answer.field("allow"), allow, "{answer:?}");
    }
    server.shutdown();
}

#[test]
fn framing_the_server_cannot_read_is_refused_at_once() {
    let config = ServerConfig {
        max_body_bytes: 1000,
        ..quick_config()
    };
    let server = TestServer::start(config);
    let gzip = exchange(
        &server,
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    )
    .expect("an answer");
    assert_eq!(gzip.status, 501, "{gzip:?}");
    assert!(gzip.body.contains("gzip"), "{gzip:?}");

    // A declared length over the limit is refused before any of the body is read: 413, not a
    // 408 once body_idle (200 ms) passes without the body.
    let mut c = server.connect();
    c.write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n")
        .unwrap();
    let large = read_answer(&mut c, false).expect("an answer");
    assert_eq!(large.status, 413, "{large:?}");
    assert!(large.body.contains("max_body_bytes"), "{large:?}");
    server.shutdown();
}

#[test]
fn protocol_errors_say_what_was_wrong() {
    let server = TestServer::start(quick_config());
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(70_000));
    // Too many fields rather than too many bytes: the server reads the whole head, so closing
    // after the answer cannot reset the connection before the client reads it.
    let fields: String = (0..120).map(|i| format!("X{i}: y\r\n")).collect();
    let large_head = format!("GET / HTTP/1.1\r\nHost: t\r\n{fields}\r\n");
    let cases: [(&[u8], u16); 4] = [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nBad Header Without Colon\r\n\r\n", 400),
        (long_target.as_bytes(), 414),
        (large_head.as_bytes(), 431),
    ];
    for (request, expected) in cases {
        let answer = exchange(&server, request).expect("an answer");
        assert_eq!(answer.status, expected);
        assert!(answer.body.len() > 10, "a body that says why: {answer:?}");
        assert_eq!(answer.field("connection"), Some("close"));
    }
    // A head cut at the header limit (300 ms) is answered 408 and names the limit.
    let mut c = server.connect();
    c.write_all(b"GET /slowpoke HTTP/1.1\r\nHost: t").unwrap();
    let timeout = read_answer(&mut c, false).expect("an answer");
    assert_eq!(timeout.status, 408);
    assert!(timeout.body.contains("header_read"), "{timeout:?}");
    server.shutdown();
}

#[test]
fn a_later_head_in_the_same_write_is_cut_at_the_head_limit() {
    let config = ServerConfig {
        header_read: Duration::from_millis(300),
        keep_alive_idle: Duration::from_secs(8),
        ..quick_config()
    };
    let server = TestServer::start(config);
    let mut c = server.connect();
    c.write_all(b"GET /gophers HTTP/1.1\r\nHost: x\r\n\r\nGET /gop")
        .unwrap();
    let start = Instant::now();
    assert_eq!(
        read_answer(&mut c, false).map(|a| a.body),
        Some("Hi there, I love gophers!".into())
    );
    // Then the partial second head: cut near the head limit, not at keep-alive idle (8 s).
    let second = read_answer(&mut c, false).expect("a 408 for the second head");
    assert_eq!(second.status, 408);
    let closed = closed_within(&mut c, Duration::from_secs(10)).expect("closed");
    let after = start.elapsed() + closed;
    assert!(after < Duration::from_secs(4), "cut after {after:?}");
    // The same after a body of declared length.
    let mut c = server.connect();
    c.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /gop")
        .unwrap();
    let start = Instant::now();
    assert_eq!(
        read_answer(&mut c, false).map(|a| a.body),
        Some("5\n".into())
    );
    assert_eq!(read_answer(&mut c, false).map(|a| a.status), Some(408));
    let after = start.elapsed();
    assert!(after < Duration::from_secs(4), "cut after {after:?}");
    // Two whole requests in one write are both answered, in order.
    let mut c = server.connect();
    c.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(
        read_answer(&mut c, false).map(|a| a.body),
        Some("Hi there, I love a!".into())
    );
    assert_eq!(
        read_answer(&mut c, false).map(|a| a.body),
        Some("Hi there, I love b!".into())
    );
    server.shutdown();
}

#[test]
fn half_closed_clients_get_their_answers() {
    let server = TestServer::start(quick_config());
    for _ in 0..10 {
        let mut c = server.connect();
        c.write_all(b"GET /slow?ms=100 HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let answer = read_answer(&mut c, false).expect("an answer after the half-close");
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (200, "slept 100 ms\n")
        );
        // Then the server closes: no further request can come.
        assert!(closed_within(&mut c, Duration::from_secs(5)).is_some());
    }
    server.shutdown();
}

/// `n` clients that each got one answer and now sit idle on their kept-alive connection.
fn idle_clients(server: &TestServer, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|i| {
            let mut c = server.connect();
            assert_eq!(get(&mut c, &format!("/idle{i}")).map(|r| r.0), Some(200));
            // Keep their idle order apart.
            thread::sleep(Duration::from_millis(20));
            c
        })
        .collect()
}

#[test]
fn at_the_limit_the_longest_idle_connection_makes_room() {
    let config = ServerConfig {
        max_connections: 4,
        keep_alive_idle: Duration::from_secs(30),
        ..quick_config()
    };
    let server = TestServer::start(config);
    let mut idle = idle_clients(&server, 4);
    // A new client is served at once, not after keep-alive idle (30 s).
    let start = Instant::now();
    let mut new = server.connect();
    assert_eq!(get(&mut new, "/new").map(|r| r.0), Some(200));
    let took = start.elapsed();
    assert!(took < Duration::from_secs(5), "took {took:?}");
    // The one idle longest made room; the others are still open and served.
    assert!(closed_within(&mut idle[0], Duration::from_secs(5)).is_some());
    assert_eq!(get(&mut idle[3], "/again").map(|r| r.0), Some(200));
    let evicted: f64 = metrics(&server)
        .lines()
        .find_map(|l| l.strip_prefix("tailguard_connections_evicted_total "))
        .and_then(|v| v.parse().ok())
        .expect("the evicted count");
    assert!(evicted >= 1.0, "{evicted}");
    server.shutdown();
}

#[test]
fn a_connection_in_the_middle_of_a_request_is_never_closed_for_room() {
    let config = ServerConfig {
        max_connections: 1,
        ..quick_config()
    };
    let server = TestServer::start(config);
    let mut busy = server.connect();
    busy.write_all(b"GET /slow?ms=700 HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    thread::sleep(Duration::from_millis(100));
    // No slot and none idle: the new client is told so at once.
    let refused = exchange(&server, b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n").expect("an answer");
    assert_eq!(refused.status, 503, "{refused:?}");
    assert_eq!(refused.field("retry-after"), Some("1"));
    // The request in flight is answered in full.
    assert_eq!(
        read_answer(&mut busy, false).map(|a| a.body),
        Some("slept 700 ms\n".into())
    );
    server.shutdown();
}

#[test]
fn past_the_limit_silent_connections_do_not_keep_clients_waiting() {
    let limit = 4;
    let config = ServerConfig {
        max_connections: limit,
        // Silent connections hold their slots far longer than the clients below wait.
        header_read: Duration::from_secs(20),
        keep_alive_idle: Duration::from_secs(30),
        ..quick_config()
    };
    let server = TestServer::start(config);
    let silent: Vec<TcpStream> = (0..3 * limit).map(|_| server.connect()).collect();
    thread::sleep(Duration::from_millis(100));
    for round in 0..5 {
        let start = Instant::now();
        let mut c = server.connect();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let answer = read_answer(&mut c, false)
            .unwrap_or_else(|| panic!("round {round}: no answer within 5 s"));
        let took = start.elapsed();
        assert!(
            answer.status == 200 || answer.status == 503,
            "round {round}: {answer:?}"
        );
        if answer.status == 503 {
            assert_eq!(answer.field("retry-after"), Some("1"));
        }
        assert!(took < Duration::from_secs(3), "round {round} took {took:?}");
    }
    drop(silent);
    server.shutdown();
}
