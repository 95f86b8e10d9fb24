"""aiohttp client middleware that runs every request through an
:class:`~tailguard.http.HttpPolicy`: retries (idempotent methods, 429/502/503/504 and
connection errors, ``Retry-After`` honoured), a circuit breaker per host and a deadline. Needs
``tailguard[aiohttp]`` (aiohttp 3.12 or later, whose ``ClientSession`` takes
``middlewares=``).

.. code-block:: python

    import aiohttp
    import tailguard.aiohttp

    async with aiohttp.ClientSession(
        middlewares=(tailguard.aiohttp.Middleware(attempts=4),),
        timeout=aiohttp.ClientTimeout(total=10),
    ) as session:
        async with session.get(url) as response:
            ...

What a caller sees is what :mod:`tailguard.httpx` gives: the first good response, or the last
retried one when retries end; :class:`~tailguard.RetryError` (cause chained) when connection
errors exhausted the attempts, the deadline or the budget; :class:`~tailguard.CircuitOpenError`
when the host's breaker refuses; :class:`~tailguard.AttemptTimeoutError` when an attempt ran
past the deadline; any other error unchanged. Retried responses are closed.

The deadline is the policy's ``deadline``, or by default the session's ``ClientTimeout.total``
(which aiohttp itself also enforces on the whole request, retries included). Hedging is not
offered here: aiohttp's request object cannot be sent twice at once; use
:class:`tailguard.httpx.AsyncTransport` to hedge.
"""

from __future__ import annotations

from typing import Any, Optional

import aiohttp
from aiohttp import payload

from tailguard._errors import AttemptTimeoutError, ConfigError
from tailguard._http_loop import IO, first_limit, send_async
from tailguard.http import HttpPolicy

__all__ = ["Middleware"]

# Errors after which the request may be sent again (to an idempotent method): the connection
# failed, was closed or timed out (aiohttp's timeouts are ClientConnectionErrors too).
RETRYABLE = (aiohttp.ClientConnectionError,)
# What counts against a host's breaker.
UNHEALTHY = (*RETRYABLE, AttemptTimeoutError)


def _status(response: aiohttp.ClientResponse) -> int:
    return response.status


def _retry_after(response: aiohttp.ClientResponse) -> Optional[str]:
    return response.headers.get("Retry-After")


_IO = IO(
    status=_status,
    retry_after=_retry_after,
    close=aiohttp.ClientResponse.close,
    retryable=RETRYABLE,
    unhealthy=UNHEALTHY,
)


def _replayable(request: aiohttp.ClientRequest) -> bool:
    """Whether the body can be sent again: bytes (or none), not a stream or a file."""
    body = request.body
    return body == b"" or isinstance(body, payload.BytesPayload)


class Middleware:
    """An aiohttp client middleware running each request through ``policy`` (or a policy made
    from ``settings``: see :class:`~tailguard.http.HttpPolicy`). Pass it in ``middlewares=``
    to a ``ClientSession`` (or to one request)."""

    def __init__(self, *, policy: Optional[HttpPolicy] = None, **settings: Any) -> None:
        if policy is None:
            settings.setdefault("name", "aiohttp")
            policy = HttpPolicy(**settings)
        elif not isinstance(policy, HttpPolicy):
            raise TypeError(
                f"`policy` must be a tailguard.http.HttpPolicy, got {type(policy).__name__}"
            )
        elif settings:
            raise ConfigError(
                f"invalid `policy`: pass either a policy or its settings "
                f"({', '.join(settings)}), not both",
                "policy",
            )
        if policy.hedge is not None:
            raise ConfigError(
                "invalid `hedge`: aiohttp cannot send one request twice at once; hedge with "
                "tailguard.httpx.AsyncTransport",
                "hedge",
            )
        self.policy = policy

    async def __call__(
        self,
        request: aiohttp.ClientRequest,
        handler: Any,
    ) -> aiohttp.ClientResponse:
        """Sends ``request`` (through ``handler``, the rest of the chain) under the policy."""
        policy = self.policy
        session = request.session
        total = session.timeout.total if session is not None else None
        deadline = policy.request_deadline(total)

        def attempt() -> Any:
            return handler(request)

        retried = request.method in policy.methods and _replayable(request)
        host = request.url.host_port_subcomponent or ""
        response: aiohttp.ClientResponse = await send_async(
            policy, _IO, host, retried, deadline, first_limit(deadline, total), attempt
        )
        return response
