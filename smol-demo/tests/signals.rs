//! The real binary under SIGTERM and SIGINT: drains and exits 0, or forces and exits 1.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

fn start(extra: &[&str]) -> (Child, SocketAddr, thread::JoinHandle<Vec<String>>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tailguard-demo"))
        .args(["serve", "--addr", "127.0.0.1:0", "--threads", "2"])
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tailguard-demo");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next().expect("a log line").unwrap();
    let addr = first
        .rsplit("http://")
        .next()
        .and_then(|a| a.trim().parse().ok())
        .unwrap_or_else(|| panic!("no address in {first:?}"));
    let rest = thread::spawn(move || lines.map_while(Result::ok).collect());
    (child, addr, rest)
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

fn slow_request(addr: SocketAddr, ms: u64) -> thread::JoinHandle<String> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(stream, "GET /slow?ms={ms} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    thread::spawn(move || {
        let mut out = String::new();
        let _ = stream.read_to_string(&mut out);
        out
    })
}

fn wait_exit(child: &mut Child, within: Duration) -> i32 {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        if start.elapsed() > within {
            let _ = child.kill();
            panic!("tailguard-demo did not exit within {within:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_drains_requests_in_flight_and_exits_zero() {
    let (mut child, addr, log) = start(&[]);
    let response = slow_request(addr, 600);
    thread::sleep(Duration::from_millis(200));
    signal(&child, "TERM");
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)), 0);
    let response = response.join().unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("slept 600 ms"), "{response}");
    let log = log.join().unwrap().join("\n");
    assert!(log.contains("drained cleanly"), "{log}");
}

#[test]
fn sigint_past_the_deadline_forces_and_exits_nonzero() {
    let (mut child, addr, log) = start(&["--shutdown-deadline", "300ms"]);
    let response = slow_request(addr, 10_000);
    thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    signal(&child, "INT");
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)), 1);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        response.join().unwrap(),
        "",
        "the forced request gets no answer"
    );
    let log = log.join().unwrap().join("\n");
    assert!(log.contains("closed by force"), "{log}");
}

#[test]
fn bad_flags_are_refused_with_a_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_tailguard-demo"))
        .args(["serve", "--body-idle", "soon"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a duration"), "{err}");

    let out = Command::new(env!("CARGO_BIN_EXE_tailguard-demo"))
        .args(["serve", "--addr", "127.0.0.1:0", "--max-connections", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid value for --max-connections"), "{err}");
}
