//! The caller's deadline over the wire (`tailguard-timeout`), end to end over real sockets on
//! 127.0.0.1: the demo server and the backend replicas refuse at once what cannot finish
//! (expired, too short), answer 400 to a malformed header, stop a handler at the deadline, count
//! it all; and the gateway sends each call the time it has left, never more than its caller's.
//!
//! Real-time tests (the point is real IO): generous bounds, shapes judged ("at once" is well
//! under the work refused).

mod gateway_support;
mod server_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use gateway_support::{fixed, n, Stack};
use server_support::{closed_within, exchange, quick_config, read_answer, Answer, TestServer};
use tailguard::deadline_header::decode;
use tailguard_demo::backend::{BackendConfig, Backends};
use tailguard_demo::gateway::HedgeMode;
use tailguard_demo::rt::Runtime;

fn get_with(server: &TestServer, path: &str, timeout: &str) -> (Answer, Duration) {
    let started = Instant::now();
    let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\ntailguard-timeout: {timeout}\r\n\r\n");
    let answer = exchange(server, request.as_bytes()).expect("an answer");
    (answer, started.elapsed())
}

/// The value of the series `name{labels}` in a Prometheus text document.
fn series(text: &str, name_and_labels: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name_and_labels} in\n{text}"))
        .parse()
        .unwrap()
}

