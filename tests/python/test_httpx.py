"""tailguard.httpx against a real local server (tests/python/http_server.py): retries and
Retry-After, idempotent methods only, a breaker per host, hedging that hangs up on the loser,
abandoned bodies closed, the deadline; the sync and the async transport alike."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Iterator, List

import httpx
import pytest

import tailguard as tg
import tailguard.httpx as tgx
from http_server import Reply, Server
from tailguard.http import HttpPolicy
from tailguard.metrics import Recorder

FAST = tg.Backoff.constant(0.01)
# Wall and monotonic clocks tick at different moments; what the client waits is never shorter
# than asked, but the two readings may disagree by this much.
SLACK = 0.02


@pytest.fixture
def server() -> Iterator[Server]:
    with Server() as s:
        yield s


class Recording(httpx.HTTPTransport):
    """A real transport that keeps every response it hands out (to check which were closed)."""

    def __init__(self) -> None:
        super().__init__()
        self.responses: List[httpx.Response] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        self.responses.append(response)
        return response


class AsyncRecording(httpx.AsyncHTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.responses: List[httpx.Response] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        self.responses.append(response)
        return response


def get_sync(url: str, method: str = "GET", **settings: Any) -> httpx.Response:
    with httpx.Client(transport=tgx.Transport(**settings), timeout=10.0) as client:
        return client.request(method, url)


def get_async(url: str, method: str = "GET", **settings: Any) -> httpx.Response:
    async def main() -> httpx.Response:
        async with httpx.AsyncClient(
            transport=tgx.AsyncTransport(**settings), timeout=10.0
        ) as client:
            return await client.request(method, url)

    return asyncio.run(main())


GETS = [pytest.param(get_sync, id="sync"), pytest.param(get_async, id="async")]


@pytest.mark.parametrize("get", GETS)
def test_retries_the_retried_statuses_and_counts_the_retries(server: Server, get: Any) -> None:
    server.script("/a", Reply(503), Reply(429), Reply(502), Reply(200, b"done"))
    recorder = Recorder()
    response = get(server.url + "/a", attempts=4, backoff=FAST, metrics=recorder)
    assert response.status_code == 200 and response.content == b"done"
    assert [s.status for s in server.seen("/a")] == [503, 429, 502, 200]
    assert recorder.value("tailguard_retry_retries_total", name="httpx") == 3


@pytest.mark.parametrize("get", GETS)
def test_when_retries_end_the_last_response_is_returned(server: Server, get: Any) -> None:
    server.script("/a", Reply(503, b"busy"), Reply(503, b"still busy"))
    response = get(server.url + "/a", attempts=2, backoff=FAST)
    assert response.status_code == 503 and response.content == b"still busy"
    assert len(server.seen("/a")) == 2


def test_abandoned_bodies_are_closed_sync(server: Server) -> None:
    server.script("/a", Reply(503, b"x" * 100_000), Reply(502), Reply(200))
    inner = Recording()
    with httpx.Client(transport=tgx.Transport(inner, backoff=FAST)) as client:
        response = client.get(server.url + "/a")
    assert response.status_code == 200
    assert len(inner.responses) == 3
    assert [r.is_closed for r in inner.responses[:2]] == [True, True]


def test_abandoned_bodies_are_closed_async(server: Server) -> None:
    server.script("/a", Reply(503, b"x" * 100_000), Reply(502), Reply(200))
    inner = AsyncRecording()

    async def main() -> httpx.Response:
        async with httpx.AsyncClient(transport=tgx.AsyncTransport(inner, backoff=FAST)) as c:
            return await c.get(server.url + "/a")

    assert asyncio.run(main()).status_code == 200
    assert len(inner.responses) == 3
    assert [r.is_closed for r in inner.responses[:2]] == [True, True]


@pytest.mark.parametrize("get", GETS)
def test_retry_after_in_seconds_is_waited_out_never_less(server: Server, get: Any) -> None:
    server.script("/a", Reply(503, retry_after=1), Reply(200))
    response = get(server.url + "/a", backoff=FAST)
    assert response.status_code == 200
    first, second = server.seen("/a")
    # The second request left after the 503 arrived (>= first.replied) plus the wait.
    assert second.arrived - first.replied >= 1.0 - SLACK
    assert second.arrived - first.replied < 8.0  # the shape: about a second, not the backoff's


@pytest.mark.parametrize("get", GETS)
def test_retry_after_as_an_http_date_is_waited_out(server: Server, get: Any) -> None:
    server.script("/a", Reply(503, retry_after_date=2.0), Reply(200))
    response = get(server.url + "/a", backoff=FAST)
    assert response.status_code == 200
    first, second = server.seen("/a")
    assert first.retry_until_wall is not None
    assert second.arrived_wall >= first.retry_until_wall - SLACK
    assert second.arrived - first.replied < 8.0


@pytest.mark.parametrize("get", GETS)
def test_a_retry_after_beyond_the_cap_is_not_retried_early(server: Server, get: Any) -> None:
    server.script("/a", Reply(503, retry_after=20))
    started = time.monotonic()
    response = get(server.url + "/a", backoff=FAST, max_retry_after=5.0)
    assert response.status_code == 503 and response.headers["retry-after"] == "20"
    assert len(server.seen("/a")) == 1
    assert time.monotonic() - started < 5.0


@pytest.mark.parametrize("get", GETS)
def test_a_retry_after_past_the_deadline_is_not_waited(server: Server, get: Any) -> None:
    server.script("/a", Reply(503, retry_after=5))
    started = time.monotonic()
    response = get(server.url + "/a", backoff=FAST, deadline=2.0)
    assert response.status_code == 503
    assert len(server.seen("/a")) == 1
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("get", GETS)
def test_post_is_never_retried_by_default(server: Server, get: Any) -> None:
    server.script("/p", Reply(503), Reply(200))
    response = get(server.url + "/p", "POST", backoff=FAST)
    assert response.status_code == 503
    assert [s.method for s in server.seen("/p")] == ["POST"]


@pytest.mark.parametrize("get", GETS)
def test_post_is_retried_when_configured(server: Server, get: Any) -> None:
    server.script("/p", Reply(503), Reply(200))
    response = get(server.url + "/p", "POST", backoff=FAST, methods={"GET", "POST"})
    assert response.status_code == 200
    assert len(server.seen("/p")) == 2


@pytest.mark.parametrize("get", GETS)
def test_connection_errors_are_retried_then_raise_retry_error(get: Any) -> None:
    with Server() as gone:
        url = gone.url + "/a"
    with pytest.raises(tg.RetryError) as info:
        get(url, backoff=FAST)
    assert info.value.attempts == 3 and info.value.reason == "exhausted"
    assert isinstance(info.value.__cause__, httpx.ConnectError)


@pytest.mark.parametrize("get", GETS)
def test_a_post_connection_error_is_raised_as_it_is(get: Any) -> None:
    with Server() as gone:
        url = gone.url + "/a"
    with pytest.raises(httpx.ConnectError):
        get(url, "POST", backoff=FAST)


def test_breaker_per_host_sync() -> None:
    with Server() as bad, Server() as good:
        bad.script("/", *[Reply(500)] * 5)
        transport = tgx.Transport(
            backoff=FAST, breaker={"consecutive_failures": 2, "open_duration": 60.0}
        )
        with httpx.Client(transport=transport) as client:
            assert client.get(bad.url + "/").status_code == 500
            assert client.get(bad.url + "/").status_code == 500
            with pytest.raises(tg.CircuitOpenError):
                client.get(bad.url + "/")
            assert client.get(good.url + "/").status_code == 200
        assert len(bad.seen()) == 2  # the refused request never reached the server
        policy = transport.policy
        assert policy.breaker(bad.host) is not None
        assert policy.breaker(bad.host).state == "open"  # type: ignore[union-attr]
        assert policy.breaker(good.host).state == "closed"  # type: ignore[union-attr]


def test_breaker_per_host_async() -> None:
    with Server() as bad, Server() as good:
        bad.script("/", *[Reply(503)] * 10)
        transport = tgx.AsyncTransport(
            backoff=FAST, breaker={"consecutive_failures": 2, "open_duration": 60.0}
        )

        async def main() -> None:
            async with httpx.AsyncClient(transport=transport) as client:
                # Two 503s (retried, each a failure) open the breaker; the third attempt is
                # refused, and the refusal is not retried.
                with pytest.raises(tg.CircuitOpenError):
                    await client.get(bad.url + "/")
                assert (await client.get(good.url + "/")).status_code == 200

        asyncio.run(main())
        assert len(bad.seen()) == 2
        assert transport.policy.hosts() == [bad.host, good.host]


def test_breakers_are_bounded_by_max_hosts() -> None:
    servers = [Server() for _ in range(3)]
    try:
        recorder = Recorder()
        transport = tgx.Transport(max_hosts=2, metrics=recorder)
        with httpx.Client(transport=transport) as client:
            for s in servers:
                client.get(s.url + "/")
        assert transport.policy.hosts() == [servers[1].host, servers[2].host]
        states = [
            s for s in recorder.samples() if s.name == "tailguard_breaker_state" and s.value == 1
        ]
        assert len(states) == 2
    finally:
        for s in servers:
            s.close()


def test_hedging_cancels_the_loser_and_its_connection_closes(server: Server) -> None:
    server.script("/h", Reply(delay=8.0, body=b"slow"), Reply(body=b"fast"))
    transport = tgx.AsyncTransport(hedge=0.05)

    async def main() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport) as client:
            return await client.get(server.url + "/h")

    started = time.monotonic()
    response = asyncio.run(main())
    assert response.content == b"fast"
    assert time.monotonic() - started < 6.0
    # The server saw the slow request's connection close before it answered.
    assert server.wait_for(lambda seen: any(s.hung_up for s in seen), timeout=5.0)
    slow, fast = server.seen("/h")
    assert slow.hung_up and slow.peer != fast.peer
    assert transport.policy.hedge is not None
    stats = transport.policy.hedge.stats()
    assert (stats.hedges_sent, stats.hedges_won) == (1, 1)
    # The cancelled loser counts as neither success nor failure against its host.
    breaker = transport.policy.breaker(server.host)
    assert breaker is not None
    assert (breaker.metrics().calls, breaker.metrics().failures) == (1, 0)


def test_hedge_losers_that_answered_are_closed(server: Server) -> None:
    # Both answer, close together: whichever loses, its response is closed.
    server.script("/h", Reply(delay=0.2), Reply(delay=0.1))
    inner = AsyncRecording()

    async def main() -> httpx.Response:
        transport = tgx.AsyncTransport(inner, hedge=0.01)
        async with httpx.AsyncClient(transport=transport) as client:
            response = await client.get(server.url + "/h")
            await asyncio.sleep(0.3)  # let a loser that answered meanwhile finish
            return response

    response = asyncio.run(main())
    assert response.status_code == 200
    assert all(r.is_closed for r in inner.responses if r is not response)


def test_the_sync_transport_refuses_hedging() -> None:
    with pytest.raises(tg.ConfigError) as info:
        tgx.Transport(hedge=0.05)
    assert info.value.parameter == "hedge"


def test_deadline_sync(server: Server) -> None:
    server.script("/slow", *[Reply(delay=5.0)] * 3)
    started = time.monotonic()
    with pytest.raises(tg.RetryError) as info:
        get_sync(server.url + "/slow", deadline=0.5, backoff=FAST)
    assert time.monotonic() - started < 3.0
    assert info.value.reason == "deadline"
    assert isinstance(info.value.__cause__, httpx.ReadTimeout)


def test_deadline_async(server: Server) -> None:
    server.script("/slow", *[Reply(delay=5.0)] * 3)
    started = time.monotonic()
    with pytest.raises((tg.RetryError, tg.AttemptTimeoutError)):
        get_async(server.url + "/slow", deadline=0.5, backoff=FAST)
    assert time.monotonic() - started < 3.0
    # The attempt cut at the deadline hung up on the server.
    assert server.wait_for(lambda seen: any(s.hung_up for s in seen), timeout=5.0)


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_the_deadline_defaults_to_the_clients_timeout(server: Server, asynchronous: bool) -> None:
    server.script("/slow", *[Reply(delay=5.0)] * 3)
    started = time.monotonic()
    with pytest.raises((tg.RetryError, tg.AttemptTimeoutError)):
        if asynchronous:

            async def main() -> None:
                async with httpx.AsyncClient(
                    transport=tgx.AsyncTransport(backoff=FAST), timeout=0.5
                ) as client:
                    await client.get(server.url + "/slow")

            asyncio.run(main())
        else:
            with httpx.Client(transport=tgx.Transport(backoff=FAST), timeout=0.5) as client:
                client.get(server.url + "/slow")
    assert time.monotonic() - started < 3.0


def test_a_streamed_body_is_sent_once(server: Server) -> None:
    server.script("/put", Reply(503), Reply(200))

    def body() -> Iterator[bytes]:
        yield b"chunk"

    with httpx.Client(transport=tgx.Transport(backoff=FAST)) as client:
        response = client.put(server.url + "/put", content=body())
    assert response.status_code == 503
    assert len(server.seen("/put")) == 1


def test_a_shared_policy_and_bad_settings() -> None:
    policy = HttpPolicy(attempts=2)
    assert tgx.Transport(policy=policy).policy is policy
    with pytest.raises(tg.ConfigError) as info:
        tgx.Transport(policy=policy, attempts=3)
    assert info.value.parameter == "policy"
    bad: List[tuple[str, object]] = [
        ("attempts", 0),
        ("max_retry_after", 61),
        ("max_retry_after", -1),
        ("deadline", 0),
        ("deadline", "soon"),
        ("retry_statuses", [700]),
        ("methods", ["GET /"]),
        ("max_hosts", 0),
        ("name", ""),
    ]
    for name, value in bad:
        with pytest.raises(tg.ConfigError) as info:
            HttpPolicy(**{name: value})  # type: ignore[arg-type]
        assert info.value.parameter == name
    with pytest.raises(tg.ConfigError) as info:
        HttpPolicy(breaker={"failure_rate": 2.0})
    assert info.value.parameter == "failure_rate"
    with pytest.raises(tg.ConfigError) as info:
        HttpPolicy(breaker={"on": ValueError})
    assert info.value.parameter == "breaker"
