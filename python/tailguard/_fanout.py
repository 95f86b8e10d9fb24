"""Fan-out for asyncio: ask many, use what comes back, cancel the rest."""

from __future__ import annotations

import asyncio
import weakref
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterable, Literal, Optional, TypeVar, Union

from tailguard._errors import AllFailedError, ConfigError, QuorumError
from tailguard._native import Hedge, HedgeBudget
from tailguard._tasks import cancel_and_wait, start_leg

if TYPE_CHECKING:
    from tailguard._native import _Number, _Seconds

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


# One policy per call site (the factory's code object) and settings, so an adaptive delay
# learns from the calls it applies to.
_POLICIES: "weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], Hedge]]" = (
    weakref.WeakKeyDictionary()
)


async def hedge(
    factory: Callable[[], Awaitable[T]],
    *,
    delay: Union[_Seconds, str, None] = None,
    max_attempts: Optional[int] = None,
    budget: Union[_Number, HedgeBudget, Literal["unlimited"], None] = None,
    policy: Optional[Hedge] = None,
) -> T:
    """Runs ``factory()`` hedged: if it is still running after ``delay`` (seconds, or a
    percentile of recent latency such as ``"p95"``, the default), starts another copy, up to
    ``max_attempts`` (default 2), within ``budget`` (a ratio of extra load, default 0.05). The
    first success wins; the others are cancelled. If every attempt fails, a call that made a
    single attempt raises that attempt's exception as it is; one that made several raises
    :class:`~tailguard.AllFailedError` with all of them (the last as ``__cause__``).

    Without ``policy``, one :class:`~tailguard.Hedge` is kept per call site (the factory's code)
    and settings, so ``"p95"`` learns from that site's calls. Pass ``policy=`` to share one.
    """
    if policy is None:
        code = getattr(factory, "__code__", None)
        key = (delay, max_attempts, id(budget) if isinstance(budget, HedgeBudget) else budget)
        if code is None:
            policy = Hedge(delay, max_attempts=max_attempts, budget=budget)
        else:
            per_site = _POLICIES.setdefault(code, {})
            policy = per_site.get(key)
            if policy is None:
                policy = Hedge(delay, max_attempts=max_attempts, budget=budget)
                per_site[key] = policy
    elif not isinstance(policy, Hedge):
        raise TypeError(f"`policy` must be a tailguard.Hedge or None, got {type(policy).__name__}")
    elif delay is not None or max_attempts is not None or budget is not None:
        raise ConfigError(
            "invalid `policy`: pass either a policy or its settings (delay, max_attempts, "
            "budget), not both",
            "policy",
        )
    result: T = await policy.run(factory)
    return result
