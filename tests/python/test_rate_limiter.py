"""RateLimiter and KeyedRateLimiter: spacing and bursts on a manual clock, waits bounded by a
timeout (refused at once when the token comes too late), asyncio, decorators and context
managers, keys in bounded memory."""

from __future__ import annotations

import asyncio
import pickle
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

import tailguard as tg
from tailguard.testing import ManualClock


def test_a_burst_then_one_token_per_interval() -> None:
    clock = ManualClock()
    limiter = tg.RateLimiter(10, per=1.0, burst=3, clock=clock)
    assert [limiter.try_acquire() for _ in range(4)] == [True, True, True, False]
    assert limiter.available == 0
    clock.advance(0.1)
    assert limiter.try_acquire()
    assert not limiter.try_acquire()
    clock.advance(1.0)
    assert limiter.available == 3
    assert limiter.try_acquire(3)
    with pytest.raises(tg.RateLimitedError) as too_many:
        limiter.try_acquire(4)
    assert (too_many.value.reason, too_many.value.retry_after) == ("too_many", None)


def test_waits_advance_a_manual_clock_and_refuse_what_would_come_too_late() -> None:
    clock = ManualClock()
    limiter = tg.RateLimiter(4, per=1.0, clock=clock)
    for _ in range(5):
        limiter.acquire()
    assert clock.now() == pytest.approx(1.0)
    with pytest.raises(tg.RateLimitedError) as late:
        limiter.acquire(timeout=0.1)
    assert late.value.reason == "deadline"
    assert late.value.retry_after == pytest.approx(0.25)
    assert clock.now() == pytest.approx(1.0), "did not wait in vain"


def test_async_waits_space_the_calls() -> None:
    clock = ManualClock()
    limiter = tg.RateLimiter(100, burst=1, clock=clock)

    async def main() -> None:
        for _ in range(10):
            await limiter.acquire_async()
        with pytest.raises(tg.RateLimitedError):
            await limiter.acquire_async(timeout=0.001)

    asyncio.run(main())
    assert clock.now() == pytest.approx(0.09)


def test_a_real_clock_wait_sleeps_for_the_token() -> None:
    limiter = tg.RateLimiter(50, burst=1, max_wait=5)
    start = time.monotonic()
    for _ in range(3):
        with limiter:
            pass

    async def main() -> None:
        async with limiter:
            pass

    asyncio.run(main())
    # Four calls, evenly spaced 20 ms apart: at least three intervals.
    assert time.monotonic() - start >= 0.055


def test_decorators_take_a_token_per_call() -> None:
    clock = ManualClock()
    limiter = tg.RateLimiter(10, burst=1, max_wait=0, clock=clock)

    @limiter
    def ping() -> str:
        """Pings."""
        return "pong"

    @limiter
    async def aping() -> str:
        return "apong"

    assert ping() == "pong"
    assert ping.__doc__ == "Pings."
    assert isinstance(ping, tg.RateLimited)
    assert ping.limiter is limiter
    with pytest.raises(tg.RateLimitedError):
        ping()
    clock.advance(0.1)
    assert asyncio.run(aping()) == "apong"


def test_keyed_buckets_are_independent_and_bounded() -> None:
    clock = ManualClock()
    per_key = tg.KeyedRateLimiter(1, per=1.0, max_keys=8, shards=2, clock=clock)
    assert per_key.try_acquire("alice")
    assert not per_key.try_acquire("alice")
    assert per_key.try_acquire(b"alice") and per_key.try_acquire(7)
    for i in range(100):
        assert per_key.try_acquire(f"client-{i}")
        assert len(per_key) <= 8
    clock.advance(1.0)
    assert per_key.retain_recent() == 0
    per_key.acquire("bob")
    per_key.acquire("bob")
    assert clock.now() == pytest.approx(2.0)

    async def main() -> None:
        await per_key.acquire_async("bob")

    asyncio.run(main())
    assert clock.now() == pytest.approx(3.0)
    with pytest.raises(TypeError):
        per_key.try_acquire(1.5)  # type: ignore[arg-type]


def test_the_keyed_decorator_limits_each_key_on_its_own() -> None:
    clock = ManualClock()
    per_user = tg.KeyedRateLimiter(1, per=10.0, max_wait=0, clock=clock)

    @per_user.limit(lambda user, *_: user)
    def fetch(user: str, item: int) -> int:
        return item

    @per_user.limit(lambda user: f"async-{user}")
    async def afetch(user: str) -> str:
        return user

    assert fetch("ann", 1) == 1 and fetch("bob", 2) == 2
    with pytest.raises(tg.RateLimitedError):
        fetch("ann", 3)
    assert asyncio.run(afetch("ann")) == "ann"
    with pytest.raises(tg.RateLimitedError):
        asyncio.run(afetch("ann"))
    clock.advance(10)
    assert fetch("ann", 4) == 4


@given(
    rate=st.integers(1, 100),
    burst=st.integers(1, 10),
    steps=st.lists(st.tuples(st.integers(0, 200), st.integers(1, 3)), max_size=40),
)
def test_never_more_than_the_rate_allows(
    rate: int, burst: int, steps: list[tuple[int, int]]
) -> None:
    clock = ManualClock()
    limiter = tg.RateLimiter(rate, per=1.0, burst=burst, clock=clock)
    taken = 0
    for advance_ms, n in steps:
        clock.advance(advance_ms / 1000)
        if n <= burst and limiter.try_acquire(n):
            taken += n
    # Over any span: at most the burst plus one token per interval.
    assert taken <= burst + rate * clock.now() + 1e-9


def test_bad_settings_are_refused_naming_the_parameter() -> None:
    for args, kwargs, parameter in [
        ((0,), {}, "rate"),
        ((1, 0), {}, "per"),
        ((1,), {"burst": 0}, "burst"),
    ]:
        with pytest.raises(tg.ConfigError) as err:
            tg.RateLimiter(*args, **kwargs)  # type: ignore[arg-type]
        assert err.value.parameter == parameter
    with pytest.raises(tg.ConfigError) as err:
        tg.KeyedRateLimiter(1, max_keys=0)
    assert err.value.parameter == "max_keys"


def test_the_error_pickles() -> None:
    err = tg.RateLimitedError("slow down", 0.5, "deadline")
    again = pickle.loads(pickle.dumps(err))
    assert (again.retry_after, again.reason) == (0.5, "deadline")


def test_a_token_count_below_one_is_refused_naming_n() -> None:
    # Review found -1 raising OverflowError and 0 always succeeding.
    limiter = tg.RateLimiter(10)
    keyed = tg.KeyedRateLimiter(10)
    for bad in (-1, 0, 2**32):
        with pytest.raises(tg.ConfigError) as info:
            limiter.try_acquire(bad)
        assert info.value.parameter == "n"
        with pytest.raises(tg.ConfigError):
            keyed.try_acquire("k", bad)
