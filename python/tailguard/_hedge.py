"""The asyncio half of hedging: tasks, waiting and cancelling. Every decision (when to hedge,
whether the budget allows, what latency to learn) is made by the native ``Hedge`` policy."""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Awaitable, Callable, TypeVar

from tailguard._errors import AllFailedError
from tailguard._native import Hedge
from tailguard._tasks import cancel_and_wait, start_leg

T = TypeVar("T")


async def run_hedged(policy: Hedge, factory: Callable[[], Awaitable[T]]) -> T:
    """One hedged call: the primary now, a hedge whenever the delay passes since the latest
    attempt started (or at once after a failure), while ``max_attempts`` and the budget allow.
    The first success wins; every other attempt is cancelled before this returns.

    If every attempt fails: a call that made one attempt (no hedge was sent) raises that
    attempt's own exception, as the unhedged call would; a call that made several raises
    :class:`AllFailedError` with all of them, the last as its ``__cause__``."""
    loop = asyncio.get_running_loop()
    delay = policy._begin()
    max_attempts = policy.max_attempts
    start = loop.time()
    primary: asyncio.Future[T] = start_leg(factory())
    running: set[asyncio.Future[T]] = {primary}
    primary_open = True
    errors: list[BaseException] = []
    started = 1
    last_start = start
    may_hedge = max_attempts > 1

    def launch() -> None:
        nonlocal started, last_start, may_hedge
        if not policy._try_hedge():
            may_hedge = False
            return
        running.add(start_leg(factory()))
        started += 1
        last_start = loop.time()
        if started >= max_attempts:
            may_hedge = False

    try:
        while True:
            timeout = None
            if may_hedge and delay is not None:
                timeout = max(0.0, last_start + delay - loop.time())
            done, _ = await asyncio.wait(
                running, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                launch()
                continue
            failed = False
            for task in done:
                running.discard(task)
                if task is primary:
                    primary_open = False
                    policy._primary_done(loop.time() - start)
                if task.cancelled():
                    errors.append(asyncio.CancelledError())
                    failed = True
                    continue
                exc = task.exception()
                if exc is None:
                    if task is not primary:
                        policy._hedge_won()
                    return task.result()
                errors.append(exc)
                failed = True
            if failed and may_hedge:
                launch()
            if not running:
                if started == 1:
                    # Nothing was hedged: the call fails as the unhedged call would. Its
                    # traceback will hold this frame, so no local may refer to it (directly or
                    # through its task): that cycle would keep the attempt's frames alive.
                    only = errors.pop()
                    done.clear()
                    del primary, task
                    exc = None
                    try:
                        raise only
                    finally:
                        del only
                raise AllFailedError(
                    f"all {len(errors)} attempts of the hedged call failed; last: {errors[-1]!r}",
                    errors,
                ) from errors[-1]
    finally:
        if primary_open:
            # Cancelled while still out: record how long it had been, a lower bound.
            policy._primary_done(loop.time() - start)
        await cancel_and_wait(running)


def wrap_hedged(policy: Hedge, fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """The coroutine function whose every call is hedged under ``policy``."""

    @functools.wraps(fn)
    async def hedged(*args: Any, **kwargs: Any) -> T:
        return await run_hedged(policy, lambda: fn(*args, **kwargs))

    hedged.hedge = policy  # type: ignore[attr-defined]
    return hedged
