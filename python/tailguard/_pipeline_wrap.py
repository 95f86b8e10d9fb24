"""The pieces of :class:`~tailguard.Pipeline` that are not its loop: the ``scope()`` blocks, the
seconds check, and the async decorator's templates with the first step run before any timer."""

from __future__ import annotations

import contextvars
import datetime
import inspect
import math
import types
from types import TracebackType
from typing import TYPE_CHECKING, Any, Optional, Tuple, Type

from tailguard._errors import ConfigError
from tailguard._wrap import Template

if TYPE_CHECKING:
    from tailguard._pipeline import Pipeline

# The deadlines of the `with pipeline.scope(...)` blocks open in this context (thread or asyncio
# task), innermost last, each with its pipeline. One variable for every pipeline.
_SCOPES: contextvars.ContextVar[Tuple[Tuple[object, float], ...]] = contextvars.ContextVar(
    "tailguard_pipeline_scopes", default=()
)


def _seconds(name: str, value: object, *, positive: bool = True) -> float:
    """``value`` (a number of seconds or a ``timedelta``) in seconds, or ``ConfigError``."""
    if isinstance(value, datetime.timedelta):
        secs = value.total_seconds()
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"`{name}` must be a number of seconds or a timedelta, got {value!r}")
    else:
        secs = float(value)
    if math.isnan(secs) or secs < 0 or (positive and secs == 0) or math.isinf(secs):
        rule = "greater than zero" if positive else "at least zero"
        raise ConfigError(f"invalid `{name}`: must be finite and {rule}, got {value!r}", name)
    return secs


class _Scope:
    """What :meth:`Pipeline.scope` returns: a context manager (sync and async) under which every
    call through its pipeline ends by the scope's deadline."""

    __slots__ = ("_pipeline", "_seconds", "_token")

    def __init__(self, pipeline: Pipeline, seconds: float) -> None:
        self._pipeline = pipeline
        self._seconds = seconds
        self._token: Optional[contextvars.Token[Tuple[Tuple[object, float], ...]]] = None

    def __enter__(self) -> float:
        deadline = self._pipeline._now() + self._seconds
        self._token = _SCOPES.set(_SCOPES.get() + ((self._pipeline, deadline),))
        return deadline

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if self._token is not None:
            _SCOPES.reset(self._token)
            self._token = None

    async def __aenter__(self) -> float:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.__exit__(exc_type, exc, tb)


class _Resume:
    """The rest of a coroutine whose first step has run and yielded ``yielded``: awaiting it
    hands ``yielded`` to the task, then drives the coroutine on (values sent and exceptions
    thrown in, cancellation included, go through to it) until it returns."""

    __slots__ = ("_coro", "_yielded")

    def __init__(self, coro: Any, yielded: Any) -> None:
        self._coro = coro
        self._yielded = yielded

    def __await__(self) -> Any:
        coro, yielded = self._coro, self._yielded
        while True:
            try:
                sent = yield yielded
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:
                try:
                    yielded = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    yielded = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


_PENDING = object()


def _first_step(awaitable: Any) -> Any:
    """Runs the first step of a coroutine: its result if it finished (no timer was needed),
    else ``(_PENDING, rest)`` where ``rest`` awaits the remainder. Other awaitables are
    returned as ``(_PENDING, awaitable)``. The coroutine's exception propagates."""
    if not inspect.iscoroutine(awaitable):
        return (_PENDING, awaitable)
    try:
        yielded = awaitable.send(None)
    except StopIteration as stop:
        return stop.value
    return (_PENDING, _Resume(awaitable, yielded))


# The type of a native coroutine, for the timed template's first step.
_COROUTINE = types.CoroutineType


def _no_ticket() -> None:
    return None


def _no_report(ticket: Optional[int]) -> None:
    return None


# The async decorator's first attempt, compiled with the function's own parameters: outside a
# `scope()` and without a retry state to start first, a success costs a clock read at each end,
# the breaker's ticket and one coroutine; everything else (a scope, a failure) goes to the loop.
# The timed variant runs the attempt's first step (inline, as `_first_step` does) before arming a
# timer: one that finishes at once needs none.
_PIPED = Template(
    """\
def make(fn, now, scopes, enter, succeeded, record, full, slow):
    async def piped({params}):
        if scopes():
            return await full(fn, {args}, {kwargs})
        started = now()
        ticket = enter()
        try:
            result = await fn({call})
        except BaseException as exc:
            return await slow(fn, {args}, {kwargs}, started, ticket, exc)
        succeeded(ticket)
        record(now() - started)
        return result
    return piped
""",
    "tailguard pipeline wrapper",
)

_PIPED_TIMED = Template(
    """\
def make(fn, now, scopes, enter, succeeded, record, full, slow, coroutine, resume, rest):
    async def piped({params}):
        if scopes():
            return await full(fn, {args}, {kwargs})
        started = now()
        ticket = enter()
        try:
            attempt = fn({call})
            if attempt.__class__ is coroutine:
                try:
                    yielded = attempt.send(None)
                except StopIteration as stop:
                    result = stop.value
                else:
                    result = await rest(resume(attempt, yielded), started)
            else:
                result = await rest(attempt, started)
        except BaseException as exc:
            return await slow(fn, {args}, {kwargs}, started, ticket, exc)
        succeeded(ticket)
        record(now() - started)
        return result
    return piped
""",
    "tailguard timed pipeline wrapper",
)
