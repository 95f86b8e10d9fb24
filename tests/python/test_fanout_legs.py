"""Every leg of a fan-out or a hedged call has its outcome retrieved.

A task whose exception nobody retrieved makes asyncio log "Task exception was never retrieved"
when it is collected. `first_ok`, `quorum` and hedging decide their answer from some legs and
drop the others; a dropped leg that failed must not be logged, however it ended: alongside the
winner, or while being cancelled (even after the caller itself was cancelled).
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any, Awaitable, Callable, TypeVar

import pytest

import tailguard as tg

T = TypeVar("T")


def run_watching_the_loop(main: Callable[[], Awaitable[T]]) -> tuple[T, list[str]]:
    """Runs `main()` and returns its result and every message the loop's exception handler got
    (collecting garbage before the loop closes, so dropped tasks are finalized inside it)."""
    reports: list[str] = []

    async def watched() -> T:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _, context: reports.append(str(context["message"])))
        result = await main()
        for _ in range(5):
            await asyncio.sleep(0.01)
        gc.collect()
        return result

    return asyncio.run(watched()), reports


async def ok(value: int = 1) -> int:
    return value


async def fail() -> int:
    raise ConnectionError("this leg failed")


async def fail_after_yield() -> int:
    await asyncio.sleep(0)
    raise ConnectionError("this leg failed a moment later")


async def fail_when_cancelled() -> int:
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        await asyncio.sleep(0.01)
        raise ValueError("cleanup failed while being cancelled") from None
    return 0


def test_first_ok_retrieves_a_leg_that_failed_alongside_the_winner() -> None:
    result, reports = run_watching_the_loop(lambda: tg.first_ok([ok(), fail(), fail_after_yield()]))
    assert result == 1
    assert reports == []


def test_quorum_retrieves_a_leg_that_failed_alongside_the_winners() -> None:
    result, reports = run_watching_the_loop(lambda: tg.quorum(2, [ok(1), ok(2), fail(), fail()]))
    assert sorted(result) == [1, 2]
    assert reports == []


def test_first_ok_retrieves_legs_that_fail_while_cancelled() -> None:
    result, reports = run_watching_the_loop(
        lambda: tg.first_ok([fail_when_cancelled(), asyncio.sleep(0.01, 5)])
    )
    assert result == 5
    assert reports == []


@pytest.mark.parametrize("fanout", ["first_ok", "quorum"])
def test_legs_failing_after_the_caller_was_cancelled_are_retrieved(fanout: str) -> None:
    async def main() -> None:
        legs = [fail_when_cancelled(), fail_when_cancelled()]
        call: Awaitable[Any] = tg.first_ok(legs) if fanout == "first_ok" else tg.quorum(1, legs)
        task = asyncio.ensure_future(call)
        await asyncio.sleep(0.01)
        task.cancel()  # the fan-out starts cancelling its legs ...
        await asyncio.sleep(0)
        task.cancel()  # ... and is cancelled again while it waits for them
        with pytest.raises(asyncio.CancelledError):
            await task

    _, reports = run_watching_the_loop(main)
    assert reports == []


def test_hedge_retrieves_a_leg_that_failed_alongside_the_winner() -> None:
    # Starting the hedge releases the primary: the winning primary and the failed hedge finish
    # in the same step. Which of the two the hedge looks at first may vary, so make many calls.
    policy = tg.Hedge(0.001, max_attempts=2, budget="unlimited")

    async def main() -> list[int]:
        results = []
        for _ in range(30):
            gate = asyncio.Event()

            async def primary() -> int:
                await gate.wait()
                return 3

            def factory() -> Awaitable[int]:
                if not started:
                    started.append(True)
                    return primary()
                gate.set()
                return fail()

            started: list[bool] = []
            results.append(await policy.run(factory))
        return results

    results, reports = run_watching_the_loop(main)
    assert results == [3] * 30
    assert reports == []
