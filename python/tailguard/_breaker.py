"""The Python half of the circuit breaker: the async decorator and the context managers.

The decision of every call (admit or refuse, what an outcome counts as, when to open, how many
probes) is the native state machine's; this file only says when a call starts and ends.
"""

from __future__ import annotations

import contextvars
from types import TracebackType
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Optional, Tuple, Type, TypeVar

from tailguard import _native
from tailguard._native import Backoff, BreakerPermit, BreakerTransition, ManualClock
from tailguard._wrap import Template

if TYPE_CHECKING:
    from tailguard._native import _BreakerOn, _Number, _Seconds

T = TypeVar("T")

# The permits of the `with breaker:` blocks open in this context (thread or asyncio task),
# innermost last, each with its breaker. One variable for every breaker.
_OPEN_BLOCKS: contextvars.ContextVar[Tuple[Tuple[object, BreakerPermit], ...]] = (
    contextvars.ContextVar("tailguard_breaker_blocks", default=())
)


class CircuitBreaker(_native.CircuitBreaker):
    """A circuit breaker: fails fast while a dependency is down, probes it with a few calls,
    closes again when they succeed.

    Use it as a decorator (sync and ``async def``), as ``with breaker:`` or
    ``async with breaker:``, or by hand with :meth:`acquire`. A refused call raises
    :class:`~tailguard.CircuitOpenError` without running. Which exceptions count as failures is
    ``on`` (default: every ``Exception``; others count as neither). Cancellation,
    ``KeyboardInterrupt`` and ``SystemExit`` never count.

    Settings (all optional): ``failure_rate`` (0.5) over a ``window`` of the last 100 calls or a
    ``time_window`` in seconds (with ``time_window_buckets``), judged after ``minimum_calls``
    (20); ``consecutive_failures``; ``slow_call_duration`` and ``slow_call_rate``;
    ``open_duration`` (seconds, the same every time) or ``open_backoff`` (a
    :class:`~tailguard.Backoff` of growing durations; default 10 s doubling with each failed probe round up to 5 min, with equal jitter: each opening lasts
    between half and all of that, so the first lasts 5 to 10 s and a fleet of breakers that
    opened together probes at different times); ``half_open_calls`` (5),
    ``half_open_success_rate`` (1.0), ``half_open_timeout`` (60 s); ``on_transition`` (a
    listener); ``stripes``; ``clock`` (a :class:`~tailguard.testing.ManualClock`).
    """

    __slots__ = ()

    def __init__(
        self,
        *,
        failure_rate: Optional[_Number] = None,
        window: Optional[int] = None,
        time_window: Optional[_Seconds] = None,
        time_window_buckets: Optional[int] = None,
        minimum_calls: Optional[int] = None,
        consecutive_failures: Optional[int] = None,
        open_duration: Optional[_Seconds] = None,
        open_backoff: Optional[Backoff] = None,
        half_open_calls: Optional[int] = None,
        half_open_success_rate: Optional[_Number] = None,
        half_open_timeout: Optional[_Seconds] = None,
        slow_call_duration: Optional[_Seconds] = None,
        slow_call_rate: Optional[_Number] = None,
        on: Optional[_BreakerOn] = None,
        on_transition: Optional[Callable[[BreakerTransition], object]] = None,
        stripes: Optional[int] = None,
        clock: Optional[ManualClock] = None,
    ) -> None:
        # Everything was set up by the native __new__, from the same arguments.
        super().__init__()

    def __enter__(self) -> BreakerPermit:
        permit = self.acquire()
        _OPEN_BLOCKS.set(_OPEN_BLOCKS.get() + ((self, permit),))
        return permit

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        blocks = _OPEN_BLOCKS.get()
        for index in range(len(blocks) - 1, -1, -1):
            if blocks[index][0] is self:
                permit = blocks[index][1]
                _OPEN_BLOCKS.set(blocks[:index] + blocks[index + 1 :])
                permit.record(exc)
                return

    async def __aenter__(self) -> BreakerPermit:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.__exit__(exc_type, exc, tb)


# The async decorator: acquire, await, report, in one coroutine (no `async with`, no permit
# object: the ticket stays in the breaker under a number). Every way out of the `try` reports
# the ticket: success, an exception, cancellation (`CancelledError`, released), a coroutine
# closed or collected while suspended (`GeneratorExit`, released).
_GUARDED = Template(
    """\
def make(fn, enter, succeeded, settle):
    async def guarded({params}):
        ticket = enter()
        try:
            result = await fn({call})
        except BaseException as exc:
            settle(ticket, exc)
            raise
        succeeded(ticket)
        return result
    return guarded
""",
    "tailguard breaker wrapper",
)


def wrap_async(
    breaker: _native.CircuitBreaker, fn: Callable[..., Awaitable[T]]
) -> Callable[..., Awaitable[T]]:
    """The coroutine function that calls ``fn`` through ``breaker``."""
    guarded = _GUARDED.wrap(
        fn, fn=fn, enter=breaker._enter, succeeded=breaker._succeeded, settle=breaker._settle
    )
    guarded.breaker = breaker  # type: ignore[attr-defined]
    return guarded
