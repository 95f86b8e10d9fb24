"""Throttle: the SRE book's formula over a rolling window on a manual clock, seeded replays,
the decorators and context managers, what counts as accepted."""

from __future__ import annotations

import asyncio
import pickle

import pytest

import tailguard as tg
from tailguard.testing import ManualClock


class Overloaded(Exception):
    pass


def test_a_healthy_backend_is_never_throttled() -> None:
    throttle = tg.Throttle(seed=1, clock=ManualClock())
    for _ in range(1000):
        with throttle:
            pass
    assert throttle.rejection_probability == 0.0
    assert (throttle.requests, throttle.accepts) == (1000, 1000)


def test_the_probability_follows_the_formula_and_the_window_rolls() -> None:
    clock = ManualClock()
    throttle = tg.Throttle(k=2.0, window=10, buckets=10, seed=1, clock=clock)
    for _ in range(30):
        throttle.record(False)
    for _ in range(10):
        throttle.record(True)
    assert throttle.rejection_probability == pytest.approx((40 - 2 * 10) / 41)
    clock.advance(10)
    assert throttle.rejection_probability == 0.0


def test_an_overloaded_backend_is_mostly_refused_locally() -> None:
    throttle = tg.Throttle(k=2.0, seed=3, on=Overloaded, clock=ManualClock())

    @throttle
    def call() -> None:
        raise Overloaded()

    sent = refused = 0
    for _ in range(500):
        try:
            call()
        except Overloaded:
            sent += 1
        except tg.ThrottledError as err:
            assert 0 < err.probability <= 1
            refused += 1
    assert refused > 400 and sent < 100


def test_only_matching_exceptions_count_as_not_accepted() -> None:
    throttle = tg.Throttle(seed=1, on=Overloaded, clock=ManualClock())

    @throttle
    async def lookup(missing: bool) -> str:
        if missing:
            raise KeyError("404: the backend accepted it")
        return "found"

    async def main() -> None:
        assert await lookup(False) == "found"
        with pytest.raises(KeyError):
            await lookup(True)
        async with throttle:
            pass

    asyncio.run(main())
    assert (throttle.requests, throttle.accepts) == (3, 3)


def test_cancellation_counts_as_nothing() -> None:
    throttle = tg.Throttle(seed=1, clock=ManualClock())

    @throttle
    async def slow() -> None:
        await asyncio.sleep(10)

    async def main() -> None:
        task = asyncio.ensure_future(slow())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert throttle.requests == 0


def test_the_same_seed_replays_the_same_decisions() -> None:
    def run() -> list[bool]:
        throttle = tg.Throttle(seed=42, clock=ManualClock())
        out = []
        for i in range(300):
            try:
                throttle.acquire()
            except tg.ThrottledError:
                out.append(False)
                continue
            throttle.record(i % 5 == 0)
            out.append(True)
        return out

    first = run()
    assert first == run()
    assert False in first


def test_bad_settings_are_refused_naming_the_parameter() -> None:
    for kwargs, parameter in [
        ({"k": 0.5}, "k"),
        ({"window": 0}, "window"),
        ({"buckets": 0}, "buckets"),
    ]:
        with pytest.raises(tg.ConfigError) as err:
            tg.Throttle(**kwargs)  # type: ignore[arg-type]
        assert err.value.parameter == parameter


def test_the_error_pickles() -> None:
    again = pickle.loads(pickle.dumps(tg.ThrottledError("no", 0.75)))
    assert again.probability == 0.75
