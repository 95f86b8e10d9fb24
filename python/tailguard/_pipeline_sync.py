"""The sync calls of :class:`~tailguard.Pipeline`: the first attempt (when the Rust fast path
does not take it) and the retry loop after a failure. A sync attempt cannot be interrupted: the
deadline decides only before an attempt or a backoff sleep starts."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar

from tailguard import _native
from tailguard._errors import DeadlineExceededError
from tailguard._native import Retry, RetryRun
from tailguard._pipeline_wrap import _SCOPES

T = TypeVar("T")


def _release(breaker: Optional[_native.CircuitBreaker], ticket: Optional[int]) -> None:
    """Hands back a breaker ticket uncounted (the attempt never ran, or was cancelled)."""
    if breaker is not None and ticket is not None:
        breaker._settle(ticket, asyncio.CancelledError())


class _SyncCalls:
    """What :class:`~tailguard.Pipeline` does for a sync call; the settings are the pipeline's."""

    __slots__ = ()

    if TYPE_CHECKING:
        _retry: Optional[Retry]
        _breaker: Optional[_native.CircuitBreaker]
        _deadline: Optional[float]
        _now: Callable[[], float]
        _eager: bool

        def _deadline_at(self, started: float) -> Optional[float]: ...

        def _record(self, seconds: float, cut: bool = False) -> None: ...

        def _too_short(
            self, run: RetryRun, deadline: float, wait: float, attempts: int, exc: BaseException
        ) -> Optional[DeadlineExceededError]: ...


    def _call_sync(self, func: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        now = self._now
        started = now()
        deadline = self._deadline_at(started) if self._deadline is not None or _SCOPES.get() else None
        if deadline is not None and started >= deadline:
            raise DeadlineExceededError(
                "the deadline had passed before the call started", "passed", 0
            )
        breaker = self._breaker
        ticket = breaker._enter() if breaker is not None else None
        run = None
        if self._eager:
            run = self._start_run(breaker, ticket)
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            return self._retry_sync(func, args, kwargs, started, deadline, ticket, run, exc, started)
        if ticket is not None:
            breaker._succeeded(ticket)  # type: ignore[union-attr]
        self._record(now() - started)
        return result

    def _start_run(self, breaker: Optional[_native.CircuitBreaker], ticket: Optional[int]) -> RetryRun:
        """The retry's state, its first attempt begun (which deposits into its budget)."""
        run = self._retry._start()  # type: ignore[union-attr]
        try:
            run.begin()
        except BaseException:
            _release(breaker, ticket)
            raise
        return run

    def _retry_sync(
        self,
        func: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        started: float,
        deadline: Optional[float],
        ticket: Optional[int],
        run: Optional[RetryRun],
        exc: BaseException,
        attempt_started: float,
    ) -> T:
        now = self._now
        breaker = self._breaker
        attempts = 1
        while True:
            if ticket is not None:
                breaker._settle(ticket, exc)  # type: ignore[union-attr]
            if not isinstance(exc, Exception):
                # A KeyboardInterrupt or SystemExit says nothing about how long attempts take.
                if run is not None:
                    run.close()
                raise exc
            self._record(now() - attempt_started, isinstance(exc, TimeoutError))
            if deadline is not None and now() >= deadline:
                if run is not None:
                    run.close()
                raise DeadlineExceededError(
                    f"deadline reached after {attempts} attempt(s)", "reached", attempts
                ) from exc
            if self._retry is None:
                raise exc
            if run is None:
                run = self._retry._after_first_failure(started)
            outcome = run.failed(exc, False)
            if outcome is None:
                raise exc
            if isinstance(outcome, tuple):
                run.close()
                close = getattr(outcome[1], "close", None)
                if close is not None:
                    close()
                raise TypeError(
                    "`on_retry` returned an awaitable: a sync call's retries cannot await it"
                ) from exc
            wait = float(outcome)
            if deadline is not None:
                too_short = self._too_short(run, deadline, wait, attempts, exc)
                if too_short is not None:
                    raise too_short from exc
            if wait > 0:
                try:
                    time.sleep(wait)
                except BaseException:
                    run.close()
                    raise
            try:
                ticket = breaker._enter() if breaker is not None else None
            except BaseException:
                run.close()
                raise
            try:
                run.begin()
            except BaseException:
                _release(breaker, ticket)
                raise
            attempts += 1
            attempt_started = now()
            try:
                result = func(*args, **kwargs)
            except BaseException as next_exc:
                exc = next_exc
                continue
            if ticket is not None:
                breaker._succeeded(ticket)  # type: ignore[union-attr]
            self._record(now() - attempt_started)
            return result
