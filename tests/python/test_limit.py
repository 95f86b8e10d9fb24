"""The adaptive concurrency limit from Python: admission, priority, samples on a manual clock,
monitor-only, the decorator and context managers (sync and asyncio), and bad settings."""

from __future__ import annotations

import asyncio
import pickle

import pytest

import tailguard as tg
from tailguard.testing import ManualClock


def test_fixed_limit_refuses_with_a_typed_error() -> None:
    limiter = tg.AdaptiveLimiter(algorithm="fixed", limit=2, default_share=1.0)
    held = [limiter.acquire(), limiter.acquire()]
    with pytest.raises(tg.LimitExceededError) as info:
        limiter.acquire()
    err = info.value
    assert (err.reason, err.criticality, err.limit, err.in_flight) == ("limit", "default", 2, 2)
    assert pickle.loads(pickle.dumps(err)).reason == "limit"
    for permit in held:
        permit.success()
    assert limiter.in_flight == 0
    assert limiter.metrics()["rejected"]["limit"]["default"] == 1


def test_lower_classes_are_shed_first() -> None:
    limiter = tg.AdaptiveLimiter(
        algorithm="fixed", limit=10, sheddable_share=0.3, default_share=0.6
    )
    held = [limiter.acquire("critical") for _ in range(3)]
    with pytest.raises(tg.LimitExceededError) as info:
        limiter.acquire("sheddable")
    assert info.value.reason == "shed"
    held += [limiter.acquire() for _ in range(3)]
    with pytest.raises(tg.LimitExceededError):
        limiter.acquire("default")
    held += [limiter.acquire("critical") for _ in range(4)]
    assert limiter.in_flight == 10
    for permit in held:
        permit.ignore()
    assert limiter.metrics()["samples"] == 0


def test_latency_on_a_manual_clock_moves_the_limit() -> None:
    clock = ManualClock()
    limiter = tg.AdaptiveLimiter(initial_limit=10, probe_interval=None, clock=clock)
    for _ in range(200):
        permits = [limiter.acquire("critical") for _ in range(10)]
        clock.advance(0.01)
        for permit in permits:
            permit.success()
    grown = limiter.limit
    assert grown > 10
    # Latency four times the baseline, with the limit in use: it comes down.
    for _ in range(200):
        permits = []
        for _ in range(limiter.limit):
            try:
                permits.append(limiter.acquire("critical"))
            except tg.LimitExceededError:
                break
        clock.advance(0.04)
        for permit in permits:
            permit.success()
    assert limiter.limit < grown


def test_aimd_backs_off_on_drops_and_unreported_permits() -> None:
    limiter = tg.AdaptiveLimiter(algorithm="aimd", backoff=0.5, initial_limit=16)
    limiter.acquire().dropped()
    assert limiter.limit == 8
    permit = limiter.acquire()
    del permit  # unreported: a drop
    assert limiter.limit == 4
    assert limiter.in_flight == 0


def test_monitor_only_admits_and_counts() -> None:
    limiter = tg.AdaptiveLimiter(algorithm="fixed", limit=1, monitor_only=True)
    held = [limiter.acquire("critical") for _ in range(3)]
    assert limiter.monitor_only and limiter.in_flight == 3
    assert limiter.metrics()["rejected"]["limit"]["critical"] == 2
    for permit in held:
        permit.success()


def test_decorator_and_context_managers_sync() -> None:
    limiter = tg.AdaptiveLimiter(algorithm="aimd", backoff=0.5, initial_limit=8)

    @limiter
    def ok() -> int:
        assert limiter.in_flight == 1
        return 1

    @limiter.limited("critical")
    def slow() -> None:
        raise TimeoutError

    @limiter
    def bad() -> None:
        raise KeyError("x")

    assert ok() == 1
    with pytest.raises(TimeoutError):
        slow()
    assert limiter.limit == 4  # a timeout is a drop
    with pytest.raises(KeyError):
        bad()
    assert limiter.limit == 4  # other errors say nothing about load
    with limiter as permit:
        assert not permit.done and limiter.in_flight == 1
    assert permit.done and limiter.in_flight == 0
    with limiter.limited("sheddable"):
        pass
    assert limiter.in_flight == 0


def test_asyncio_forms_and_cancellation_release() -> None:
    limiter = tg.AdaptiveLimiter(algorithm="fixed", limit=1, default_share=1.0)

    @limiter.limited("default")
    async def call() -> str:
        await asyncio.sleep(0)
        return "ok"

    async def main() -> None:
        assert await call() == "ok"
        async with limiter:
            with pytest.raises(tg.LimitExceededError):
                await call()
        assert limiter.in_flight == 0

        @limiter
        async def forever() -> None:
            await asyncio.sleep(3600)

        task = asyncio.ensure_future(forever())
        await asyncio.sleep(0)
        assert limiter.in_flight == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert limiter.in_flight == 0

    asyncio.run(main())


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"min_limit": 0}, "min_limit"),
        ({"min_limit": 10, "max_limit": 5}, "max_limit"),
        ({"initial_limit": 5000}, "initial_limit"),
        ({"sheddable_share": 0.0}, "sheddable_share"),
        ({"sheddable_share": 0.9, "default_share": 0.5}, "sheddable_share"),
        ({"algorithm": "magic"}, "algorithm"),
        ({"algorithm": "fixed"}, "limit"),
        ({"algorithm": "fixed", "limit": 0}, "limit"),
        ({"limit": 3}, "limit"),
        ({"algorithm": "aimd", "backoff": 1.5}, "backoff"),
        ({"probe_interval": -1.0}, "probe_interval"),
    ],
)
def test_bad_settings_name_the_parameter(kwargs: dict[str, object], parameter: str) -> None:
    with pytest.raises(tg.ConfigError) as info:
        tg.AdaptiveLimiter(**kwargs)  # type: ignore[arg-type]
    assert info.value.parameter == parameter


def test_bad_criticality_and_outcome_are_refused() -> None:
    limiter = tg.AdaptiveLimiter()
    with pytest.raises(tg.ConfigError) as info:
        limiter.acquire("urgent")
    assert info.value.parameter == "criticality"
    with pytest.raises(tg.ConfigError):
        limiter.limited("urgent")  # type: ignore[arg-type]
    permit = limiter.acquire()
    with pytest.raises(tg.ConfigError) as info:
        permit.record("great")
    assert info.value.parameter == "outcome"
    permit.record("success")
    permit.record("dropped")  # a second report is ignored
    assert limiter.metrics()["samples"] == 1
