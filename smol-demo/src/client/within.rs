//! Calls with time limits: [`Pool::send_within`] and [`Pool::send_until`], and their [`Limits`].
//!
//! A call with a time limit tells the server how long it has: the request carries the time left
//! until the call's deadline, as it is sent, in the `tailguard-timeout` header
//! ([`tailguard::deadline_header`]), so a server that honours it can refuse work that cannot
//! finish in time instead of doing it for nobody (see [`wire_deadline`](crate::wire_deadline)).

use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use tailguard::timeout::{timeout_until, Deadline};

use super::{parse_path, ClientError, Outgoing, Pool, Reply};

/// The time limits of one call, for [`Pool::send_within`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The longest wait for a free slot of a bounded pool (never past `total`).
    pub pool_wait: Duration,
    /// The whole call: waiting, connecting, sending and reading the response.
    pub total: Duration,
}

impl Pool {
    /// `GET path` within `limits` (see [`send_within`](Pool::send_within)).
    pub async fn get_within(&self, path: &str, limits: Limits) -> Result<Reply, ClientError> {
        self.send_within(limits, Method::GET, path, Bytes::new())
            .await
    }

    /// `GET path` within `limits` and before `deadline` (see [`send_until`](Pool::send_until)).
    pub async fn get_until(
        &self,
        path: &str,
        limits: Limits,
        deadline: Deadline,
    ) -> Result<Reply, ClientError> {
        self.send_until(deadline, limits, Method::GET, path, Bytes::new())
            .await
    }

    /// Like [`get_until`](Pool::get_until), with `headers` added to the request (the caller's
    /// class, for one).
    pub async fn get_headed_until(
        &self,
        path: &str,
        limits: Limits,
        deadline: Deadline,
        headers: Option<&http::HeaderMap>,
    ) -> Result<Reply, ClientError> {
        let cap = Some(deadline.instant());
        self.call(cap, limits, Method::GET, path, Bytes::new(), headers)
            .await
    }

    /// Sends one request and reads the whole response within `limits.total`, after waiting at
    /// most `limits.pool_wait` for a slot. When a limit runs out, the error says where: waiting
    /// for a slot ([`ClientError::PoolExhausted`]), before the request was sent, or after
    /// ([`ClientError::TimedOut`]). The request carries the time it has left in the
    /// `tailguard-timeout` header.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tailguard_demo::client::{ClientConfig, Limits, Pool};
    /// use tailguard_demo::rt::Runtime;
    ///
    /// let rt = Runtime::new(2.try_into().unwrap());
    /// // A server that never answers (the kernel accepts its connections; nobody reads them).
    /// let silent = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let pool = Pool::bounded(silent.local_addr()?, ClientConfig::default(), 1.try_into()?, rt.executor().clone());
    /// let limits = Limits { pool_wait: Duration::from_millis(50), total: Duration::from_millis(100) };
    /// let busy = rt.spawn({
    ///     let pool = pool.clone();
    ///     async move { pool.get_within("/key/1", limits).await }
    /// });
    /// std::thread::sleep(Duration::from_millis(20));
    /// // The one connection is busy: nothing is sent, and the error says it is the caller's.
    /// let waited = rt.block_on(pool.get_within("/key/2", limits)).unwrap_err();
    /// assert_eq!((waited.kind(), waited.is_local()), ("pool_exhausted", true));
    /// // The first call was sent, and timed out: that one is the server's.
    /// let late = rt.block_on(busy).unwrap_err();
    /// assert_eq!((late.kind(), late.is_local()), ("timeout", false));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn send_within(
        &self,
        limits: Limits,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<Reply, ClientError> {
        self.call(None, limits, method, path, body, None).await
    }

    /// Like [`send_within`](Pool::send_within), with `headers` added to the request (the
    /// tied-request headers, for one).
    pub async fn send_headed_within(
        &self,
        limits: Limits,
        method: Method,
        path: &str,
        body: Bytes,
        headers: Option<&http::HeaderMap>,
    ) -> Result<Reply, ClientError> {
        self.call(None, limits, method, path, body, headers).await
    }

