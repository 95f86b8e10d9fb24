"""`tailguard.fleet` shares breakers through a real redis-server (started on 127.0.0.1 on a free
port, killed at the end): the fleet's failure rate and a peer's opening trip the others, stale
entries do not count, an outage falls back to local decisions without slowing calls, and the
sharing returns with Redis. Real time with generous bounds: these judge shapes, not speeds."""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import TYPE_CHECKING, Dict, Iterator, List

import pytest

import tailguard as tg
from fleet_redis import PATIENCE, LocalRedis, eventually, local_redis
from tailguard.fleet import Fleet, Status

if TYPE_CHECKING:
    import redis

INTERVAL = 0.05


@pytest.fixture
def server() -> Iterator[LocalRedis]:
    yield from local_redis()


@pytest.fixture
def fleets() -> Iterator[List[Fleet]]:
    """Every fleet a test makes, closed at the end whatever happens."""
    made: List[Fleet] = []
    yield made
    for fleet in made:
        fleet.close()


#: For the tests of the call path while Redis stalls: every sync of the thread then waits the
#: whole io_timeout, far longer than any call may take.
SLOW = {"interval": 0.25, "io_timeout": 0.25}
#: The most a call (or an asyncio loop's turn) may take meanwhile: well under SLOW's
#: io_timeout, well over a loaded machine's scheduling delays.
CALL_BOUND = 0.1


def fleet(server: LocalRedis, made: List[Fleet], instance: str, **settings: object) -> Fleet:
    chosen: Dict[str, object] = {"interval": INTERVAL, "io_timeout": 0.04, **settings}
    f = Fleet(
        server.url, namespace="test", instance_id=instance, **chosen  # type: ignore[arg-type]
    )
    made.append(f)
    return f


def breaker() -> tg.CircuitBreaker:
    return tg.CircuitBreaker(window=20, minimum_calls=10, failure_rate=0.5, open_duration=60)


def calls(b: tg.CircuitBreaker, failures: int, successes: int) -> None:
    for _ in range(failures):
        b.acquire().failure()
    for _ in range(successes):
        b.acquire().success()


def shared(*fs: Fleet) -> bool:
    return all(f.status().mode == "shared" and f.status().syncs >= 1 for f in fs)


