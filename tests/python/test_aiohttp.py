"""tailguard.aiohttp's middleware against a real local server (tests/python/http_server.py):
retries and Retry-After, idempotent methods only, a breaker per host, retried bodies closed,
the deadline."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Iterator, List, Optional, Tuple

import aiohttp
import pytest

import tailguard as tg
import tailguard.aiohttp as tga
from http_server import Reply, Server
from tailguard.metrics import Recorder

FAST = tg.Backoff.constant(0.01)
SLACK = 0.02


@pytest.fixture
def server() -> Iterator[Server]:
    with Server() as s:
        yield s


class Recording:
    """A middleware placed after tailguard's: keeps every response of every attempt."""

    def __init__(self) -> None:
        self.responses: List[aiohttp.ClientResponse] = []

    async def __call__(
        self, request: aiohttp.ClientRequest, handler: Any
    ) -> aiohttp.ClientResponse:
        response: aiohttp.ClientResponse = await handler(request)
        self.responses.append(response)
        return response


def fetch(
    url: str,
    method: str = "GET",
    recording: Optional[Recording] = None,
    total: Optional[float] = 10.0,
    **settings: Any,
) -> Tuple[int, bytes, Any]:
    """One request through a session with the middleware: (status, body, headers)."""

    async def main() -> Tuple[int, bytes, Any]:
        middlewares: Tuple[Any, ...] = (tga.Middleware(**settings),)
        if recording is not None:
            middlewares += (recording,)
        async with aiohttp.ClientSession(
            middlewares=middlewares, timeout=aiohttp.ClientTimeout(total=total)
        ) as session:
            async with session.request(method, url) as response:
                return response.status, await response.read(), response.headers

    return asyncio.run(main())


def test_retries_and_closes_the_retried_responses(server: Server) -> None:
    server.script("/a", Reply(503, b"x" * 100_000), Reply(429), Reply(200, b"done"))
    recording = Recording()
    recorder = Recorder()
    status, body, _ = fetch(server.url + "/a", recording=recording, backoff=FAST, metrics=recorder)
    assert (status, body) == (200, b"done")
    assert [s.status for s in server.seen("/a")] == [503, 429, 200]
    assert len(recording.responses) == 3
    assert [r.closed for r in recording.responses[:2]] == [True, True]
    assert recorder.value("tailguard_retry_retries_total", name="aiohttp") == 2


def test_when_retries_end_the_last_response_is_returned(server: Server) -> None:
    server.script("/a", Reply(503, b"busy"), Reply(503, b"still busy"))
    status, body, _ = fetch(server.url + "/a", attempts=2, backoff=FAST)
    assert (status, body) == (503, b"still busy")


def test_retry_after_in_seconds(server: Server) -> None:
    server.script("/a", Reply(503, retry_after=1), Reply(200))
    assert fetch(server.url + "/a", backoff=FAST)[0] == 200
    first, second = server.seen("/a")
    assert second.arrived - first.replied >= 1.0 - SLACK
    assert second.arrived - first.replied < 8.0


def test_retry_after_as_an_http_date(server: Server) -> None:
    server.script("/a", Reply(503, retry_after_date=2.0), Reply(200))
    assert fetch(server.url + "/a", backoff=FAST)[0] == 200
    first, second = server.seen("/a")
    assert first.retry_until_wall is not None
    assert second.arrived_wall >= first.retry_until_wall - SLACK


def test_a_retry_after_beyond_the_cap_is_returned(server: Server) -> None:
    server.script("/a", Reply(503, retry_after=20))
    status, _, headers = fetch(server.url + "/a", backoff=FAST, max_retry_after=5.0)
    assert status == 503 and headers["Retry-After"] == "20"
    assert len(server.seen("/a")) == 1


def test_post_is_never_retried_by_default(server: Server) -> None:
    server.script("/p", Reply(503), Reply(200))
    assert fetch(server.url + "/p", "POST", backoff=FAST)[0] == 503
    assert len(server.seen("/p")) == 1


def test_connection_errors_are_retried_then_raise_retry_error() -> None:
    with Server() as gone:
        url = gone.url + "/a"
    with pytest.raises(tg.RetryError) as info:
        fetch(url, backoff=FAST)
    assert info.value.attempts == 3
    assert isinstance(info.value.__cause__, aiohttp.ClientConnectionError)


def test_breaker_per_host() -> None:
    with Server() as bad, Server() as good:
        bad.script("/", *[Reply(500)] * 5)
        middleware = tga.Middleware(
            backoff=FAST, breaker={"consecutive_failures": 2, "open_duration": 60.0}
        )

        async def main() -> None:
            async with aiohttp.ClientSession(middlewares=(middleware,)) as session:
                for _ in range(2):
                    async with session.get(bad.url + "/") as response:
                        assert response.status == 500
                with pytest.raises(tg.CircuitOpenError):
                    await session.get(bad.url + "/")
                async with session.get(good.url + "/") as response:
                    assert response.status == 200

        asyncio.run(main())
        assert len(bad.seen()) == 2
        breaker = middleware.policy.breaker(good.host)
        assert breaker is not None and breaker.state == "closed"


def test_deadline(server: Server) -> None:
    server.script("/slow", *[Reply(delay=5.0)] * 3)
    started = time.monotonic()
    with pytest.raises((tg.RetryError, tg.AttemptTimeoutError)):
        fetch(server.url + "/slow", total=None, deadline=0.5, backoff=FAST)
    assert time.monotonic() - started < 3.0
    assert server.wait_for(lambda seen: any(s.hung_up for s in seen), timeout=5.0)


def test_the_deadline_defaults_to_the_sessions_total_timeout(server: Server) -> None:
    server.script("/slow", *[Reply(delay=5.0)] * 3)
    started = time.monotonic()
    with pytest.raises((tg.RetryError, tg.AttemptTimeoutError, asyncio.TimeoutError)):
        fetch(server.url + "/slow", total=0.5, backoff=FAST)
    assert time.monotonic() - started < 3.0


def test_hedging_is_refused() -> None:
    with pytest.raises(tg.ConfigError) as info:
        tga.Middleware(hedge=0.05)
    assert info.value.parameter == "hedge"
