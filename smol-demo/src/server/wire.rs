//! The bytes of HTTP/1.1 that [`ConnIo`](super::conn::ConnIo) looks at: where a request head
//! ends, and the answers it writes itself (408 for a late head) or puts in place of hyper's
//! own (400, 414 and 431, which hyper sends without a body).

/// 408 for a head not received in time.
pub(super) const HEAD_TIMEOUT: &[u8] = b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\n\
content-type: text/plain; charset=utf-8\r\ncontent-length: 48\r\n\r\n\
request head not received in time (header_read)\n";

/// If `response` is one of hyper's own error answers (`400`, `414` or `431` with
/// `connection: close` and an empty body, sent when a head cannot be parsed), the same answer
/// with a body that says what was wrong. The server's own answers always have a content type
/// first, so they never match.
pub(super) fn hyper_error_body(response: &[u8]) -> Option<&'static [u8]> {
    const EMPTY: &[u8] = b"\r\nconnection: close\r\ncontent-length: 0\r\n";
    let status = response.strip_prefix(b"HTTP/1.1 ")?.get(..3)?;
    let line_end = response.windows(2).position(|w| w == b"\r\n")?;
    if !response[line_end..].starts_with(EMPTY) {
        return None;
    }
    Some(match status {
        b"400" => {
            b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\
content-type: text/plain; charset=utf-8\r\ncontent-length: 59\r\n\r\n\
malformed request: its request line or a header is invalid\n"
        }
        b"414" => {
            b"HTTP/1.1 414 URI Too Long\r\nconnection: close\r\n\
content-type: text/plain; charset=utf-8\r\ncontent-length: 38\r\n\r\n\
request target is longer than 65534 B\n"
        }
        b"431" => {
            b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\n\
content-type: text/plain; charset=utf-8\r\ncontent-length: 65\r\n\r\n\
request head is over ~400 KiB or has more than 100 header fields\n"
        }
        _ => return None,
    })
}

/// Finds the end of a request head across reads: the first empty line, `\r\n\r\n` or (as
/// hyper's parser also accepts) a bare `\n\n`.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct HeadEnd {
    /// 0: inside a line; 1: just after `\n`; 2: just after `\n\r`.
    state: u8,
}

impl HeadEnd {
    /// Where the head ends in `bytes` (the index after its last byte), if it does.
    pub(super) fn find(&mut self, bytes: &[u8]) -> Option<usize> {
        for (i, &b) in bytes.iter().enumerate() {
            self.state = match (self.state, b) {
                (1 | 2, b'\n') => return Some(i + 1),
                (_, b'\n') => 1,
                (1, b'\r') => 2,
                (0, b'\r') => 0,
                _ => 0,
            };
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_ends_are_found_across_reads() {
        let mut head = HeadEnd::default();
        assert_eq!(
            head.find(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /2"),
            Some(27)
        );
        let mut head = HeadEnd::default();
        assert_eq!(head.find(b"GET / HTTP/1.1\r\nHost: x\r"), None);
        assert_eq!(head.find(b"\n\r"), None);
        assert_eq!(head.find(b"\nrest"), Some(1));
        let mut head = HeadEnd::default();
        assert_eq!(head.find(b"GET / HTTP/1.1\nHost: x\n\nbody"), Some(24));
    }

    #[test]
    fn hyper_error_answers_get_a_body_and_the_servers_do_not() {
        let hyper_400 = b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\
date: Mon, 30 Nov 2026 03:33:51 GMT\r\n\r\n";
        let replaced = hyper_error_body(hyper_400).expect("replaced");
        let text = std::str::from_utf8(replaced).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 "));
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{text}"
        );
        for answer in [
            HEAD_TIMEOUT,
            hyper_error_body(b"HTTP/1.1 414 x\r\nconnection: close\r\ncontent-length: 0\r\n\r\n")
                .unwrap(),
            hyper_error_body(b"HTTP/1.1 431 x\r\nconnection: close\r\ncontent-length: 0\r\n\r\n")
                .unwrap(),
        ] {
            let text = std::str::from_utf8(answer).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert!(
                head.contains(&format!("content-length: {}", body.len())),
                "{text}"
            );
        }
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n\
connection: close\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(hyper_error_body(ours), None);
        assert_eq!(hyper_error_body(b"HTTP/1.1 200 OK\r\n\r\n"), None);
    }
}
