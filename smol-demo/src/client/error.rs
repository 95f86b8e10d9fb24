//! Why a call got no response.

use std::fmt;
use std::io;
use std::time::Duration;

/// Why a call got no response.
#[derive(Debug)]
pub enum ClientError {
    /// The connection was not established within `connect_timeout`.
    ConnectTimeout(Duration),
    /// The connection was refused or could not be made.
    Connect(io::Error),
    /// The connection broke, or the response was malformed, before the response head arrived.
    Request(hyper::Error),
    /// The response body could not be read to the end.
    Body(hyper::Error),
    /// The path is not a valid request target; nothing was sent.
    InvalidPath(String),
    /// [`send_within`](super::Pool::send_within): every one of a bounded pool's connections stayed
    /// busy for as long as the call could wait; nothing was sent.
    PoolExhausted {
        /// The pool's bound.
        max_connections: usize,
        /// How long the call waited.
        waited: Duration,
    },
    /// [`send_within`](super::Pool::send_within): the time limit ran out with a connection in hand,
    /// before the request was sent (`sent: false`: while connecting or checking an idle
    /// connection) or before the whole response arrived (`sent: true`).
    TimedOut {
        /// The time limit.
        limit: Duration,
        /// Whether the request had been handed to the connection.
        sent: bool,
    },
}

impl ClientError {
    /// A short name for metrics and reports: `connect_timeout`, `connect`, `request`, `body`,
    /// `invalid_path`, `pool_exhausted`, `timeout_unsent`, `timeout`.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientError::ConnectTimeout(_) => "connect_timeout",
            ClientError::Connect(_) => "connect",
            ClientError::Request(_) => "request",
            ClientError::Body(_) => "body",
            ClientError::InvalidPath(_) => "invalid_path",
            ClientError::PoolExhausted { .. } => "pool_exhausted",
            ClientError::TimedOut { sent: false, .. } => "timeout_unsent",
            ClientError::TimedOut { sent: true, .. } => "timeout",
        }
    }

    /// Whether the call failed on the caller's side, by its own limits or input, before the
    /// request was sent: an invalid path, no free slot in time, or a time limit that ran out
    /// before sending. Such a failure says nothing about the server's health (a connection
    /// refused or cut by `connect_timeout` does, and is not local).
    pub fn is_local(&self) -> bool {
        matches!(
            self,
            ClientError::InvalidPath(_)
                | ClientError::PoolExhausted { .. }
                | ClientError::TimedOut { sent: false, .. }
        )
    }

    /// Whether the call failed before a connection was made, so the server never saw it.
    pub fn is_connect(&self) -> bool {
        matches!(
            self,
            ClientError::ConnectTimeout(_) | ClientError::Connect(_)
        )
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::ConnectTimeout(limit) => write!(
                f,
                "could not connect within {limit:?} (connect_timeout): is the server overloaded?"
            ),
            ClientError::Connect(error) => {
                write!(f, "could not connect ({error}): is the server running?")
            }
            ClientError::Request(error) => write!(f, "the request failed: {error}"),
            ClientError::Body(error) => write!(f, "reading the response body failed: {error}"),
            ClientError::InvalidPath(path) => write!(
                f,
                "{path:?} is not a valid request path; give an absolute path such as \"/items?id=7\""
            ),
            ClientError::PoolExhausted {
                max_connections,
                waited,
            } => write!(
                f,
                "all {max_connections} pooled connections stayed busy for {waited:?}, so nothing \
                 was sent: the caller is sending more than the pool carries"
            ),
            ClientError::TimedOut { limit, sent: false } => write!(
                f,
                "the time limit ({limit:?}) ran out before the request was sent (while connecting)"
            ),
            ClientError::TimedOut { limit, sent: true } => {
                write!(f, "no whole response within {limit:?}")
            }
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::ConnectTimeout(_)
            | ClientError::InvalidPath(_)
            | ClientError::PoolExhausted { .. }
            | ClientError::TimedOut { .. } => None,
            ClientError::Connect(error) => Some(error),
            ClientError::Request(error) | ClientError::Body(error) => Some(error),
        }
    }
}
