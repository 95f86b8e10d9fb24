"""The request loops behind the HTTP integrations: one sync, one asyncio, both driven by an
:class:`~tailguard.http.HttpPolicy` and by an :class:`IO` that says how the HTTP library's
responses are read and closed.

Per request: the host's breaker is asked for each attempt; a method the policy does not retry
(or a body that cannot be sent twice) gets that one attempt. Otherwise the native retry state
(:class:`tailguard._native.RetryRun`) decides every retry, its delay (a ``Retry-After``
included), the deadline and the budget; this file only sleeps, closes the responses nobody
will read, and hands the caller the last retried response when the retries end.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable, List, NamedTuple, Optional, Tuple, Type, Union

from tailguard._errors import AllFailedError, AttemptTimeoutError, RetryError
from tailguard._native import RetryRun
from tailguard._retry import _with_timeout
from tailguard.http import NEUTRAL, UNHEALTHY, HttpPolicy, StatusError, parse_retry_after

Errors = Tuple[Type[BaseException], ...]


class IO(NamedTuple):
    """What the loops need to know of one HTTP library."""

    #: The status of a response.
    status: Callable[[Any], int]
    #: The Retry-After header of a response, or None.
    retry_after: Callable[[Any], Optional[str]]
    #: Closes a response nobody will read (may return an awaitable, awaited by the async loop).
    close: Callable[[Any], object]
    #: Errors after which an attempt may be made again (the request may have been sent).
    retryable: Errors
    #: Errors that count against the host's breaker.
    unhealthy: Errors


def _settle(breaker: Any, ticket: int, io: IO, exc: BaseException) -> None:
    if isinstance(exc, io.unhealthy):
        breaker._settle(ticket, UNHEALTHY)
    elif isinstance(exc, Exception):
        breaker._settle(ticket, NEUTRAL)
    else:  # cancelled: counts as neither
        breaker._settle(ticket, exc)


def _status_error(io: IO, host: str, response: Any, status: int) -> StatusError:
    retry_after = parse_retry_after(io.retry_after(response))
    return StatusError(f"HTTP {status} from {host}", status, retry_after, response)


def _deciding(exc: BaseException) -> BaseException:
    """The failure a retry is decided on: a hedged attempt's last one."""
    if isinstance(exc, AllFailedError) and exc.__cause__ is not None:
        return exc.__cause__
    return exc


def _is_retryable(io: IO, exc: BaseException) -> bool:
    exc = _deciding(exc)
    return isinstance(exc, StatusError) or isinstance(exc, io.retryable)


def _kept(exc: BaseException) -> Any:
    """The response an attempt's failure still holds open (to return or close), or None."""
    exc = _deciding(exc)
    return exc.response if isinstance(exc, StatusError) else None


def _gave_up(policy: HttpPolicy, err: RetryError) -> Any:
    """The retries ended with ``err``: the last retried response is the answer, if there is
    one still open; else ``err`` is raised."""
    if err.reason == "budget" and policy.metrics is not None:
        policy.metrics.budget_refused(policy.name, "retry")
    if err.__cause__ is not None:
        response = _kept(err.__cause__)
        if response is not None:
            return response
    raise err


def _retried(policy: HttpPolicy) -> None:
    if policy.metrics is not None:
        policy.metrics.retried(policy.name)


# -- sync --------------------------------------------------------------------------------------


def attempt_sync(
    policy: HttpPolicy,
    io: IO,
    host: str,
    breaker: Any,
    attempt: Callable[[Optional[float]], Any],
    limit: Optional[float],
    retried: bool,
) -> Any:
    """One attempt through the host's breaker; a retried status raises :class:`StatusError`
    (when ``retried``)."""
    if breaker is None:
        response = attempt(limit)
        status = io.status(response)
    else:
        ticket = breaker._enter()
        try:
            response = attempt(limit)
        except BaseException as exc:
            _settle(breaker, ticket, io, exc)
            raise
        status = io.status(response)
        if status in policy.failure_statuses:
            breaker._settle(ticket, UNHEALTHY)
        else:
            breaker._succeeded(ticket)
    if retried and status in policy.retry_statuses:
        raise _status_error(io, host, response, status)
    return response


