"""What the HTTP integrations (:mod:`tailguard.httpx`, :mod:`tailguard.aiohttp`) do to each
request, built in one place: :class:`HttpPolicy`.

A request runs through retry (idempotent methods only, by default), a circuit breaker per host,
and, when asked, hedging. Responses with a status in ``retry_statuses`` (429, 502, 503, 504) and
connection errors are retried; a ``Retry-After`` header (seconds or an HTTP-date) sets the wait,
never shorter than asked. This module needs no HTTP library.

>>> from tailguard.http import HttpPolicy, parse_retry_after
>>> policy = HttpPolicy(attempts=4, max_retry_after=10.0)
>>> policy.attempts, sorted(policy.retry_statuses)
(4, [429, 502, 503, 504])
>>> parse_retry_after("120")
120.0
>>> parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0)
10.0
"""

from __future__ import annotations

import collections
import datetime
import email.utils
import math
import threading
import time
from typing import Any, Collection, Dict, Mapping, Optional, Union

from tailguard._breaker import CircuitBreaker
from tailguard._errors import AllFailedError, ConfigError, TailguardError
from tailguard._native import Backoff, Hedge, Retry, RetryBudget
from tailguard.metrics import Recorder

__all__ = [
    "FAILURE_STATUSES",
    "IDEMPOTENT_METHODS",
    "RETRY_STATUSES",
    "HttpPolicy",
    "StatusError",
    "parse_retry_after",
]

#: The methods retried (and hedged) by default: those RFC 9110 calls idempotent.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
#: The statuses retried by default.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: The statuses a host's breaker counts as failures by default.
FAILURE_STATUSES = frozenset({500, 502, 503, 504})
# The longest Retry-After the retry core will wait (it cuts longer ones); `max_retry_after`
# may not exceed it, so that a wait is never shorter than asked.
_RETRY_AFTER_LIMIT = 60.0
# Distinct deadlines whose retry policy is kept (one per timeout a client uses).
_RETRY_POLICIES = 32

_DEFAULT: Any = object()


