"""httpx transports that run every request through an :class:`~tailguard.http.HttpPolicy`:
retries (idempotent methods, 429/502/503/504 and connection errors, ``Retry-After`` honoured),
a circuit breaker per host, hedging (async) and a deadline. Needs ``tailguard[httpx]``.

.. code-block:: python

    import httpx
    import tailguard.httpx

    client = httpx.Client(transport=tailguard.httpx.Transport(attempts=4), timeout=5.0)
    async_client = httpx.AsyncClient(transport=tailguard.httpx.AsyncTransport(hedge="p95"))

Each wraps an inner transport (default ``httpx.HTTPTransport()`` /
``httpx.AsyncHTTPTransport()``) and takes the policy's settings as keywords, or a ready
``policy=``. What a caller sees:

- a response: the first good one, or the last retried one (a 503, say) when retries end: the
  retries' own statuses are never raised;
- :class:`~tailguard.RetryError` when connection errors exhausted the attempts, the deadline
  or the budget, with the last error as ``__cause__``;
- :class:`~tailguard.CircuitOpenError` when the host's breaker refuses the request;
- :class:`~tailguard.AttemptTimeoutError` (async) when an attempt ran past the deadline;
- any other error as the inner transport raised it (an error of a method that is not retried,
  say), unchanged.

Retried errors (for the methods retried): ``httpx.NetworkError`` (connect, read, write,
close), ``httpx.TimeoutException`` and ``httpx.RemoteProtocolError`` (the server closed the
connection before answering); they, and attempts cut by the deadline, count against the host's
breaker. ``ProxyError``, ``UnsupportedProtocol`` and ``LocalProtocolError`` are raised at once.

Every response not handed to the caller (retried ones, hedges that lost) is closed, and a
hedge that lost is cancelled, which closes its connection.

The deadline is the policy's ``deadline``, or by default the longest of the request's httpx
timeouts. The sync transport caps each attempt's httpx timeouts at what is left of it; the async
one also cancels the attempt when it is spent.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import httpx

from tailguard._errors import AttemptTimeoutError, ConfigError
from tailguard._http_loop import IO, first_limit, send_async, send_sync
from tailguard.http import HttpPolicy

__all__ = ["AsyncTransport", "Transport"]

# Errors after which the request may be sent again (to an idempotent method): the connection
# failed, timed out or was closed before a response came.
RETRYABLE = (httpx.NetworkError, httpx.TimeoutException, httpx.RemoteProtocolError)
# What counts against a host's breaker.
UNHEALTHY = (*RETRYABLE, AttemptTimeoutError)


def _status(response: httpx.Response) -> int:
    return response.status_code


def _retry_after(response: httpx.Response) -> Optional[str]:
    value: Optional[str] = response.headers.get("retry-after")
    return value


_SYNC_IO = IO(
    status=_status,
    retry_after=_retry_after,
    close=httpx.Response.close,
    retryable=RETRYABLE,
    unhealthy=UNHEALTHY,
)
_ASYNC_IO = _SYNC_IO._replace(close=httpx.Response.aclose)


def _longest(timeout: Any) -> Optional[float]:
    """The longest of httpx's timeouts for a request (the ``timeout`` extension), or None."""
    longest = None
    if type(timeout) is dict:
        for value in timeout.values():
            if value is not None and (longest is None or value > longest):
                longest = value
    return longest


def _replayable(request: httpx.Request) -> bool:
    """Whether the body can be sent again: bytes (or none), not a stream."""
    return isinstance(request.stream, httpx.ByteStream)


class _Hosts:
    """``host:port`` of a URL (as httpx's ``netloc``, the port left out when it is the
    scheme's default), remembered by host and port: ``URL.netloc`` costs several times more
    than the two parts it is made of."""

    def __init__(self) -> None:
        self._known: Dict[Tuple[object, object], str] = {}

    def of(self, url: httpx.URL) -> str:
        try:  # the parsed parts httpx keeps (0.24 and later): plain attributes
            parts = url._uri_reference
            key: Tuple[object, object] = (parts.host, parts.port)
        except AttributeError:  # pragma: no cover - another httpx
            key = (url.raw_host, url.port)
        found = self._known.get(key)
        if found is None:
            if len(self._known) >= _HOSTS_KEPT:
                self._known.clear()
            found = self._known[key] = url.netloc.decode("ascii")
        return found


