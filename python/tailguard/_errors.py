"""The exceptions tailguard raises. Every one is a :class:`TailguardError`."""

from __future__ import annotations

from typing import Literal, Optional

# What `RetryError.reason` can be, and the states in which a breaker refuses a call.
_GaveUpReason = Literal["exhausted", "deadline", "budget"]
_RefusingState = Literal["open", "half_open", "forced_open"]
_DeadlineReason = Literal["passed", "reached", "too_short"]


class TailguardError(Exception):
    """The base class of every exception tailguard raises."""


class ConfigError(TailguardError, ValueError):
    """A parameter was refused. ``parameter`` names it; the message says what is accepted.

    Also a :class:`ValueError`, so ``except ValueError`` catches it.
    """

    def __init__(self, message: str, parameter: str) -> None:
        super().__init__(message)
        self.parameter = parameter

    def __reduce__(self) -> tuple[type[ConfigError], tuple[str, str]]:
        return (type(self), (str(self), self.parameter))


class RetryError(TailguardError):
    """A retry loop gave up. The last attempt's exception is the ``__cause__``.

    ``reason`` says why: ``"exhausted"`` (every allowed attempt failed), ``"deadline"`` (the next
    attempt could not start before the deadline) or ``"budget"`` (the retry budget refused the
    retry; then the error is a :class:`BudgetExhaustedError`). An exception the policy does not
    retry is re-raised as it is, not wrapped. ``attempts`` is how many were made, ``elapsed`` the
    seconds from the start of the call to giving up (every attempt included).
    """

    def __init__(
        self, message: str, attempts: int, elapsed: float, reason: _GaveUpReason
    ) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.elapsed = elapsed
        self.reason: _GaveUpReason = reason

    @property
    def last_exception(self) -> Optional[BaseException]:
        """The last attempt's exception (the same as ``__cause__``)."""
        return self.__cause__

    def __reduce__(self) -> tuple[type[RetryError], tuple[str, int, float, _GaveUpReason]]:
        return (type(self), (str(self), self.attempts, self.elapsed, self.reason))


class BudgetExhaustedError(RetryError):
    """The shared :class:`~tailguard.RetryBudget` refused a retry: the dependency is failing for
    many callers at once. A subclass of :class:`RetryError` (``reason == "budget"``), so code
    that handles ``RetryError`` handles it too."""


class AttemptTimeoutError(TailguardError, TimeoutError):
    """An attempt of an async call ran past its time limit (the policy's ``timeout``, or what
    was left of its ``deadline``). Also a :class:`TimeoutError`."""


class DeadlineExceededError(TailguardError, TimeoutError):
    """A :class:`~tailguard.Pipeline` call ended on its deadline. Also a :class:`TimeoutError`.

    ``reason`` says how: ``"passed"`` (the deadline had passed before the call started: nothing
    was tried), ``"reached"`` (it fell while an attempt was running, which was cancelled, or
    before a failed attempt could be retried) or ``"too_short"`` (a retry was due, but the time
    left after its backoff was shorter than an attempt is predicted to take: neither the sleep nor
    the retry was started). ``attempts`` is how many attempts were made; ``remaining`` and
    ``predicted`` (seconds) are the two figures a ``"too_short"`` decision compared, else
    ``None``. The last attempt's exception, if any, is the ``__cause__``.
    """

    def __init__(
        self,
        message: str,
        reason: _DeadlineReason,
        attempts: int,
        remaining: Optional[float] = None,
        predicted: Optional[float] = None,
    ) -> None:
        super().__init__(message)
        self.reason: _DeadlineReason = reason
        self.attempts = attempts
        self.remaining = remaining
        self.predicted = predicted

    def __reduce__(
        self,
    ) -> tuple[
        type[DeadlineExceededError],
        tuple[str, _DeadlineReason, int, Optional[float], Optional[float]],
    ]:
        return (
            type(self),
            (str(self), self.reason, self.attempts, self.remaining, self.predicted),
        )