#[test]
fn the_server_refuses_what_cannot_finish_and_honours_the_rest() {
    let server = TestServer::start(quick_config());

    // Expired: 504 at once, nothing done.
    let (expired, took) = get_with(&server, "/slow?ms=400", "0n");
    assert_eq!(expired.status, 504, "{expired:?}");
    assert!(
        expired.body.contains("had passed on arrival"),
        "{expired:?}"
    );
    assert_eq!(expired.field("tailguard-refused"), Some("expired"));
    assert!(took < Duration::from_millis(300), "{took:?}");

    // Too short for the route's known minimum (`/slow?ms=400` takes 400 ms): 504 at once.
    let (short, took) = get_with(&server, "/slow?ms=400", "100m");
    assert_eq!(short.status, 504, "{short:?}");
    assert!(
        short.body.contains("but this work takes 400 ms"),
        "{short:?}"
    );
    assert_eq!(short.field("tailguard-refused"), Some("too_short"));
    assert!(took < Duration::from_millis(300), "{took:?}");

    // Malformed, in three ways: 400 with the reason, never a panic.
    for (value, says) in [
        ("250ms", "after its unit 'm'"),
        ("123456789m", "9 digits"),
        ("-1S", "'-' where a digit belongs"),
    ] {
        let (bad, _) = get_with(&server, "/slow?ms=10", value);
        assert_eq!(bad.status, 400, "{value}: {bad:?}");
        assert!(bad.body.contains(says), "{value}: {bad:?}");
        assert_eq!(bad.body.lines().count(), 1, "{bad:?}");
    }
    let repeated = exchange(
        &server,
        b"GET / HTTP/1.1\r\nHost: t\r\ntailguard-timeout: 1S\r\ntailguard-timeout: 2S\r\n\r\n",
    )
    .expect("an answer");
    assert_eq!(repeated.status, 400, "{repeated:?}");
    assert!(repeated.body.contains("appears 2 times"), "{repeated:?}");

    // Long enough: served as usual.
    let (honoured, took) = get_with(&server, "/slow?ms=50", "5S");
    assert_eq!(
        (honoured.status, honoured.body.as_str()),
        (200, "slept 50 ms\n")
    );
    assert!(took >= Duration::from_millis(50), "{took:?}");
    let (hello, _) = get_with(&server, "/gophers", "99999999H");
    assert_eq!(hello.status, 200, "{hello:?}");

    // A handler with no known minimum that runs into the deadline is stopped there: an echo
    // whose body never comes (body_idle is 200 ms; the caller has 60).
    let mut c = server.connect();
    let started = Instant::now();
    c.write_all(
        b"POST /echo HTTP/1.1\r\nHost: t\r\ntailguard-timeout: 60m\r\nContent-Length: 10\r\n\r\nhalf",
    )
    .unwrap();
    let stopped = read_answer(&mut c, false).expect("an answer");
    let took = started.elapsed();
    assert_eq!(stopped.status, 504, "{stopped:?}");
    assert!(stopped.body.contains("the work was stopped"), "{stopped:?}");
    assert_eq!(stopped.field("tailguard-refused"), Some("stopped"));
    assert!(
        took >= Duration::from_millis(60) && took < Duration::from_millis(190),
        "{took:?}"
    );
    assert!(
        closed_within(&mut c, Duration::from_secs(2)).is_some(),
        "the rest of the body is unread: the connection closes"
    );

    // Everything counted, by reason.
    let metrics = exchange(&server, b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("metrics")
        .body;
    let refusals = "tailguard_http_deadline_refusals_total";
    assert_eq!(
        series(&metrics, &format!("{refusals}{{reason=\"expired\"}}")),
        1
    );
    assert_eq!(
        series(&metrics, &format!("{refusals}{{reason=\"too_short\"}}")),
        1
    );
    assert_eq!(
        series(&metrics, &format!("{refusals}{{reason=\"malformed\"}}")),
        4
    );
    assert_eq!(series(&metrics, "tailguard_http_deadline_stopped_total"), 1);
    assert_eq!(
        series(
            &metrics,
            "tailguard_http_requests_total{route=\"slow\",status=\"504\"}"
        ),
        2
    );
    assert_eq!(series(&metrics, "tailguard_http_handler_panics_total"), 0);
    assert!(server.shutdown().drained());
}

/// One raw `GET path` to `addr` with `headers` (CRLF-terminated lines).
fn raw_get(addr: SocketAddr, path: &str, headers: &str) -> (Answer, Duration) {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    write!(c, "GET {path} HTTP/1.1\r\nHost: t\r\n{headers}\r\n").unwrap();
    let answer = read_answer(&mut c, false).expect("an answer");
    (answer, started.elapsed())
}

#[test]
fn a_replica_refuses_work_longer_than_the_time_left_without_doing_it() {
    let rt = Runtime::new(2.try_into().unwrap());
    let backends = rt
        .block_on(Backends::start(
            BackendConfig::uniform(1, fixed(300)),
            rt.executor(),
        ))
        .unwrap();
    let addr = backends.addrs()[0];

    let (short, took) = raw_get(addr, "/k", "tailguard-timeout: 100m\r\n");
    assert_eq!(short.status, 504, "{short:?}");
    assert!(short.body.contains("takes 300 ms"), "{short:?}");
    assert_eq!(short.field("x-replica"), Some("0"));
    assert!(took < Duration::from_millis(250), "{took:?}");
    let (expired, took) = raw_get(addr, "/k", "tailguard-timeout: 0m\r\n");
    assert_eq!(expired.status, 504, "{expired:?}");
    assert!(took < Duration::from_millis(250), "{took:?}");
    let (bad, _) = raw_get(addr, "/k", "tailguard-timeout: 1.5S\r\n");
    assert_eq!(bad.status, 400, "{bad:?}");
    assert!(bad.body.contains("'.' where a digit belongs"), "{bad:?}");
    let (honoured, took) = raw_get(addr, "/k", "tailguard-timeout: 2S\r\n");
    assert_eq!(honoured.status, 200, "{honoured:?}");
    assert!(took >= Duration::from_millis(300), "{took:?}");
    let (plain, _) = raw_get(addr, "/k", "");
    assert_eq!(plain.status, 200, "{plain:?}");

    let stats = backends.stats()[0];
    assert_eq!(
        (stats.deadline_refused, stats.malformed, stats.ok),
        (2, 1, 2),
        "{stats:?}"
    );
    assert_eq!((stats.requests, stats.in_flight), (5, 0), "{stats:?}");
    rt.block_on(backends.stop());
}

#[test]
fn a_replica_judges_the_time_left_after_its_queue_against_the_callers_deadline() {
    // One worker, 100 ms of work: a request that waits its turn behind another has 100 ms less.
    let rt = Runtime::new(2.try_into().unwrap());
    let profile = tailguard_demo::backend::Profile {
        workers: Some(1),
        ..fixed(100)
    };
    let backends = rt
        .block_on(Backends::start(
            BackendConfig::uniform(1, profile),
            rt.executor(),
        ))
        .unwrap();
    let addr = backends.addrs()[0];
    let busy = |headers: &'static str| thread::spawn(move || raw_get(addr, "/k", headers));

    // 160 ms, of which about 100 go to the wait: 60 ms left for 100 ms of work, refused when
    // the worker picks it up (not when it arrives, and not run to the deadline).
    let first = busy("");
    thread::sleep(Duration::from_millis(20));
    let (late, took) = raw_get(addr, "/k", "tailguard-timeout: 160m\r\n");
    assert_eq!(late.status, 504, "{late:?}");
    assert_eq!(
        late.field("tailguard-refused"),
        Some("too_short"),
        "{late:?}"
    );
    assert!(took < Duration::from_millis(150), "{took:?}");
    assert_eq!(first.join().unwrap().0.status, 200);

    // 40 ms: the deadline passes in the queue, and the wait ends there.
    let first = busy("");
    thread::sleep(Duration::from_millis(20));
    let (waited, took) = raw_get(addr, "/k", "tailguard-timeout: 40m\r\n");
    assert_eq!(
        waited.field("tailguard-refused"),
        Some("stopped"),
        "{waited:?}"
    );
    assert!(took < Duration::from_millis(75), "{took:?}");
    assert_eq!(first.join().unwrap().0.status, 200);

    let stats = backends.stats()[0];
    assert_eq!(
        (stats.deadline_refused, stats.deadline_stopped, stats.ok),
        (1, 1, 2),
        "{stats:?}"
    );
    rt.block_on(backends.stop());
}

/// A replica that records the `tailguard-timeout` of every request (decoded), then answers 200
/// after `delay`.
struct Recorder {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Option<Duration>>>>,
}

impl Recorder {
    fn start(delay: Duration) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let record = record.clone();
                thread::spawn(move || serve(stream, delay, &record));
            }
        });
        Recorder { addr, seen }
    }

    fn seen(&self) -> Vec<Option<Duration>> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(mut stream: TcpStream, delay: Duration, record: &Mutex<Vec<Option<Duration>>>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        head.clear();
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
        }
        let text = String::from_utf8_lossy(&head).to_string();
        let timeout = text.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("tailguard-timeout")
                .then(|| decode(value.trim()).expect("the gateway sends valid values"))
        });
        record.lock().unwrap().push(timeout);
        thread::sleep(delay);
        if stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .is_err()
        {
            return;
        }
    }
}