def test_one_instance_opening_opens_the_others(
    server: LocalRedis, fleets: List[Fleet], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tailguard.fleet")
    a, b, c = breaker(), breaker(), breaker()
    fs = [fleet(server, fleets, name) for name in "abc"]
    for f, br in zip(fs, (a, b, c)):
        f.share(br, "dependency")
    assert eventually(lambda: shared(*fs))
    calls(b, 0, 10)
    calls(c, 0, 10)
    calls(a, 10, 0)
    assert a.state == "open"
    assert eventually(lambda: b.state == "open" and c.state == "open"), (b.state, c.state)
    assert [f.status().fleet_trips for f in fs] == [0, 1, 1]
    assert any("opened by the fleet" in r.getMessage() for r in caplog.records)


def test_the_fleets_failure_rate_opens_breakers_no_instance_would_open_alone(
    server: LocalRedis, fleets: List[Fleet]
) -> None:
    a, b = breaker(), breaker()
    transitions: List[tg.BreakerTransition] = []
    a.add_listener(transitions.append)
    fa = fleet(server, fleets, "a", follow_open=False)
    fb = fleet(server, fleets, "b", follow_open=False)
    fa.share(a, "dependency")
    fb.share(b, "dependency")
    assert eventually(lambda: shared(fa, fb) and fa.status().peers == 1)
    # 4 of 8 and 3 of 8 fail: each under minimum_calls alone, 7 of 16 together (under 50%).
    calls(a, 4, 4)
    calls(b, 3, 5)
    time.sleep(6 * INTERVAL)
    assert (a.state, b.state) == ("closed", "closed")
    calls(a, 1, 0)
    calls(b, 1, 0)  # 5 of 9 and 4 of 9: 9 of 18 together, the fleet crosses 50%
    assert (a.state, b.state) == ("closed", "closed")
    assert eventually(lambda: a.state == "open" and b.state == "open"), (a.state, b.state)
    assert transitions[-1].reason == "fleet"


def test_a_time_window_shares_all_its_calls(server: LocalRedis, fleets: List[Fleet]) -> None:
    """A time window has no call count to divide: each instance publishes every call in it."""
    a, b = (tg.CircuitBreaker(time_window=60, minimum_calls=10, failure_rate=0.5) for _ in "ab")
    fa = fleet(server, fleets, "a", follow_open=False)
    fb = fleet(server, fleets, "b", follow_open=False)
    fa.share(a, "dependency")
    fb.share(b, "dependency")
    calls(a, 4, 4)  # 8 calls each: under minimum_calls alone
    calls(b, 3, 5)
    assert eventually(lambda: shared(fa, fb) and fa.status().peers == 1)
    plain = server.client()
    assert eventually(
        lambda: hget(plain, "tailguard:test:breaker:dependency", "a").endswith(":8:4:0:0:0")
    )
    time.sleep(4 * INTERVAL)
    assert (a.state, b.state) == ("closed", "closed")  # 7 of 16
    calls(a, 1, 0)
    calls(b, 1, 0)  # 9 of 18, 9 calls each: the fleet crosses 50%
    assert eventually(lambda: a.state == "open" and b.state == "open"), (a.state, b.state)


def test_stale_and_foreign_entries_do_not_count_and_are_removed(
    server: LocalRedis, fleets: List[Fleet]
) -> None:
    plain = server.client()
    key = "tailguard:test:breaker:dependency"
    long_ago = time.time_ns() // 1_000_000 - 60_000
    plain.hset(key, "old", f"1:{long_ago}:100:100:0:{long_ago}:0")
    plain.hset(key, "junk", "v9:whatever")
    b = breaker()
    f = fleet(server, fleets, "b")
    f.share(b, "dependency")
    assert eventually(lambda: set(plain.hkeys(key)) == {"b"}), plain.hkeys(key)
    assert b.state == "closed"
    assert f.status().peers == 0


def hget(plain: redis.Redis, key: str, field: str) -> str:
    """A field's value as text ("" when absent)."""
    value = plain.hget(key, field)
    return value if isinstance(value, str) else ""


def group(pattern: re.Pattern[str], value: str) -> str:
    """The first group of a full match, or "" when it does not match."""
    match = pattern.fullmatch(value)
    return match.group(1) if match else ""


def test_the_entry_has_the_rust_fleets_format(server: LocalRedis, fleets: List[Fleet]) -> None:
    b = breaker()
    f = fleet(server, fleets, "py")
    f.share(b, "dependency")
    calls(b, 3, 2)
    plain = server.client()
    key = "tailguard:test:breaker:dependency"
    counting = re.compile(r"1:(\d+):5:3:0:0:0")
    assert eventually(lambda: bool(group(counting, hget(plain, key, "py")))), hget(plain, key, "py")
    at_ms = int(group(counting, hget(plain, key, "py")) or 0)
    assert abs(at_ms - time.time() * 1000) < 60_000
    ttl = plain.pttl(key)
    assert isinstance(ttl, int) and 0 < ttl <= 3 * INTERVAL * 1000
    # Its own opening is published with the wall-clock time it opened, the same on every sync.
    calls(b, 5, 0)
    assert b.state == "open"
    opened = re.compile(r"1:\d+:0:0:0:(\d+):0")
    assert eventually(lambda: bool(group(opened, hget(plain, key, "py"))))
    first = group(opened, hget(plain, key, "py"))
    assert abs(int(first) - time.time() * 1000) < 60_000
    time.sleep(3 * INTERVAL)
    assert group(opened, hget(plain, key, "py")) == first
    # Closing removes this instance's field.
    f.close()
    assert plain.hget(key, "py") is None


def test_entries_written_as_the_rust_fleet_writes_them_trip_the_breaker(
    server: LocalRedis, fleets: List[Fleet]
) -> None:
    """An opening published by a Rust instance (`1:at_ms:0:0:0:opened:0`) is followed."""
    plain = server.client()
    key = "tailguard:test:breaker:dependency"
    b = breaker()
    f = fleet(server, fleets, "py")
    f.share(b, "dependency")
    assert eventually(lambda: shared(f))
    now = time.time_ns() // 1_000_000
    plain.hset(key, "rust-1", f"1:{now}:0:0:0:{now - 5}:0")
    assert eventually(lambda: b.state == "open"), b.state
    assert f.status().fleet_trips == 1


def test_redis_down_means_local_decisions_one_log_line_and_no_slower_calls(
    server: LocalRedis, fleets: List[Fleet], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tailguard.fleet")
    a, b = breaker(), breaker()
    fa, fb = fleet(server, fleets, "a", **SLOW), fleet(server, fleets, "b", **SLOW)
    fa.share(a, "dependency")
    fb.share(b, "dependency")
    assert eventually(lambda: shared(fa, fb))
    server.freeze()  # a stalled Redis: every read times out
    assert eventually(lambda: fa.status().mode == "local" and fa.status().syncs_failed >= 3)
    # Calls meanwhile: none waits for Redis (the thread alone does, up to io_timeout).
    slowest, failed_before = 0.0, fb.status().syncs_failed
    until = time.monotonic() + 4 * SLOW["interval"]
    while time.monotonic() < until:  # across several of the thread's stalled syncs
        started = time.perf_counter()
        b.acquire().success()
        slowest = max(slowest, time.perf_counter() - started)
    assert fb.status().syncs_failed >= failed_before + 1
    assert slowest < CALL_BOUND, f"a call took {slowest:.3f}s while Redis was stalled"
    server.stop()
    # Local decisions: a's own window still opens it, b is untouched.
    calls(a, 10, 0)
    assert a.state == "open"
    time.sleep(2 * SLOW["interval"])
    assert b.state == "closed"
    outages = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len([r for r in outages if r.name == "tailguard.fleet"]) == 2  # one per fleet
    assert all(r.levelno == logging.WARNING for r in outages)
    # Redis comes back (empty): both share again, and a's opening reaches b.
    server.restart()
    assert eventually(lambda: fa.status().mode == "shared" and fb.status().mode == "shared")
    assert eventually(lambda: b.state == "open"), b.state
    back = [r for r in caplog.records if "is back after" in r.getMessage()]
    assert len(back) == 2


def test_settings_are_checked_naming_the_field() -> None:
    for settings, field in [
        ({"namespace": ""}, "namespace"),
        ({"instance_id": ""}, "instance_id"),
        ({"interval": 0.001}, "interval"),
        ({"interval": 1, "stale_after": 1.5}, "stale_after"),
        ({"interval": 0.1, "io_timeout": 0.5}, "io_timeout"),
    ]:
        with pytest.raises(tg.ConfigError) as error:
            Fleet("redis://127.0.0.1:1/0", **settings)  # type: ignore[arg-type]
        assert error.value.parameter == field
    with pytest.raises(tg.ConfigError) as error:
        Fleet("http://nope", interval=0.1)
    assert error.value.parameter == "redis"


def test_a_name_is_shared_once_and_a_closed_fleet_shares_nothing() -> None:
    f = Fleet("redis://127.0.0.1:1/0", interval=0.05, io_timeout=0.01)
    b = breaker()
    f.share(b, "x")
    with pytest.raises(tg.ConfigError) as error:
        f.share(breaker(), "x")
    assert error.value.parameter == "name"
    with pytest.raises(TypeError):
        f.share(object(), "y")  # type: ignore[arg-type]
    assert eventually(lambda: f.status().syncs_failed >= 1)
    status = f.status()
    assert status == Status(
        mode="local",
        syncs=0,
        syncs_failed=status.syncs_failed,
        fleet_trips=0,
        peers=0,
        breakers=1,
        budgets=0,
    )
    with f:
        pass
    assert f.closed
    with pytest.raises(RuntimeError):
        f.share(breaker(), "z")


def test_importing_tailguard_does_not_import_redis() -> None:
    import subprocess

    code = "import sys, tailguard; assert 'redis' not in sys.modules, 'redis imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=PATIENCE * 6)


def test_the_readme_example_runs(server: LocalRedis) -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start = readme.index("### Fleets from Python")
    section = readme[start : readme.index("\n## ", start)]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
    namespace: dict[str, object] = {}
    exec(code.replace("redis://127.0.0.1:6379/0", server.url), namespace)
    fleet = namespace["fleet"]
    assert isinstance(fleet, Fleet) and fleet.closed
    assert fleet.status().breakers == 1 and fleet.status().budgets == 1


def test_an_asyncio_program_needs_nothing_else_and_its_loop_never_waits_for_redis(
    server: LocalRedis, fleets: List[Fleet]
) -> None:
    import asyncio

    a, b = breaker(), breaker()
    fa, fb = fleet(server, fleets, "a", **SLOW), fleet(server, fleets, "b", **SLOW)
    fa.share(a, "dependency")
    fb.share(b, "dependency")
    assert eventually(lambda: shared(fa, fb))

    @b
    async def call() -> str:
        await asyncio.sleep(0)
        return "ok"

    async def program() -> float:
        assert await call() == "ok"
        server.freeze()  # a stalled Redis while the loop runs: its lag stays small
        lag = 0.0
        until = time.monotonic() + 2 * SLOW["interval"]
        while time.monotonic() < until or fb.status().mode == "shared":
            started = time.perf_counter()
            await asyncio.sleep(0.001)
            lag = max(lag, time.perf_counter() - started - 0.001)
            assert time.monotonic() < until + PATIENCE
        server.thaw()
        assert eventually(lambda: fb.status().mode == "shared")
        calls(a, 10, 0)  # another instance opens: the coroutine's breaker follows
        deadline = time.monotonic() + PATIENCE
        while b.state != "open" and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        with pytest.raises(tg.CircuitOpenError):
            await call()
        return lag

    lag = asyncio.run(program())
    assert lag < CALL_BOUND, f"the loop lagged {lag:.3f}s while Redis was stalled"


def test_a_fleet_dropped_without_close_stops_its_thread() -> None:
    import gc
    import threading

    def threads() -> int:
        return sum(t.name == "tailguard-fleet" and t.is_alive() for t in threading.enumerate())

    before = threads()
    f = Fleet("redis://127.0.0.1:1/0", interval=0.05, io_timeout=0.01)
    f.share(breaker(), "x")
    assert threads() == before + 1
    del f
    gc.collect()
    assert eventually(lambda: threads() == before)


def test_a_client_of_ones_own_works_too_and_urls_are_logged_without_passwords(
    server: LocalRedis, fleets: List[Fleet]
) -> None:
    """A `redis.Redis` given instead of a URL (here one that decodes replies to str) shares as
    well; the fleet leaves the client open for its owner."""
    from tailguard.fleet._sync import redact

    mine = server.client()
    a, b = breaker(), breaker()
    fa = Fleet(mine, namespace="test", instance_id="a", interval=INTERVAL)
    fleets.append(fa)
    fb = fleet(server, fleets, "b")
    fa.share(a, "dependency")
    fb.share(b, "dependency")
    assert eventually(lambda: shared(fa, fb) and fa.status().peers == 1)
    calls(b, 10, 0)
    assert eventually(lambda: a.state == "open")
    fa.close()
    assert mine.ping()
    assert redact("redis://user:secret@host:6379/0") == "redis://user:***@host:6379/0"
    assert redact("redis://:secret@host/0") == "redis://***@host/0"
    assert redact("redis://host:6379/0") == "redis://host:6379/0"