_HOSTS_KEPT = 4096


def _policy(policy: Optional[HttpPolicy], settings: Dict[str, Any]) -> HttpPolicy:
    if policy is None:
        settings.setdefault("name", "httpx")
        return HttpPolicy(**settings)
    if not isinstance(policy, HttpPolicy):
        raise TypeError(f"`policy` must be a tailguard.http.HttpPolicy, got {type(policy).__name__}")
    if settings:
        raise ConfigError(
            f"invalid `policy`: pass either a policy or its settings ({', '.join(settings)}), "
            "not both",
            "policy",
        )
    return policy


class Transport(httpx.BaseTransport):
    """A sync httpx transport running each request through ``policy`` (or a policy made from
    ``settings``: see :class:`~tailguard.http.HttpPolicy`), over ``transport`` (default
    ``httpx.HTTPTransport()``). Hedging needs :class:`AsyncTransport`."""

    def __init__(
        self,
        transport: Optional[httpx.BaseTransport] = None,
        *,
        policy: Optional[HttpPolicy] = None,
        **settings: Any,
    ) -> None:
        self.policy = _policy(policy, settings)
        if self.policy.hedge is not None:
            raise ConfigError(
                "invalid `hedge`: hedging needs tailguard.httpx.AsyncTransport (a sync attempt "
                "cannot be cancelled)",
                "hedge",
            )
        self.transport = transport if transport is not None else httpx.HTTPTransport()
        self._hosts = _Hosts()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Sends ``request`` under the policy."""
        policy = self.policy
        inner = self.transport
        timeout = request.extensions.get("timeout")
        longest = _longest(timeout)
        deadline = policy.request_deadline(longest)

        def attempt(limit: Optional[float]) -> httpx.Response:
            if limit is not None and isinstance(timeout, dict):
                capped = {k: limit if v is None else min(v, limit) for k, v in timeout.items()}
                request.extensions = {**request.extensions, "timeout": capped}
            return inner.handle_request(request)

        retried = request.method in policy.methods and _replayable(request)
        response: httpx.Response = send_sync(
            policy,
            _SYNC_IO,
            self._hosts.of(request.url),
            retried,
            deadline,
            first_limit(deadline, longest),
            attempt,
        )
        return response

    def close(self) -> None:
        """Closes the inner transport."""
        self.transport.close()


class AsyncTransport(httpx.AsyncBaseTransport):
    """An asyncio httpx transport running each request through ``policy`` (or a policy made
    from ``settings``: see :class:`~tailguard.http.HttpPolicy`), over ``transport`` (default
    ``httpx.AsyncHTTPTransport()``); with ``hedge=``, retried methods are hedged too."""

    def __init__(
        self,
        transport: Optional[httpx.AsyncBaseTransport] = None,
        *,
        policy: Optional[HttpPolicy] = None,
        **settings: Any,
    ) -> None:
        self.policy = _policy(policy, settings)
        self.transport = transport if transport is not None else httpx.AsyncHTTPTransport()
        self._hosts = _Hosts()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Sends ``request`` under the policy."""
        policy = self.policy
        inner = self.transport
        longest = _longest(request.extensions.get("timeout"))
        deadline = policy.request_deadline(longest)

        def attempt() -> Any:
            return inner.handle_async_request(request)

        retried = request.method in policy.methods and _replayable(request)
        response: httpx.Response = await send_async(
            policy,
            _ASYNC_IO,
            self._hosts.of(request.url),
            retried,
            deadline,
            first_limit(deadline, longest),
            attempt,
        )
        return response

    async def aclose(self) -> None:
        """Closes the inner transport."""
        await self.transport.aclose()