#[test]
fn the_gateway_sends_each_call_the_time_it_has_left_never_more_than_its_callers() {
    // One key at a time, 30 ms each, under a 1 s fan-out deadline (nearer than call_timeout):
    // each call is sent later, with less time left.
    let recorder = Recorder::start(Duration::from_millis(30));
    let stack = Stack::start(BackendConfig::uniform(1, fixed(1)), |c| {
        c.replicas = vec![recorder.addr];
        c.hedge = HedgeMode::Off;
        c.fanout_concurrency = 1;
        c.call_timeout = Duration::from_secs(5);
        c.fanout_deadline = Duration::from_secs(1);
    });
    let report = stack.fanout(4);
    assert_eq!(n(&report["ok"]), 4, "{report}");
    let seen: Vec<Duration> = recorder.seen().into_iter().map(|t| t.unwrap()).collect();
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert!(seen[0] <= Duration::from_secs(1), "{seen:?}");
    for pair in seen.windows(2) {
        // At least the 30 ms the previous call took.
        assert!(pair[1] + Duration::from_millis(30) <= pair[0], "{seen:?}");
    }

    // The caller's own deadline, nearer than the fan-out's, is what the calls are told.
    let (status, body) = {
        let mut c = TcpStream::connect(stack.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            c,
            "GET /fanout?keys=2 HTTP/1.1\r\nHost: t\r\ntailguard-timeout: 300m\r\n\r\n"
        )
        .unwrap();
        let answer = read_answer(&mut c, false).expect("an answer");
        (answer.status, answer.body)
    };
    assert_eq!(status, 200, "{body}");
    let seen = recorder.seen();
    let told: Vec<Duration> = seen[4..].iter().map(|t| t.unwrap()).collect();
    assert_eq!(told.len(), 2, "{seen:?}");
    assert!(
        told.iter().all(|t| *t <= Duration::from_millis(300)),
        "{told:?}"
    );
    assert!(told[1] + Duration::from_millis(30) <= told[0], "{told:?}");

    // A fan-out whose caller has no time left is refused by the server, nothing sent.
    let (status, body) = {
        let mut c = TcpStream::connect(stack.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            c,
            "GET /fanout?keys=2 HTTP/1.1\r\nHost: t\r\ntailguard-timeout: 0n\r\n\r\n"
        )
        .unwrap();
        let answer = read_answer(&mut c, false).expect("an answer");
        (answer.status, answer.body)
    };
    assert_eq!(status, 504, "{body}");
    assert_eq!(recorder.seen().len(), 6, "nothing more was sent");
    stack.shutdown();
}

#[test]
fn tied_copies_carry_the_callers_deadline_too() {
    // Tied requests: each key goes to two replicas, and each copy is told the time its caller
    // has left (300 ms here), not the gateway's 5 s call timeout.
    let recorders = [
        Recorder::start(Duration::from_millis(30)),
        Recorder::start(Duration::from_millis(30)),
    ];
    let stack = Stack::start(BackendConfig::uniform(1, fixed(1)), |c| {
        c.replicas = recorders.iter().map(|r| r.addr).collect();
        c.hedge = HedgeMode::Tied(Duration::from_millis(1));
        c.call_timeout = Duration::from_secs(5);
        c.fanout_deadline = Duration::from_secs(2);
    });
    let (status, body) = {
        let mut c = TcpStream::connect(stack.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            c,
            "GET /fanout?keys=2 HTTP/1.1\r\nHost: t\r\ntailguard-timeout: 300m\r\n\r\n"
        )
        .unwrap();
        let answer = read_answer(&mut c, false).expect("an answer");
        (answer.status, answer.body)
    };
    assert_eq!(status, 200, "{body}");
    // Both copies of both keys were sent (these replicas never cancel): give the losing copies
    // a moment to arrive.
    let deadline = Instant::now() + Duration::from_secs(5);
    while recorders.iter().map(|r| r.seen().len()).sum::<usize>() < 4 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    let told: Vec<Option<Duration>> = recorders.iter().flat_map(|r| r.seen()).collect();
    assert_eq!(told.len(), 4, "{told:?}");
    assert!(
        told.iter()
            .all(|t| t.is_some_and(|t| t <= Duration::from_millis(300))),
        "{told:?}"
    );
    stack.shutdown();
}