class CircuitOpenError(TailguardError):
    """The circuit breaker refused the call without running it.

    ``state`` is the state that refused it: ``"open"``, ``"half_open"`` (every probe slot is
    taken) or ``"forced_open"``. ``retry_after`` is the number of seconds until the breaker
    lets a probe through when it is ``"open"``, and ``None`` when no such time is known:
    ``"half_open"`` (a probe slot frees whenever a probe ends, possibly at once, and a probe
    that times out reopens the breaker) and ``"forced_open"`` (until ``reset()`` or
    ``disable()``).
    """

    def __init__(
        self, message: str, retry_after: Optional[float], state: _RefusingState = "open"
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.state: _RefusingState = state

    def __reduce__(
        self,
    ) -> tuple[type[CircuitOpenError], tuple[str, Optional[float], _RefusingState]]:
        return (type(self), (str(self), self.retry_after, self.state))


_LimitReason = Literal["limit", "shed", "probe"]
_Criticality = Literal["critical", "default", "sheddable"]


class LimitExceededError(TailguardError):
    """The :class:`~tailguard.AdaptiveLimiter` refused the call without running it.

    ``reason`` says why: ``"limit"`` (as many calls as the limit allows are in flight),
    ``"shed"`` (the calls in flight fill this criticality's share of the limit; the rest is kept
    for more critical work) or ``"probe"`` (the limit is held low while the no-load latency is
    re-measured). ``criticality`` is the refused call's class; ``limit`` and ``in_flight`` the
    figures that refused it.
    """

    def __init__(
        self,
        message: str,
        reason: _LimitReason,
        criticality: _Criticality,
        limit: int,
        in_flight: int,
    ) -> None:
        super().__init__(message)
        self.reason: _LimitReason = reason
        self.criticality: _Criticality = criticality
        self.limit = limit
        self.in_flight = in_flight

    def __reduce__(
        self,
    ) -> tuple[type[LimitExceededError], tuple[str, _LimitReason, _Criticality, int, int]]:
        return (
            type(self),
            (str(self), self.reason, self.criticality, self.limit, self.in_flight),
        )


class AllFailedError(TailguardError):
    """Every attempt failed (a hedged call, or :func:`~tailguard.first_ok`). ``exceptions``
    holds each one in the order they failed; the last is also the ``__cause__``.

    A hedged call raises it only when it made several attempts: if it made one (no hedge was
    sent: ``max_attempts=1``, the budget refused, or the attempt failed before the delay with
    no hedge allowed), that attempt's own exception propagates unwrapped, as from the unhedged
    call, much as ``retry`` re-raises an exception it does not retry as it is.
    """

    def __init__(self, message: str, exceptions: list[BaseException]) -> None:
        super().__init__(message)
        self.exceptions = exceptions


class QuorumError(TailguardError):
    """:func:`~tailguard.quorum` could not gather ``required`` successes: too many calls failed.
    ``successes`` and ``exceptions`` hold what came back before it gave up."""

    def __init__(
        self,
        message: str,
        required: int,
        successes: list[object],
        exceptions: list[BaseException],
    ) -> None:
        super().__init__(message)
        self.required = required
        self.successes = successes
        self.exceptions = exceptions


# What `BulkheadFullError.reason` and `RateLimitedError.reason` can be.
_BulkheadReason = Literal["full", "deadline"]
_RateReason = Literal["empty", "deadline", "too_many"]


class BulkheadFullError(TailguardError):
    """The bulkhead refused the call without running it: a rejection, not a failure.

    ``reason`` is ``"full"`` (every slot was taken and the wait queue was full, or there is
    none) or ``"deadline"`` (the wait for a slot ran out).
    """

    def __init__(self, message: str, reason: _BulkheadReason = "full") -> None:
        super().__init__(message)
        self.reason: _BulkheadReason = reason

    def __reduce__(self) -> tuple[type[BulkheadFullError], tuple[str, _BulkheadReason]]:
        return (type(self), (str(self), self.reason))


class RateLimitedError(TailguardError):
    """The rate limiter refused the call without running it: a rejection, not a failure.

    ``reason`` is ``"empty"`` (no token now and no wait allowed), ``"deadline"`` (the next
    token comes after the wait's limit: refused at once, not slept through) or ``"too_many"``
    (more tokens asked at once than the burst holds). ``retry_after`` is the number of seconds
    until the tokens asked for are there, ``None`` for ``"too_many"``.
    """

    def __init__(
        self, message: str, retry_after: Optional[float], reason: _RateReason = "empty"
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.reason: _RateReason = reason

    def __reduce__(
        self,
    ) -> tuple[type[RateLimitedError], tuple[str, Optional[float], _RateReason]]:
        return (type(self), (str(self), self.retry_after, self.reason))


class ThrottledError(TailguardError):
    """The client-side throttle refused the request locally, without sending it, because the
    backend has been rejecting requests. ``probability`` is the chance of refusal it was
    drawn against."""

    def __init__(self, message: str, probability: float) -> None:
        super().__init__(message)
        self.probability = probability

    def __reduce__(self) -> tuple[type[ThrottledError], tuple[str, float]]:
        return (type(self), (str(self), self.probability))
