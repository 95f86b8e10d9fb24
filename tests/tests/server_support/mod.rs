//! What the server tests share: a server on its own runtime thread, and a raw HTTP/1.1 client.

#![allow(dead_code)] // each test file uses its own part

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tailguard::shutdown::Shutdown;
use tailguard_demo::rt;
use tailguard_demo::server::{ServeReport, Server, ServerConfig};

pub struct TestServer {
    pub addr: SocketAddr,
    pub stop: Shutdown,
    pub handle: JoinHandle<ServeReport>,
}

impl TestServer {
    pub fn start(config: ServerConfig) -> TestServer {
        TestServer::start_with(config, |server| server)
    }

    /// Starts a server that `customize` set up after binding (e.g. with an extra route).
    pub fn start_with(
        config: ServerConfig,
        customize: impl FnOnce(Server) -> Server + Send + 'static,
    ) -> TestServer {
        let stop = Shutdown::new();
        let signal = stop.signal();
        let (tx, rx) = std::sync::mpsc::channel();
        let handle = thread::spawn(move || {
            rt::run(2.try_into().unwrap(), |ex| async move {
                let server = customize(Server::bind(config).await.expect("bind"));
                tx.send(server.local_addr().unwrap()).unwrap();
                server.serve(ex, signal).await
            })
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("server started");
        TestServer { addr, stop, handle }
    }

    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
    }

    pub fn shutdown(self) -> ServeReport {
        self.stop.trigger();
        self.handle.join().expect("server thread")
    }
}

pub fn quick_config() -> ServerConfig {
    ServerConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        header_read: Duration::from_millis(300),
        body_idle: Duration::from_millis(200),
        body_total: Duration::from_millis(1000),
        write: Duration::from_millis(500),
        keep_alive_idle: Duration::from_millis(800),
        shutdown_deadline: Duration::from_secs(3),
        ..ServerConfig::default()
    }
}

/// Reads one response with a Content-Length body; `None` if the server closed first.
pub fn read_response(stream: &mut TcpStream) -> Option<(u16, String)> {
    let mut data = Vec::new();
    let mut byte = [0u8; 1];
    while !data.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(0) | Err(_) => return None,
            Ok(_) => data.push(byte[0]),
        }
    }
    let head = String::from_utf8_lossy(&data).to_string();
    let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).ok()?;
    Some((status, String::from_utf8_lossy(&body).to_string()))
}

/// Whether the server has closed the connection (EOF or reset) within `within`.
pub fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => continue, // e.g. a 408 or 400 response before the close
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return None,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return None,
            Err(_) => return Some(start.elapsed()),
        }
    }
}

pub fn get(stream: &mut TcpStream, path: &str) -> Option<(u16, String)> {
    write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").ok()?;
    read_response(stream)
}

/// A response's head (status line and fields, up to the empty line) and its body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Answer {
    /// The value of field `name` (case-insensitive), if present.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Reads one response's head, and its Content-Length body unless `head_only` (the answer to a
/// HEAD request has none); `None` if the connection ended first.
pub fn read_answer(stream: &mut TcpStream, head_only: bool) -> Option<Answer> {
    let mut data = Vec::new();
    let mut byte = [0u8; 1];
    while !data.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(0) | Err(_) => return None,
            Ok(_) => data.push(byte[0]),
        }
    }
    let head = String::from_utf8_lossy(&data).to_string();
    let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
    let mut answer = Answer {
        status,
        head,
        body: String::new(),
    };
    if !head_only {
        let length: usize = answer
            .field("content-length")
            .map_or(Some(0), |v| v.parse().ok())?;
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body).ok()?;
        answer.body = String::from_utf8_lossy(&body).to_string();
    }
    Some(answer)
}

/// Sends `request` on a new connection and reads the answer.
pub fn exchange(server: &TestServer, request: &[u8]) -> Option<Answer> {
    let mut c = server.connect();
    c.write_all(request).ok()?;
    read_answer(&mut c, request.starts_with(b"HEAD "))
}