def first_limit(deadline: Optional[float], timeout: Optional[float]) -> Optional[float]:
    """The time limit of a request's first attempt: none when the client's own timeout
    (``timeout``, its longest) already bounds it as the deadline would, else the deadline."""
    if deadline is None or (timeout is not None and deadline >= timeout):
        return None
    return deadline


def send_sync(
    policy: HttpPolicy,
    io: IO,
    host: str,
    retried: bool,
    deadline: Optional[float],
    limit: Optional[float],
    attempt: Callable[[Optional[float]], Any],
) -> Any:
    """Sends one request: ``attempt(limit)`` makes one attempt within ``limit`` seconds (or
    none) and returns the response. ``limit`` is the first attempt's (see
    :func:`first_limit`); later ones get what is left of ``deadline``.

    The first attempt runs before any retry state exists (a success costs one clock read and
    the budget's deposit); the native state is made at the first failure, dated from the
    call's start."""
    breaker = policy.breaker(host)
    if not retried:
        return attempt_sync(policy, io, host, breaker, attempt, None, False)
    budget = policy.budget
    started = time.monotonic()
    try:
        response = attempt_sync(policy, io, host, breaker, attempt, limit, True)
    except Exception as exc:
        if not _is_retryable(io, exc):
            if budget is not None:
                budget.deposit()
            raise
        run = policy.retry_policy(deadline)._after_first_failure(started)
        delay = _decide(policy, run, exc)
        if not isinstance(delay, float):
            return delay.response
        _abandon_sync(policy, io, exc)
    else:
        if budget is not None:
            budget.deposit()
        return response
    while True:
        if delay > 0:
            try:
                time.sleep(delay)
            except BaseException:  # KeyboardInterrupt: the granted retry goes back
                run.close()
                raise
        try:
            limit = run.begin()
        except RetryError as err:
            return _gave_up(policy, err)
        try:
            return attempt_sync(policy, io, host, breaker, attempt, limit, True)
        except Exception as exc:
            if not _is_retryable(io, exc):
                raise
            delay = _decide(policy, run, exc)
            if not isinstance(delay, float):
                return delay.response
            _abandon_sync(policy, io, exc)


def _abandon_sync(policy: HttpPolicy, io: IO, exc: BaseException) -> None:
    """A retry follows: closes the failed attempt's response, counts the retry."""
    response = _kept(exc)
    if response is not None:
        io.close(response)
    _retried(policy)


class _Answer(NamedTuple):
    response: Any


def _decide(policy: HttpPolicy, run: RetryRun, exc: Exception) -> Union[float, _Answer]:
    """The delay before the next attempt, or the response to answer with; raises what the
    caller must raise."""
    try:
        delay = run.failed(exc, isinstance(exc, AttemptTimeoutError))
    except RetryError as err:
        return _Answer(_gave_up(policy, err))
    if delay is None:  # not retried after all (a Retry-After beyond `max_retry_after`)
        response = _kept(exc)
        if response is None:
            raise exc
        return _Answer(response)
    if isinstance(delay, tuple):  # pragma: no cover - the policy has no on_retry hook
        delay = delay[0]
    return float(delay)


# -- asyncio -----------------------------------------------------------------------------------


