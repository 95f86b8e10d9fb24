"""``tailguard.Pipeline``: retry, circuit breaker and timeouts composed in one fixed order, under
one deadline, for sync and asyncio code.

The order is the core's (``tailguard::pipeline``): deadline → retry budget → retry (backoff) →
circuit breaker → attempt timeout → the call. Every decision is made by the native state
machines the other policies use: the retry's (``RetryRun``: classifier, backoff, budget, hooks),
the breaker's (its tickets), and a ``RollingHistogram`` of the pipeline's own attempt latencies,
from which a retry's predicted latency is read. This file only says when attempts start and end.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from typing import (
    TYPE_CHECKING,
    Any,
    Awaitable,
    Callable,
    Optional,
    Tuple,
    TypeVar,
    Union,
    overload,
)

from tailguard import _native
from tailguard._errors import AttemptTimeoutError, ConfigError, DeadlineExceededError
from tailguard._native import AdaptiveTimeout, ManualClock, Retry, RetryRun, RollingHistogram
from tailguard._pipeline_sync import _release, _SyncCalls
from tailguard._pipeline_wrap import (
    _COROUTINE,
    _PENDING,
    _PIPED,
    _PIPED_TIMED,
    _SCOPES,
    _Resume,
    _first_step,
    _no_report,
    _no_ticket,
    _Scope,
    _seconds,
)
from tailguard._retry import _with_timeout

if TYPE_CHECKING:
    from typing_extensions import ParamSpec

    from tailguard._native import _Number, _Seconds

    P = ParamSpec("P")

T = TypeVar("T")


class Pipeline(_SyncCalls):
    """Retry, circuit breaker and timeouts around a call, composed in one order and bounded by
    one deadline: deadline → retry budget → retry (backoff) → circuit breaker → attempt timeout
    → the call. The order is fixed, whatever order the settings are given in.

    Settings (all optional, keyword only): ``retry`` (a :class:`~tailguard.Retry`, e.g.
    ``tg.retry(on=ConnectionError, attempts=3, budget=budget)``: which exceptions are retried,
    how many attempts, the backoff, the budget, the hook; its own ``timeout`` must be left unset:
    the pipeline's applies), ``breaker`` (a :class:`~tailguard.CircuitBreaker`, asked before every
    attempt), ``timeout`` (seconds or a ``timedelta``: each attempt's limit, async calls only;
    or a :class:`~tailguard.AdaptiveTimeout`, which learns the limit from the attempts it bounds:
    see below),
    ``deadline`` (seconds from the start of each call: no attempt starts, and no backoff sleep
    is taken, that could not end by then; an async call is cancelled at it, while a sync attempt
    already running cannot be interrupted and is let finish), ``predict_percentile`` (0.9), ``predict_floor`` (0 s),
    ``predict_min_samples`` (20), ``latency_window`` (10 s), ``clock`` (a
    :class:`~tailguard.testing.ManualClock`; default: the retry policy's).

    Use it as a decorator (``@pipeline`` on a sync function or an ``async def``), call through it
    (:meth:`call`, :meth:`acall`), and bound a block of calls by a deadline with
    ``with pipeline.scope(seconds):`` (or ``async with``).

    The deadline decides: a call whose deadline has passed raises
    :class:`~tailguard.DeadlineExceededError` (``reason="passed"``) without running; a retry
    is not started, nor its backoff slept, when the time left after the sleep is shorter than an
    attempt is predicted to take (``"too_short"``), the prediction being the
    ``predict_percentile`` of the pipeline's recent attempt latencies once it has
    ``predict_min_samples`` of them, and ``predict_floor`` until then; an async attempt still
    running when the deadline falls is cancelled (``"reached"``). A call the breaker refuses
    raises :class:`~tailguard.CircuitOpenError` and never counts as a call in the retry budget;
    a refusal never counts as a failure in the breaker. An exception the retry policy does not
    retry propagates as it is; exhausted retries raise :class:`~tailguard.RetryError` (a refused
    budget :class:`~tailguard.BudgetExhaustedError`), as ``tg.retry`` does.

    With ``timeout=tg.AdaptiveTimeout(...)`` each async attempt's limit is the adaptive
    timeout's value when it starts (its percentile of recent latency × its factor, within its
    floor and ceiling), capped by the deadline like a fixed one, and every attempt that ends on
    its own is recorded into it: a success or a failure at its latency, an attempt it cut (an
    :class:`~tailguard.AttemptTimeoutError`) at the time it had been out, as a lower bound. An
    attempt the deadline cut, or one cancelled, is not recorded. A sync attempt cannot be
    interrupted: the pipeline records each one (a :class:`TimeoutError` it raises, your client's
    timeout, as cut) and the function reads its limit with ``pipeline.adaptive_timeout.timeout()``
    to give its client. The adaptive timeout's ``timeout_rate`` is the share of attempts cut;
    its ``false_timeout_rate`` needs the fates of cut attempts, reported with
    ``record_late``. It must read the pipeline's clock (both the system's, or both a
    :class:`~tailguard.testing.ManualClock`).
    """

    __slots__ = (
        "_retry",
        "_breaker",
        "_timeout",
        "_adaptive",
        "_deadline",
        "_percentile",
        "_floor",
        "_min_samples",
        "_latency",
        "_clock",
        "_now",
        "_eager",
    )

    def __init__(
        self,
        *,
        retry: Optional[Retry] = None,
        breaker: Optional[_native.CircuitBreaker] = None,
        timeout: Union[_Seconds, AdaptiveTimeout, None] = None,
        deadline: Optional[_Seconds] = None,
        predict_percentile: _Number = 0.9,
        predict_floor: _Seconds = 0.0,
        predict_min_samples: int = 20,
        latency_window: _Seconds = 10.0,
        clock: Optional[ManualClock] = None,
    ) -> None:
        if retry is not None and not isinstance(retry, Retry):
            raise TypeError(f"`retry` must be a tailguard.Retry or None, got {retry!r}")
        if breaker is not None and not isinstance(breaker, _native.CircuitBreaker):
            raise TypeError(f"`breaker` must be a tailguard.CircuitBreaker or None, got {breaker!r}")
        if retry is not None and retry.timeout is not None:
            raise ConfigError(
                "invalid `retry`: its `timeout` must be unset; give the pipeline's `timeout` "
                "instead (one limit per attempt, inside the breaker)",
                "retry",
            )
        if clock is not None and not isinstance(clock, ManualClock):
            raise TypeError(f"`clock` must be a tailguard.testing.ManualClock or None, got {clock!r}")
        self._retry = retry
        self._breaker = breaker
        self._adaptive: Optional[AdaptiveTimeout] = None
        if isinstance(timeout, AdaptiveTimeout):
            self._adaptive = timeout
            self._timeout: Optional[float] = None
        else:
            self._timeout = None if timeout is None else _seconds("timeout", timeout)
        self._deadline = None if deadline is None else _seconds("deadline", deadline)
        if isinstance(predict_percentile, bool) or not isinstance(predict_percentile, (int, float)):
            raise TypeError(f"`predict_percentile` must be a number, got {predict_percentile!r}")
        if not 0.0 < float(predict_percentile) <= 1.0:
            raise ConfigError(
                f"invalid `predict_percentile`: must be in (0, 1], got {predict_percentile!r}",
                "predict_percentile",
            )
        self._percentile = float(predict_percentile)
        self._floor = _seconds("predict_floor", predict_floor, positive=False)
        if isinstance(predict_min_samples, bool) or not isinstance(predict_min_samples, int):
            raise TypeError(f"`predict_min_samples` must be an int, got {predict_min_samples!r}")
        if predict_min_samples < 1:
            raise ConfigError(
                f"invalid `predict_min_samples`: must be at least 1, got {predict_min_samples}",
                "predict_min_samples",
            )
        self._min_samples = predict_min_samples
        if clock is None and retry is not None:
            clock = retry.clock
        self._clock = clock
        if self._adaptive is not None and (self._adaptive.clock is None) != (clock is None):
            raise ConfigError(
                "invalid `timeout`: the adaptive timeout must read the pipeline's clock (give "
                "both the same ManualClock, or neither)",
                "timeout",
            )
        self._now: Callable[[], float] = clock.now if clock is not None else time.monotonic
        window = _seconds("latency_window", latency_window)
        self._latency = RollingHistogram(window, slots=10, clock=clock)
        # The retry's state is started before the first attempt when the policy needs it then (a
        # budget to deposit into, a deadline of its own); else at the first failure.
        self._eager = retry is not None and retry._needs_run

    # -- settings ---------------------------------------------------------------------------

    @property
    def retry(self) -> Optional[Retry]:
        """The retry policy, or ``None``."""
        return self._retry

    @property
    def breaker(self) -> Optional[_native.CircuitBreaker]:
        """The circuit breaker, or ``None``."""
        return self._breaker

    @property
    def timeout(self) -> Optional[float]:
        """Each attempt's fixed time limit in seconds (async calls), or ``None`` (also with an
        adaptive one: see :attr:`adaptive_timeout`)."""
        return self._timeout

    @property
    def adaptive_timeout(self) -> Optional[AdaptiveTimeout]:
        """The adaptive attempt timeout given as ``timeout``, or ``None``: its ``timeout()`` is
        the next attempt's limit, its counters (``completed``, ``timed_out``, ``timeout_rate``,
        ``false_timeout_rate``) what it has seen."""
        return self._adaptive

    @property
    def deadline(self) -> Optional[float]:
        """Each call's deadline in seconds from its start, or ``None``."""
        return self._deadline

    @property
    def latency(self) -> RollingHistogram:
        """The window of recent attempt latencies the predictions are read from."""
        return self._latency

    def predicted_latency(self) -> float:
        """How long an attempt is predicted to take, in seconds: the ``predict_percentile`` of
        the window once it holds ``predict_min_samples``, else ``predict_floor``."""
        if self._latency.count >= self._min_samples:
            quantile = self._latency.quantile(self._percentile)
            if quantile is not None:
                return quantile
        return self._floor

    def scope(self, seconds: _Seconds) -> _Scope:
        """A context manager (``with`` or ``async with``) under which every call through this
        pipeline ends by ``seconds`` from now (or its own ``deadline``, if earlier). Scopes nest:
        the earliest deadline holds. Entering it returns the deadline on the pipeline's clock."""
        return _Scope(self, _seconds("seconds", seconds))

    def __repr__(self) -> str:
        parts = []
        if self._deadline is not None:
            parts.append(f"deadline={self._deadline}")
        if self._retry is not None:
            parts.append(f"retry={self._retry!r}")
        if self._breaker is not None:
            parts.append(f"breaker={self._breaker!r}")
        if self._timeout is not None:
            parts.append(f"timeout={self._timeout}")
        if self._adaptive is not None:
            parts.append(f"timeout={self._adaptive!r}")
        return f"Pipeline({', '.join(parts)})"

    # -- decorating and calling ---------------------------------------------------------------

    @overload
    def __call__(self, func: Callable[P, Awaitable[T]], /) -> Callable[P, Awaitable[T]]: ...

    @overload
    def __call__(self, func: Callable[P, T], /) -> Callable[P, T]: ...

    def __call__(self, func: Callable[..., Any], /) -> Callable[..., Any]:
        """Decorates ``func`` (sync or ``async def``): each call goes through the pipeline. The
        wrapper keeps ``func``'s signature and carries the pipeline as ``.pipeline``."""
        if not callable(func):
            raise TypeError(f"`func` must be callable, got {func!r}")
        wrapper: Callable[..., Any]
        if inspect.iscoroutinefunction(func):
            if self._eager or self._adaptive is not None:
                # The whole call in the loop: an adaptive limit is read once per attempt, with
                # the attempt's outcome recorded against it.

                @functools.wraps(func)
                async def piped_async(*args: Any, **kwargs: Any) -> Any:
                    return await self._call_async(func, args, kwargs)

                wrapper = piped_async
            else:
                breaker = self._breaker
                closure: dict[str, Any] = dict(
                    fn=func,
                    now=self._now,
                    scopes=_SCOPES.get,
                    enter=breaker._enter if breaker is not None else _no_ticket,
                    succeeded=breaker._succeeded if breaker is not None else _no_report,
                    record=self._latency.record,
                    full=self._call_async,
                    slow=self._first_failed_async,
                )
                if self._timeout is None and self._deadline is None:
                    wrapper = _PIPED.wrap(func, **closure)
                else:
                    wrapper = _PIPED_TIMED.wrap(
                        func,
                        coroutine=_COROUTINE,
                        resume=_Resume,
                        rest=self._rest_of_first,
                        **closure,
                    )
            setattr(wrapper, "pipeline", self)
            return wrapper
        self._check_sync()
        # The first attempt runs in Rust; a failure continues in `_retry_sync`.
        piped = _native.Piped(
            self,
            func,
            self._breaker,
            self._latency,
            _SCOPES,
            self._deadline,
            not self._eager,
            self._adaptive,
        )
        functools.update_wrapper(piped, func)
        return piped

    def call(self, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Calls the sync ``func(*args, **kwargs)`` through the pipeline, once."""
        self._check_sync()
        return self._call_sync(func, args, kwargs)

    async def acall(
        self, func: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Awaits ``func(*args, **kwargs)`` through the pipeline, once."""
        return await self._call_async(func, args, kwargs)

    def _check_sync(self) -> None:
        if self._timeout is not None:
            raise ConfigError(
                "invalid `timeout`: applies only to async functions (a running sync call cannot "
                "be interrupted); use `deadline` to bound a sync call",
                "timeout",
            )

    def _record(self, seconds: float, cut: bool = False) -> None:
        """An attempt ended on its own after ``seconds``: into the prediction's window, and into
        the adaptive timeout if any (``cut``: its own limit cut it, a lower bound)."""
        self._latency.record(seconds)
        adaptive = self._adaptive
        if adaptive is not None:
            if cut:
                adaptive.record_timeout(seconds)
            else:
                adaptive.record(seconds)

    # -- the deadline ---------------------------------------------------------------------------

    def _deadline_at(self, started: float) -> Optional[float]:
        """The call's deadline on the pipeline's clock: its own, or a scope's if earlier."""
        deadline = None if self._deadline is None else started + self._deadline
        for owner, scoped in _SCOPES.get():
            if owner is self and (deadline is None or scoped < deadline):
                deadline = scoped
        return deadline

    def _too_short(
        self, run: RetryRun, deadline: float, wait: float, attempts: int, exc: BaseException
    ) -> Optional[DeadlineExceededError]:
        """The error ending the call if a retry after ``wait`` would leave less time than an
        attempt is predicted to take (the retry the budget granted is handed back); else
        ``None``."""
        remaining = deadline - (self._now() + wait)
        predicted = self.predicted_latency()
        if remaining > 0 and remaining >= predicted:
            return None
        run.close()
        remaining = max(remaining, 0.0)
        return DeadlineExceededError(
            f"retry not started after {attempts} attempt(s): {remaining:.3f}s would be left "
            f"before the deadline, an attempt is predicted to take {predicted:.3f}s",
            "too_short",
            attempts,
            remaining,
            predicted,
        )

    # -- async ----------------------------------------------------------------------------------

    def _limit(self, at: float, deadline: Optional[float]) -> Tuple[Optional[float], bool]:
        """An attempt started at ``at``: its time limit in seconds (``None`` if unlimited), and
        whether that limit is the call's deadline rather than the attempt's own timeout."""
        adaptive = self._adaptive
        timeout = self._timeout if adaptive is None else adaptive.timeout()
        if deadline is None:
            return timeout, False
        left = deadline - at
        if timeout is None or left <= timeout:
            return left, True
        return timeout, False

    async def _call_async(
        self, func: Callable[..., Awaitable[T]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> T:
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
        limit, by_deadline = self._limit(started, deadline)
        try:
            if limit is None:
                result = await func(*args, **kwargs)
            else:
                # A timer only for an attempt that has to wait: its first step runs at once.
                result = _first_step(func(*args, **kwargs))
                if type(result) is tuple and len(result) == 2 and result[0] is _PENDING:
                    left = limit - (now() - started)
                    result = await _with_timeout(result[1], max(left, 0.0))
        except BaseException as exc:
            return await self._retry_async(
                func, args, kwargs, started, deadline, ticket, run, exc, started, by_deadline
            )
        if ticket is not None:
            breaker._succeeded(ticket)  # type: ignore[union-attr]
        self._record(now() - started)
        return result

    async def _rest_of_first(self, rest: Awaitable[T], started: float) -> T:
        """The first attempt of a decorated call, which did not finish on its first step: the
        rest of it, under its time limit."""
        deadline = None if self._deadline is None else started + self._deadline
        limit, _ = self._limit(started, deadline)
        assert limit is not None
        return await _with_timeout(rest, max(limit - (self._now() - started), 0.0))

    async def _first_failed_async(
        self,
        func: Callable[..., Awaitable[T]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        started: float,
        ticket: Optional[int],
        exc: BaseException,
    ) -> T:
        """The first attempt of a decorated call failed: the loop takes over."""
        deadline = None if self._deadline is None else started + self._deadline
        _, by_deadline = self._limit(started, deadline)
        return await self._retry_async(
            func, args, kwargs, started, deadline, ticket, None, exc, started, by_deadline
        )

    async def _retry_async(
        self,
        func: Callable[..., Awaitable[T]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        started: float,
        deadline: Optional[float],
        ticket: Optional[int],
        run: Optional[RetryRun],
        exc: BaseException,
        attempt_started: float,
        by_deadline: bool,
    ) -> T:
        now = self._now
        breaker = self._breaker
        attempts = 1
        while True:
            timed_out = isinstance(exc, AttemptTimeoutError)
            if timed_out and by_deadline:
                # The call's deadline, not the attempt's own limit: the work is cut, uncounted.
                _release(breaker, ticket)
                if run is not None:
                    run.close()
                raise DeadlineExceededError(
                    f"deadline reached after {attempts} attempt(s)", "reached", attempts
                ) from exc
            if ticket is not None:
                breaker._settle(ticket, exc)  # type: ignore[union-attr]
            if isinstance(exc, Exception):
                self._record(now() - attempt_started, timed_out)
            else:
                if run is not None:
                    run.close()
                raise exc
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
            outcome = run.failed(exc, timed_out)
            if outcome is None:
                raise exc
            if isinstance(outcome, tuple):
                wait, pending = outcome
                try:
                    await pending
                except BaseException:
                    run.close()
                    raise
            else:
                wait = outcome
            if deadline is not None:
                too_short = self._too_short(run, deadline, wait, attempts, exc)
                if too_short is not None:
                    raise too_short from exc
            try:
                await asyncio.sleep(wait)
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
            limit, by_deadline = self._limit(attempt_started, deadline)
            try:
                if limit is None:
                    result = await func(*args, **kwargs)
                else:
                    result = await _with_timeout(func(*args, **kwargs), limit)
            except BaseException as next_exc:
                exc = next_exc
                continue
            if ticket is not None:
                breaker._succeeded(ticket)  # type: ignore[union-attr]
            self._record(now() - attempt_started)
            return result


__all__ = ["Pipeline"]
