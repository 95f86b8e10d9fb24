"""The Python half of the adaptive concurrency limit: the decorator and the context managers.

Every decision (admit or refuse, the limit, what a sample does) is the native limiter's; this
file only says when a call starts and how it ended.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from types import TracebackType
from typing import Any, Callable, Optional, Tuple, Type, TypeVar, cast

from tailguard import _native
from tailguard._errors import _Criticality
from tailguard._native import LimitPermit

F = TypeVar("F", bound=Callable[..., Any])

# The permits of the `with` blocks open in this context (thread or asyncio task), innermost last.
_OPEN: contextvars.ContextVar[Tuple[LimitPermit, ...]] = contextvars.ContextVar(
    "tailguard_limit_blocks", default=()
)


def _settle(permit: LimitPermit, exc: Optional[BaseException]) -> None:
    """Success is a sample; a timeout is a drop (the call took too long); cancellation is a
    drop with no latency, as an unreported permit; any other exception says nothing about load.
    """
    if exc is None:
        permit.success()
    elif isinstance(exc, TimeoutError):
        permit.dropped()
    elif isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt, SystemExit)):
        permit.dropped()
    else:
        permit.ignore()


class Limited:
    """One criticality class of an :class:`AdaptiveLimiter`: a decorator (sync and
    ``async def``) and a context manager (``with`` and ``async with``). From
    :meth:`AdaptiveLimiter.limited`."""

    __slots__ = ("_limiter", "_criticality")

    def __init__(self, limiter: AdaptiveLimiter, criticality: _Criticality) -> None:
        self._limiter = limiter
        self._criticality = criticality
        limiter._check(criticality)

    def __call__(self, func: F) -> F:
        limiter, criticality = self._limiter, self._criticality
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                permit = limiter.acquire(criticality)
                try:
                    result = await func(*args, **kwargs)
                except BaseException as exc:
                    _settle(permit, exc)
                    raise
                permit.success()
                return result

            return cast(F, run_async)

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            permit = limiter.acquire(criticality)
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                _settle(permit, exc)
                raise
            permit.success()
            return result

        return cast(F, run)

    def __enter__(self) -> LimitPermit:
        permit = self._limiter.acquire(self._criticality)
        _OPEN.set(_OPEN.get() + (permit,))
        return permit

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        blocks = _OPEN.get()
        permit = blocks[-1]
        _OPEN.set(blocks[:-1])
        if not permit.done:
            _settle(permit, exc)

    async def __aenter__(self) -> LimitPermit:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.__exit__(exc_type, exc, tb)


class AdaptiveLimiter(_native.AdaptiveLimiter):
    """An adaptive concurrency limit: admits only as many concurrent calls as the dependency
    serves without queueing, measured from their latency, and under overload refuses the least
    critical work first.

    Use it as a decorator (sync and ``async def``), as ``with limiter:`` or
    ``async with limiter:``, with a class as ``limiter.limited("critical")`` (the same three
    forms), or by hand with :meth:`acquire`. A refused call raises
    :class:`~tailguard.LimitExceededError` without running. A call that returns is a latency
    sample; one that raises ``TimeoutError`` (or is cancelled) counts as dropped, which lowers
    the limit; any other exception says nothing about load and is not a sample.

    Settings (all optional): ``algorithm`` (``"gradient2"``: the limit follows the ratio of a
    long-term latency baseline to recent latency; ``"aimd"``: one more per call, times
    ``backoff`` (0.9) on a drop; ``"fixed"``: always ``limit``); ``initial_limit`` (20),
    ``min_limit`` (1), ``max_limit`` (1000); ``sheddable_share`` (0.5) and ``default_share``
    (0.9), the fractions of the limit those classes may fill (critical calls may fill all of
    it); ``monitor_only`` (admit everything, count in :meth:`metrics` what would have been
    refused); ``probe_interval`` (seconds between re-measurements of the no-load latency, 60;
    ``None`` for never); ``clock`` (a :class:`~tailguard.testing.ManualClock`).

    Criticality classes: ``"critical"`` (the product fails without it: shed last),
    ``"default"`` (ordinary traffic) and ``"sheddable"`` (prefetch, batch, retries: shed first).
    """

    __slots__ = ()

    def __init__(
        self,
        *,
        algorithm: str = "gradient2",
        limit: Optional[int] = None,
        initial_limit: int = 20,
        min_limit: int = 1,
        max_limit: int = 1000,
        backoff: Optional[float] = None,
        sheddable_share: float = 0.5,
        default_share: float = 0.9,
        monitor_only: bool = False,
        probe_interval: Optional[float] = 60.0,
        clock: Optional[_native.ManualClock] = None,
    ) -> None:
        # Everything was set up by the native __new__, from the same arguments.
        super().__init__()

    def _check(self, criticality: str) -> None:
        if criticality not in ("critical", "default", "sheddable"):
            from tailguard._errors import ConfigError

            raise ConfigError(
                "invalid `criticality`: must be \"critical\", \"default\" or \"sheddable\", "
                f"got {criticality!r}",
                "criticality",
            )

    def limited(self, criticality: _Criticality = "default") -> Limited:
        """The decorator and context manager for calls of ``criticality``."""
        return Limited(self, criticality)

    def __call__(self, func: F) -> F:
        return Limited(self, "default")(func)

    def __enter__(self) -> LimitPermit:
        return Limited(self, "default").__enter__()

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        Limited(self, "default").__exit__(exc_type, exc, tb)

    async def __aenter__(self) -> LimitPermit:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.__exit__(exc_type, exc, tb)
