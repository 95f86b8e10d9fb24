//! A blocking raw-socket HTTP/1.1 client for the tour: it can misbehave on purpose (send half a
//! head, stall a body) and reports exactly what came back and when.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// What a raw client saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// A response: its status and the first line of its body.
    Response(u16, String),
    /// The server closed the connection without a response.
    Closed,
    /// Nothing within the client's own patience.
    Nothing,
    /// The connection could not be made.
    Refused,
}

impl Seen {
    /// The status and its reason, and for an error the setting named in the body's
    /// parentheses: `408 Request Timeout (body_idle)`, `200 OK`.
    pub fn brief(&self) -> String {
        match self {
            Seen::Response(status, line) => {
                let reason = reason(*status);
                let named = line
                    .rsplit_once('(')
                    .and_then(|(_, rest)| rest.strip_suffix(')'))
                    .filter(|_| *status >= 400);
                match named {
                    Some(setting) => format!("{status} {reason} ({setting})"),
                    None => format!("{status} {reason}"),
                }
            }
            other => other.describe(),
        }
    }

    /// A short description for a table cell, with the body's first line.
    pub fn describe(&self) -> String {
        match self {
            Seen::Response(status, line) => {
                let reason = reason(*status);
                if line.is_empty() {
                    format!("{status} {reason}")
                } else {
                    format!("{status} {reason}: {line}")
                }
            }
            Seen::Closed => "connection closed, no response".into(),
            Seen::Nothing => "nothing (gave up waiting)".into(),
            Seen::Refused => "connection refused".into(),
        }
    }
}

/// The status's reason phrase (`Request Timeout`), or nothing for an unknown status.
fn reason(status: u16) -> &'static str {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("")
}

/// Connects, with a bound on the wait.
pub fn connect(addr: SocketAddr, patience: Duration) -> Option<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(patience)).ok()?;
    stream.set_nodelay(true).ok()?;
    Some(stream)
}

/// Reads one response (head and `Content-Length` body), or says how the connection ended.
pub fn read_response(stream: &mut TcpStream) -> Seen {
    let mut data = Vec::new();
    let mut buf = [0u8; 1024];
    let head_end = loop {
        if let Some(at) = find(&data, b"\r\n\r\n") {
            break at + 4;
        }
        match stream.read(&mut buf) {
            Ok(0) => return Seen::Closed,
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Seen::Nothing
            }
            Err(_) => return Seen::Closed,
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_string();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = data[head_end..].to_vec();
    while body.len() < length {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&body)
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    Seen::Response(status, line)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Sends `request` and reads the answer; returns it and the time from the send.
pub fn exchange(addr: SocketAddr, request: &[u8], patience: Duration) -> (Seen, Duration) {
    let Some(mut stream) = connect(addr, patience) else {
        return (Seen::Refused, Duration::ZERO);
    };
    let start = Instant::now();
    if stream.write_all(request).is_err() {
        return (Seen::Closed, start.elapsed());
    }
    let seen = read_response(&mut stream);
    (seen, start.elapsed())
}

/// `GET path` on a fresh connection.
pub fn get(addr: SocketAddr, path: &str, patience: Duration) -> (Seen, Duration) {
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: tour\r\nConnection: close\r\n\r\n").as_bytes(),
        patience,
    )
}
