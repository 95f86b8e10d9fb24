"""``tailguard.retry``, and the async half of it: a small coroutine around the native state
machine.

The sync loop runs entirely in Rust (``tailguard._native.Retrying``). An ``async def`` needs
``await``, so its loop lives here; every decision (classify, backoff, deadline, budget, hooks)
is still made natively by :class:`tailguard._native.RetryRun`.
"""

from __future__ import annotations

import asyncio
import functools
import sys
from typing import (
    TYPE_CHECKING,
    Any,
    Awaitable,
    Callable,
    Optional,
    Tuple,
    Type,
    TypeVar,
    Union,
    overload,
)

from tailguard._errors import AttemptTimeoutError
from tailguard._native import Backoff, ManualClock, Retry, RetryBudget, RetryEvent, RetryRun
from tailguard._wrap import Template

if TYPE_CHECKING:
    from typing_extensions import ParamSpec

    from tailguard._native import _Retried, _Seconds

    P = ParamSpec("P")

T = TypeVar("T")

if sys.version_info >= (3, 11):

    async def _with_timeout(awaitable: Awaitable[T], limit: float) -> T:
        try:
            async with asyncio.timeout(limit):
                return await awaitable
        except TimeoutError as exc:
            # asyncio.timeout turns its own cancellation into TimeoutError; only that one is
            # ours (the attempt's own TimeoutError passes through unchanged).
            if exc.__context__ is not None and isinstance(exc.__context__, asyncio.CancelledError):
                raise AttemptTimeoutError(
                    f"the attempt did not finish within {limit:.3f}s"
                ) from exc
            raise

else:  # pragma: no cover - exercised on Python 3.9 and 3.10 only

    async def _with_timeout(awaitable: Awaitable[T], limit: float) -> T:
        try:
            return await asyncio.wait_for(awaitable, limit)
        except asyncio.TimeoutError as exc:
            raise AttemptTimeoutError(f"the attempt did not finish within {limit:.3f}s") from exc


async def _loop(
    run: RetryRun,
    fn: Callable[..., Awaitable[T]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> T:
    """Attempts until one succeeds; ``run`` decides everything else."""
    while True:
        limit = run.begin()
        try:
            if limit is None:
                return await fn(*args, **kwargs)
            return await _with_timeout(fn(*args, **kwargs), limit)
        except Exception as exc:
            outcome = run.failed(exc, isinstance(exc, AttemptTimeoutError))
            if outcome is None:
                raise
            delay = await _after_hook(run, outcome)
        await _sleep(run, delay)


async def _after_hook(run: RetryRun, outcome: Union[float, tuple[float, Awaitable[object]]]) -> float:
    """The delay to wait; first awaits what an ``async def`` ``on_retry`` hook returned (called
    within the attempt's ``except`` block, so what the hook raises chains to the attempt's error).
    If the hook fails or the call is cancelled meanwhile, the retry is abandoned."""
    if not isinstance(outcome, tuple):
        return outcome
    delay, pending = outcome
    try:
        await pending
    except BaseException:
        run.close()
        raise
    return delay


async def _sleep(run: RetryRun, delay: float) -> None:
    """Waits out a backoff delay; if cancelled meanwhile, hands back the retry the budget
    granted for it (it will never be made) before the cancellation propagates."""
    try:
        await asyncio.sleep(delay)
    except BaseException:
        run.close()
        raise


async def _after_first_failure(
    run: RetryRun,
    delay: float,
    fn: Callable[..., Awaitable[T]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> T:
    await _sleep(run, delay)
    return await _loop(run, fn, args, kwargs)


# The happy path: one clock read (the call's start, for `elapsed`), no state, one try block.
# The loop's state is made only when the first attempt fails.
_RETRYING = Template(
    """\
def make(fn, now, after_failure, after_hook, then):
    async def retrying({params}):
        started = now()
        try:
            return await fn({call})
        except Exception as exc:
            run = after_failure(started)
            outcome = run.failed(exc, False)
            if outcome is None:
                raise
            delay = await after_hook(run, outcome)
        return await then(run, delay, fn, {args}, {kwargs})
    return retrying
""",
    "tailguard retry wrapper",
)


def wrap_async(policy: Retry, fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """The coroutine function that retries ``fn`` under ``policy``."""
    retrying: Callable[..., Awaitable[T]]
    if policy._needs_run:
        start = policy._start

        @functools.wraps(fn)
        async def retrying(*args: Any, **kwargs: Any) -> T:
            return await _loop(start(), fn, args, kwargs)

    else:
        retrying = _RETRYING.wrap(
            fn,
            fn=fn,
            now=policy._now,
            after_failure=policy._after_first_failure,
            after_hook=_after_hook,
            then=_after_first_failure,
        )

    retrying.retry = policy  # type: ignore[attr-defined]
    return retrying


RetryOn = Union[
    Type[BaseException],
    Tuple[Type[BaseException], ...],
    Callable[[BaseException], Union[bool, float, None]],
]


@overload
def retry(func: Callable[P, T], /) -> _Retried[P, T]: ...


@overload
def retry(
    *,
    on: Optional[RetryOn] = None,
    attempts: Optional[int] = None,
    deadline: Optional[_Seconds] = None,
    timeout: Optional[_Seconds] = None,
    backoff: Optional[Backoff] = None,
    budget: Optional[RetryBudget] = None,
    on_retry: Optional[Callable[[RetryEvent], object]] = None,
    retry_on_timeout: Optional[bool] = None,
    clock: Optional[ManualClock] = None,
) -> Retry: ...


def retry(func: Optional[Callable[..., Any]] = None, /, **settings: Any) -> Any:
    """Retries a sync or async function; see :class:`Retry` for the settings.

    Use it as ``@retry`` (every ``Exception``, 3 attempts, the default backoff) or
    ``@retry(on=..., attempts=..., ...)``. ``KeyboardInterrupt``, ``SystemExit`` and
    ``asyncio.CancelledError`` are never retried or counted.

    A decorated function keeps its signature (also for type checkers) and gains the policy as
    its ``.retry`` attribute: a sync function becomes a :class:`Retrying`, an ``async def`` a
    coroutine function.
    """
    policy = Retry(**settings)
    if func is None:
        return policy
    return policy(func)