class StatusError(TailguardError):
    """A response whose status the policy retries (``status``, and the ``Retry-After`` it
    asked for in seconds, ``retry_after``, or ``None``).

    It stays inside the integration: when the retries end, the last such response is returned
    to the caller as it is. It is seen only as the ``__cause__`` of a
    :class:`~tailguard.RetryError` that could not return it (the deadline passed while
    waiting); the response is then closed.
    """

    def __init__(
        self, message: str, status: int, retry_after: Optional[float], response: object
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        #: The response (closed once the retry moves on).
        self.response = response


class _Unhealthy(Exception):
    """What a host's breaker is told about a failed attempt (the only class it counts)."""


class _Neutral(Exception):
    """What a host's breaker is told about an attempt that says nothing of the host."""


UNHEALTHY = _Unhealthy("the attempt failed")
NEUTRAL = _Neutral("the attempt ended without a verdict on the host")


def parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """The seconds a ``Retry-After`` header value asks to wait: delta-seconds (``"120"``) or an
    HTTP-date, from ``now`` (a Unix time; default the current time); a date in the past is 0.
    ``None`` for a missing or malformed value (the backoff then decides)."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # asctime's form carries no zone: every HTTP-date is GMT
        when = when.replace(tzinfo=datetime.timezone.utc)
    wait = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, wait)


def _positive(name: str, value: object, *, allow_inf: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"`{name}` must be a number of seconds, got {type(value).__name__}")
    seconds = float(value)
    if not (seconds > 0) or (math.isinf(seconds) and not allow_inf):
        raise ConfigError(
            f"invalid `{name}`: must be a positive finite number of seconds, got {value!r}", name
        )
    return seconds


class HttpPolicy:
    """How the HTTP integrations treat each request; one policy may serve several clients
    (they then share its breakers, budget and hedge statistics).

    Settings (all optional, keyword only):

    - ``methods``: the methods retried and hedged (default :data:`IDEMPOTENT_METHODS`); any
      other method gets one attempt, still through its host's breaker.
    - ``retry_statuses``: statuses retried (default :data:`RETRY_STATUSES`); when retries end,
      the last such response is returned as it is.
    - ``attempts`` (3, the first included), ``backoff`` (a :class:`~tailguard.Backoff`, default
      :meth:`~tailguard.Backoff.default`), ``budget`` (a :class:`~tailguard.RetryBudget` shared
      by every request of the policy; default ``RetryBudget()``; ``None`` for none).
    - ``max_retry_after`` (30 s, at most 60 s): the longest ``Retry-After`` honoured; a response
      asking for longer is returned, not retried early. A wait that would end past the deadline
      is not made either.
    - ``deadline``: seconds for the whole request, retries and waits included; by default
      (``"timeout"``) the longest of the client's timeouts for the request (httpx's
      ``timeout=``, aiohttp's ``ClientTimeout.total``), or none if it has none; ``None`` for
      none.
    - ``breaker``: the settings of the :class:`~tailguard.CircuitBreaker` made for each host
      (a mapping; default the breaker's defaults), or ``None`` for no breakers. A breaker
      counts connection errors, timeouts and ``failure_statuses`` (default
      :data:`FAILURE_STATUSES`) as failures; it refuses calls with
      :class:`~tailguard.CircuitOpenError`.
    - ``max_hosts`` (256): breakers kept; beyond, the least recently used host's is forgotten.
    - ``hedge``: hedging of retried methods (async clients only): a :class:`~tailguard.Hedge`,
      or its delay (seconds or a percentile such as ``"p95"``); default none.
    - ``metrics`` (a :class:`~tailguard.metrics.Recorder`) and ``name`` (the ``policy`` label,
      default ``"http"``).
    """

    def __init__(
        self,
        *,
        methods: Collection[str] = IDEMPOTENT_METHODS,
        retry_statuses: Collection[int] = RETRY_STATUSES,
        failure_statuses: Collection[int] = FAILURE_STATUSES,
        attempts: int = 3,
        backoff: Optional[Backoff] = None,
        budget: Optional[RetryBudget] = _DEFAULT,
        max_retry_after: float = 30.0,
        deadline: Union[float, str, None] = "timeout",
        breaker: Optional[Mapping[str, Any]] = _DEFAULT,
        max_hosts: int = 256,
        hedge: Union[Hedge, float, str, None] = None,
        metrics: Optional[Recorder] = None,
        name: str = "http",
    ) -> None:
        self.methods = frozenset(_method(m) for m in _collection("methods", methods))
        self.retry_statuses = frozenset(
            _status("retry_statuses", s) for s in _collection("retry_statuses", retry_statuses)
        )
        self.failure_statuses = frozenset(
            _status("failure_statuses", s) for s in _collection("failure_statuses", failure_statuses)
        )
        if isinstance(attempts, bool) or not isinstance(attempts, int):
            raise TypeError(f"`attempts` must be an int, got {type(attempts).__name__}")
        if attempts < 1:
            raise ConfigError(f"invalid `attempts`: must be at least 1, got {attempts}", "attempts")
        self.attempts = attempts
        if backoff is not None and not isinstance(backoff, Backoff):
            raise TypeError(f"`backoff` must be a tailguard.Backoff, got {type(backoff).__name__}")
        self.backoff = backoff if backoff is not None else Backoff.default()
        if budget is _DEFAULT:
            budget = RetryBudget()
        if budget is not None and not isinstance(budget, RetryBudget):
            raise TypeError(f"`budget` must be a tailguard.RetryBudget, got {type(budget).__name__}")
        self.budget = budget
        self.max_retry_after = _positive("max_retry_after", max_retry_after)
        if self.max_retry_after > _RETRY_AFTER_LIMIT:
            raise ConfigError(
                f"invalid `max_retry_after`: at most {_RETRY_AFTER_LIMIT:g} s (longer waits are "
                f"not honoured by the retry core), got {max_retry_after!r}",
                "max_retry_after",
            )
        # The deadline when it is not taken from the client's timeout.
        self._deadline: Optional[float] = None
        if deadline == "timeout" or deadline is None:
            self.deadline: Union[float, str, None] = deadline
        elif isinstance(deadline, str):
            raise ConfigError(
                f'invalid `deadline`: seconds, "timeout" or None, got {deadline!r}', "deadline"
            )
        else:
            self.deadline = self._deadline = _positive("deadline", deadline)
        self._from_timeout = deadline == "timeout"
        if breaker is _DEFAULT:
            breaker = {}
        if breaker is not None:
            if not isinstance(breaker, Mapping):
                raise TypeError(
                    f"`breaker` must be a mapping of CircuitBreaker settings or None, got "
                    f"{type(breaker).__name__}"
                )
            if "on" in breaker:
                raise ConfigError(
                    "invalid `breaker`: `on` is set by the policy (connection errors, timeouts "
                    "and `failure_statuses` count as failures)",
                    "breaker",
                )
            CircuitBreaker(**breaker)  # refuses bad settings now, naming the field
            breaker = dict(breaker)
        self.breaker_settings: Optional[Dict[str, Any]] = breaker
        if isinstance(max_hosts, bool) or not isinstance(max_hosts, int):
            raise TypeError(f"`max_hosts` must be an int, got {type(max_hosts).__name__}")
        if max_hosts < 1:
            raise ConfigError(f"invalid `max_hosts`: must be at least 1, got {max_hosts}", "max_hosts")
        self.max_hosts = max_hosts
        if hedge is not None and not isinstance(hedge, Hedge):
            if isinstance(hedge, bool):
                raise TypeError("`hedge` must be a Hedge, seconds, a percentile or None, got bool")
            hedge = Hedge(hedge)
        self.hedge: Optional[Hedge] = hedge
        if not isinstance(name, str) or not name:
            raise ConfigError(f"invalid `name`: a non-empty str, got {name!r}", "name")
        self.name = name
        if metrics is not None and not isinstance(metrics, Recorder):
            raise TypeError(
                f"`metrics` must be a tailguard.metrics.Recorder, got {type(metrics).__name__}"
            )
        self.metrics = metrics
        if metrics is not None and hedge is not None:
            metrics.watch_hedge(hedge, name=name)
        self._breakers: "collections.OrderedDict[str, CircuitBreaker]" = collections.OrderedDict()
        self._lock = threading.Lock()
        self._retries: Dict[Optional[float], Retry] = {}

    def breaker(self, host: str) -> Optional[CircuitBreaker]:
        """The breaker of ``host`` (``"host:port"``), made on first use; ``None`` if the policy
        has no breakers."""
        found = self._breakers.get(host)
        if found is not None:
            try:
                self._breakers.move_to_end(host)
            except KeyError:  # forgotten meanwhile by another thread
                pass
            return found
        if self.breaker_settings is None:
            return None
        return self._new_breaker(host)

    def _new_breaker(self, host: str) -> CircuitBreaker:
        evicted = []
        with self._lock:
            found = self._breakers.get(host)
            if found is not None:
                return found
            made = CircuitBreaker(**(self.breaker_settings or {}), on=_Unhealthy)
            self._breakers[host] = made
            while len(self._breakers) > self.max_hosts:
                evicted.append(self._breakers.popitem(last=False)[1])
        if self.metrics is not None:
            self.metrics.watch_breaker(made, name=self.name, host=host)
            for old in evicted:
                self.metrics.unwatch_breaker(old)
        return made

    def hosts(self) -> list[str]:
        """The hosts that have a breaker now, least recently used first."""
        return list(self._breakers)

    def retry_policy(self, deadline: Optional[float]) -> Retry:
        """The :class:`~tailguard.Retry` a request with ``deadline`` (seconds or ``None``) runs
        under: the policy's attempts, backoff and budget, and its ``Retry-After`` rules."""
        found = self._retries.get(deadline)
        if found is None:
            if len(self._retries) >= _RETRY_POLICIES:
                self._retries.clear()
            found = Retry(
                on=self._classify,
                attempts=self.attempts,
                deadline=deadline,
                backoff=self.backoff,
                budget=self.budget,
            )
            self._retries[deadline] = found
        return found

    def _classify(self, exc: BaseException) -> Union[bool, float]:
        """The retry verdict on a failed attempt (the integration passes only statuses and
        errors it deemed safe to retry: the rest are raised before they reach the policy)."""
        if isinstance(exc, AllFailedError):  # a hedged attempt: judged by its last failure
            exc = exc.__cause__ if exc.__cause__ is not None else exc
        if isinstance(exc, StatusError):
            if exc.retry_after is None:
                return True
            if exc.retry_after > self.max_retry_after:
                return False
            return exc.retry_after
        return True

    def request_deadline(self, timeout: Optional[float]) -> Optional[float]:
        """The deadline of one request whose client timeout is ``timeout`` (seconds or
        ``None``)."""
        if self._from_timeout:
            return timeout if timeout is not None and timeout > 0 else None
        return self._deadline

    def __repr__(self) -> str:
        return (
            f"HttpPolicy(name={self.name!r}, methods={sorted(self.methods)}, "
            f"retry_statuses={sorted(self.retry_statuses)}, attempts={self.attempts}, "
            f"deadline={self.deadline!r}, breaker={self.breaker_settings!r}, "
            f"hedge={self.hedge!r})"
        )


def _collection(name: str, value: object) -> Collection[Any]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Collection):
        raise TypeError(f"`{name}` must be a collection, got {type(value).__name__}")
    return value


def _method(value: object) -> str:
    if not isinstance(value, str) or not value.isalpha():
        raise ConfigError(f"invalid `methods`: HTTP method names, got {value!r}", "methods")
    return value.upper()


def _status(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
        raise ConfigError(f"invalid `{name}`: statuses from 100 to 599, got {value!r}", name)
    return value
