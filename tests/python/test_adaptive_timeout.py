"""The adaptive attempt timeout: the floor until it knows, percentile x factor within floor and
ceiling after, cut attempts recorded as lower bounds, false timeouts estimated; sync and async."""

from __future__ import annotations

import asyncio

import pytest

import tailguard as tg
from tailguard.testing import ManualClock


def test_the_floor_until_enough_samples_then_percentile_times_factor() -> None:
    clock = ManualClock()
    t = tg.AdaptiveTimeout(0.5, factor=3.0, floor=0.005, ceiling=0.1, min_samples=10, clock=clock)
    for _ in range(9):
        t.record(0.004)
    assert t.timeout() == 0.005
    t.record(0.004)
    assert t.timeout() == pytest.approx(0.012, rel=0.01)
    for _ in range(10):
        t.record(0.08)
    clock.advance(20.0)  # the old window is gone; a slow spell is clamped at the ceiling
    for _ in range(10):
        t.record(0.08)
    assert t.timeout() == 0.1
    assert t.completed == 30 and t.timed_out == 0


def test_bad_settings_name_the_parameter() -> None:
    for kwargs, name in [
        ({"percentile": 0.0}, "percentile"),
        ({"factor": 0.5}, "factor"),
        ({"floor": 0}, "floor"),
        ({"floor": 1.0, "ceiling": 0.5}, "ceiling"),
        ({"min_samples": 0}, "min_samples"),
        ({"slots": 0}, "slots"),
        ({"window": 0}, "window"),
    ]:
        with pytest.raises(tg.ConfigError) as info:
            tg.AdaptiveTimeout(**kwargs)  # type: ignore[arg-type]
        assert info.value.parameter == name, (kwargs, info.value)
    with pytest.raises(TypeError):
        tg.AdaptiveTimeout(factor="two")  # type: ignore[arg-type]


def test_false_timeouts_are_estimated_from_late_outcomes() -> None:
    t = tg.AdaptiveTimeout(clock=ManualClock())
    assert t.timeout_rate is None and t.false_timeout_rate is None
    for _ in range(90):
        t.record(0.005)
    for _ in range(10):
        t.record_timeout(0.03)
    for ok in (True, False, False, False):
        t.record_late(ok)
    assert t.timeout_rate == pytest.approx(0.1)
    assert t.false_timeout_rate == pytest.approx(0.25)
    assert t.false_timeout_share == pytest.approx(0.025)


def test_sync_attempt_records_the_latency_or_the_cut() -> None:
    clock = ManualClock()
    t = tg.AdaptiveTimeout(floor=0.02, clock=clock)
    with t.attempt() as seconds:
        assert seconds == 0.02
        clock.advance(0.003)
    assert t.completed == 1
    with pytest.raises(TimeoutError):
        with t.attempt():
            clock.advance(0.02)
            raise TimeoutError("the client gave up")
    assert t.timed_out == 1
    with pytest.raises(ValueError):
        with t.attempt():
            raise ValueError("a failure is a latency, not a cut")
    assert t.completed == 2


def test_async_run_cuts_at_the_timeout_and_records() -> None:
    t = tg.AdaptiveTimeout(floor=0.05, min_samples=1000)

    async def fast() -> str:
        await asyncio.sleep(0)
        return "ok"

    cancelled: list[bool] = []

    async def stuck() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return "late"

    async def main() -> None:
        assert await t.run(fast) == "ok"
        with pytest.raises(tg.AttemptTimeoutError):
            await t.run(stuck)

    asyncio.run(main())
    assert cancelled == [True]
    assert (t.completed, t.timed_out) == (1, 1)
    with pytest.raises(TypeError):
        t.run("not callable")  # type: ignore[arg-type]