    /// Like [`send_within`](Pool::send_within), but never past `deadline` either (the caller's,
    /// say a fan-out's): the call ends at the earlier of `deadline` and `limits.total`, and the
    /// header carries the time left until that.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tailguard::timeout::Deadline;
    /// use tailguard_demo::backend::{BackendConfig, Backends, LatencyDist, Profile};
    /// use tailguard_demo::client::{ClientConfig, Limits, Pool};
    /// use tailguard_demo::rt::Runtime;
    ///
    /// let rt = Runtime::new(2.try_into().unwrap());
    /// let slow = Profile { latency: LatencyDist::Fixed(Duration::from_millis(300)), ..Profile::default() };
    /// let backends = rt.block_on(Backends::start(BackendConfig::uniform(1, slow), rt.executor()))?;
    /// let pool = Pool::new(backends.addrs()[0], ClientConfig::default(), rt.executor().clone());
    /// let limits = Limits { pool_wait: Duration::from_secs(1), total: Duration::from_secs(1) };
    /// // The call may take a second, but its caller has 100 ms: the replica, told so, refuses
    /// // 300 ms of work at once instead of doing it for nobody.
    /// let reply = rt.block_on(pool.get_until("/key/1", limits, Deadline::after(Duration::from_millis(100))))?;
    /// assert_eq!(reply.status, 504);
    /// assert_eq!(backends.stats()[0].deadline_refused, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn send_until(
        &self,
        deadline: Deadline,
        limits: Limits,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<Reply, ClientError> {
        self.call(Some(deadline.instant()), limits, method, path, body, None)
            .await
    }

    /// Like [`send_until`](Pool::send_until), with `headers` added to the request (a tied
    /// copy's, for one).
    pub async fn send_headed_until(
        &self,
        deadline: Deadline,
        limits: Limits,
        method: Method,
        path: &str,
        body: Bytes,
        headers: Option<&http::HeaderMap>,
    ) -> Result<Reply, ClientError> {
        self.call(
            Some(deadline.instant()),
            limits,
            method,
            path,
            body,
            headers,
        )
        .await
    }

    async fn call(
        &self,
        cap: Option<Instant>,
        limits: Limits,
        method: Method,
        path: &str,
        body: Bytes,
        headers: Option<&http::HeaderMap>,
    ) -> Result<Reply, ClientError> {
        let uri = parse_path(path)?;
        let inner = &self.inner;
        let start = Instant::now();
        let own = later(start, limits.total);
        let deadline = cap.map_or(own, |cap| cap.min(own));
        let wait = deadline.min(later(start, limits.pool_wait));
        let lease =
            timeout_until(wait, inner.lease())
                .await
                .map_err(|_| ClientError::PoolExhausted {
                    max_connections: self.max_connections().map_or(0, NonZeroUsize::get),
                    waited: wait.saturating_duration_since(start),
                })?;
        let mut sent = false;
        let result = timeout_until(
            deadline,
            inner.exchange(
                lease,
                Outgoing {
                    method,
                    uri,
                    body,
                    headers,
                    deadline: Some(deadline),
                },
                &mut sent,
            ),
        )
        .await;
        result.unwrap_or(Err(ClientError::TimedOut {
            limit: deadline.saturating_duration_since(start),
            sent,
        }))
    }
}

/// `now + duration`, or a century from now if that does not fit in an `Instant`.
fn later(now: Instant, duration: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 86_400);
    now.checked_add(duration)
        .or_else(|| now.checked_add(CENTURY))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_too_long_for_the_clock_mean_a_century() {
        let now = Instant::now();
        assert_eq!(
            later(now, Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
        assert!(later(now, Duration::MAX) >= now + Duration::from_secs(86_400 * 365));
    }
}