async def attempt_async(
    policy: HttpPolicy,
    io: IO,
    host: str,
    breaker: Any,
    attempt: Callable[[], Awaitable[Any]],
    limit: Optional[float],
    retried: bool,
    produced: Optional[List[Any]] = None,
) -> Any:
    """One attempt through the host's breaker, cut at ``limit`` seconds (raising
    :class:`~tailguard.AttemptTimeoutError`); every response is added to ``produced``."""
    if breaker is None:
        response = await (attempt() if limit is None else _with_timeout(attempt(), limit))
        status = io.status(response)
    else:
        ticket = breaker._enter()
        try:
            response = await (attempt() if limit is None else _with_timeout(attempt(), limit))
        except BaseException as exc:
            _settle(breaker, ticket, io, exc)
            raise
        status = io.status(response)
        if status in policy.failure_statuses:
            breaker._settle(ticket, UNHEALTHY)
        else:
            breaker._succeeded(ticket)
    if produced is not None:
        produced.append(response)
    if retried and status in policy.retry_statuses:
        raise _status_error(io, host, response, status)
    return response


async def _close(io: IO, response: Any) -> None:
    closing = io.close(response)
    if closing is not None and hasattr(closing, "__await__"):
        await closing


async def _close_all(io: IO, responses: List[Any], keep: Any) -> None:
    for response in responses:
        if response is not keep:
            await _close(io, response)


async def hedged_async(
    policy: HttpPolicy,
    io: IO,
    host: str,
    breaker: Any,
    attempt: Callable[[], Awaitable[Any]],
) -> Any:
    """One hedged attempt: the first good response wins; every other response is closed and
    every other attempt cancelled (its connection closed) before this returns."""
    assert policy.hedge is not None
    produced: List[Any] = []

    def leg() -> Awaitable[Any]:
        return attempt_async(policy, io, host, breaker, attempt, None, True, produced)

    try:
        winner = await policy.hedge.run(leg)
    except BaseException as exc:
        await _close_all(io, produced, _kept(exc))
        raise
    await _close_all(io, produced, winner)
    return winner


async def send_async(
    policy: HttpPolicy,
    io: IO,
    host: str,
    retried: bool,
    deadline: Optional[float],
    limit: Optional[float],
    attempt: Callable[[], Awaitable[Any]],
) -> Any:
    """Sends one request: ``attempt()`` makes one attempt and returns the response; the first
    is cut at ``limit`` (see :func:`first_limit`), later ones at what is left of
    ``deadline``. As in :func:`send_sync`, the retry state is made at the first failure."""
    breaker = policy.breaker(host)
    if not retried:
        return await attempt_async(policy, io, host, breaker, attempt, None, False)
    budget = policy.budget
    started = time.monotonic()
    try:
        response = await _one_async(policy, io, host, breaker, attempt, limit)
    except Exception as exc:
        if not _is_retryable(io, exc):
            if budget is not None:
                budget.deposit()
            raise
        run = policy.retry_policy(deadline)._after_first_failure(started)
        delay = _decide(policy, run, exc)
        if not isinstance(delay, float):
            return delay.response
        await _abandon_async(policy, io, exc)
    else:
        if budget is not None:
            budget.deposit()
        return response
    while True:
        try:
            await asyncio.sleep(delay)
        except BaseException:
            run.close()
            raise
        try:
            limit = run.begin()
        except RetryError as err:
            return _gave_up(policy, err)
        try:
            return await _one_async(policy, io, host, breaker, attempt, limit)
        except Exception as exc:
            if not _is_retryable(io, exc):
                raise
            delay = _decide(policy, run, exc)
            if not isinstance(delay, float):
                return delay.response
            await _abandon_async(policy, io, exc)


def _one_async(
    policy: HttpPolicy,
    io: IO,
    host: str,
    breaker: Any,
    attempt: Callable[[], Awaitable[Any]],
    limit: Optional[float],
) -> Awaitable[Any]:
    """One attempt of a retried request: hedged if the policy hedges."""
    if policy.hedge is None:
        return attempt_async(policy, io, host, breaker, attempt, limit, True)
    hedged = hedged_async(policy, io, host, breaker, attempt)
    return hedged if limit is None else _with_timeout(hedged, limit)


async def _abandon_async(policy: HttpPolicy, io: IO, exc: BaseException) -> None:
    """A retry follows: closes the failed attempt's response, counts the retry."""
    response = _kept(exc)
    if response is not None:
        await _close(io, response)
    _retried(policy)
