"""Fan-out for asyncio: ask many, use what comes back, cancel the rest."""

from __future__ import annotations

import asyncio
from typing import Awaitable, Iterable, Optional, TypeVar, Union

from tailguard._errors import AllFailedError, ConfigError, QuorumError
from tailguard._tasks import cancel_and_wait, start_leg

T = TypeVar("T")


def _start(awaitables: Iterable[Awaitable[T]]) -> list[asyncio.Future[T]]:
    return [start_leg(aw) for aw in awaitables]


async def scatter_gather(
    awaitables: Iterable[Awaitable[T]], *, timeout: Optional[float] = None
) -> list[Union[T, BaseException]]:
    """Runs every awaitable concurrently until all finish or ``timeout`` seconds pass.

    Returns one entry per awaitable, in order: its result, the exception it raised, or a
    :class:`TimeoutError` if it was still running at the deadline (it is then cancelled).
    Partial results are the point: a search that gets 97 of 100 shards in time answers with 97.
    """
    if timeout is not None and not (isinstance(timeout, (int, float)) and timeout >= 0):
        raise ConfigError(
            f"invalid `timeout`: must be a non-negative number of seconds, got {timeout!r}",
            "timeout",
        )
    tasks = _start(awaitables)
    try:
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
    finally:
        await cancel_and_wait(tasks)
    results: list[Union[T, BaseException]] = []
    for task in tasks:
        if task.cancelled():
            results.append(TimeoutError(f"still running after {timeout}s: cancelled"))
        elif task.exception() is not None:
            exc = task.exception()
            assert exc is not None
            results.append(exc)
        else:
            results.append(task.result())
    return results


async def first_ok(awaitables: Iterable[Awaitable[T]]) -> T:
    """The first awaitable to succeed; the others are cancelled. Raises
    :class:`~tailguard.AllFailedError` if every one fails."""
    tasks = _start(awaitables)
    if not tasks:
        raise AllFailedError("first_ok was given nothing to run", [])
    running = set(tasks)
    errors: list[BaseException] = []
    try:
        while running:
            done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                if task not in done:
                    continue
                if task.cancelled():
                    errors.append(asyncio.CancelledError())
                elif task.exception() is None:
                    return task.result()
                else:
                    exc = task.exception()
                    assert exc is not None
                    errors.append(exc)
        raise AllFailedError(
            f"all {len(errors)} calls failed; last: {errors[-1]!r}", errors
        ) from errors[-1]
    finally:
        await cancel_and_wait(running)


async def quorum(k: int, awaitables: Iterable[Awaitable[T]]) -> list[T]:
    """The first ``k`` successes, in the order they arrived; the rest are cancelled. Raises
    :class:`~tailguard.QuorumError` as soon as ``k`` successes became impossible."""
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"`k` must be an int, got {type(k).__name__}")
    tasks = _start(awaitables)
    if not 1 <= k <= max(len(tasks), 1) or (not tasks):
        await cancel_and_wait(tasks)
        raise ConfigError(
            f"invalid `k`: must be in 1..={len(tasks)} (the number of calls), got {k}", "k"
        )
    running = set(tasks)
    successes: list[T] = []
    errors: list[BaseException] = []
    try:
        while running:
            done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                if task not in done:
                    continue
                if task.cancelled():
                    errors.append(asyncio.CancelledError())
                elif task.exception() is None:
                    successes.append(task.result())
                    if len(successes) == k:
                        return successes
                else:
                    exc = task.exception()
                    assert exc is not None
                    errors.append(exc)
            if len(tasks) - len(errors) < k:
                break
        raise QuorumError(
            f"needed {k} successes of {len(tasks)} calls, but {len(errors)} failed",
            k,
            list(successes),
            errors,
        ) from (errors[-1] if errors else None)
    finally:
        await cancel_and_wait(running)
