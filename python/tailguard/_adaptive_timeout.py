"""The sync and asyncio forms of :class:`tailguard.AdaptiveTimeout`: one attempt, timed and
recorded."""

from __future__ import annotations

import asyncio
import time
from types import TracebackType
from typing import TYPE_CHECKING, Awaitable, Callable, Optional, Type, TypeVar

from tailguard._errors import AttemptTimeoutError

if TYPE_CHECKING:
    from tailguard._native import AdaptiveTimeout

T = TypeVar("T")


def _now(timeout: "AdaptiveTimeout") -> float:
    clock = timeout.clock
    return time.monotonic() if clock is None else float(clock.now())


class Attempt:
    """One sync attempt under an :class:`~tailguard.AdaptiveTimeout`: ``with t.attempt() as
    seconds:`` gives the timeout to pass to your client. On exit the attempt's latency is
    recorded; if it raised a :class:`TimeoutError` (your client's timeout), it is recorded as
    cut, at the time it had been out. The exception is never swallowed."""

    __slots__ = ("_timeout", "_started", "seconds")

    def __init__(self, timeout: "AdaptiveTimeout") -> None:
        self._timeout = timeout
        self._started = 0.0
        self.seconds = 0.0

    def __enter__(self) -> float:
        self.seconds = self._timeout.timeout()
        self._started = _now(self._timeout)
        return self.seconds

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        elapsed = max(0.0, _now(self._timeout) - self._started)
        if exc_type is not None and issubclass(exc_type, TimeoutError):
            self._timeout.record_timeout(elapsed)
        else:
            self._timeout.record(elapsed)


async def run_with_timeout(timeout: "AdaptiveTimeout", factory: Callable[[], Awaitable[T]]) -> T:
    """Awaits ``factory()`` within ``timeout.timeout()`` seconds; the latency, or the cut, is
    recorded. Past the timeout the attempt is cancelled and
    :class:`~tailguard.AttemptTimeoutError` raised."""
    seconds = timeout.timeout()
    started = _now(timeout)
    try:
        result: T = await asyncio.wait_for(factory(), seconds)
    except asyncio.TimeoutError:
        timeout.record_timeout(max(0.0, _now(timeout) - started))
        raise AttemptTimeoutError(
            f"the attempt ran past its adaptive timeout of {seconds:.6g}s"
        ) from None
    except BaseException:
        timeout.record(max(0.0, _now(timeout) - started))
        raise
    timeout.record(max(0.0, _now(timeout) - started))
    return result
