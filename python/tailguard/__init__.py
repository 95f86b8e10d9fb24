"""tailguard: retry with backoff and budgets, circuit breakers, hedging and latency histograms,
for sync and asyncio code, on a Rust core.

>>> import tailguard as tg
>>> @tg.retry(on=ConnectionError, attempts=3, backoff=tg.Backoff.exponential(0.01))
... def fetch() -> str:
...     return "ok"
>>> fetch()
'ok'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional, Tuple, Type, Union, overload

from tailguard._errors import (
    AllFailedError,
    AttemptTimeoutError,
    BudgetExhaustedError,
    CircuitOpenError,
    ConfigError,
    QuorumError,
    RetryError,
    TailguardError,
)
from tailguard import testing
from tailguard._breaker import CircuitBreaker
from tailguard._fanout import first_ok, hedge, quorum, scatter_gather
from tailguard._native import (
    Backoff,
    BreakerMetrics,
    BreakerPermit,
    BreakerTransition,
    Guarded,
    Hedge,
    HedgeBudget,
    HedgeStats,
    LatencyHistogram,
    Retry,
    RetryBudget,
    RetryEvent,
    Retrying,
    RollingHistogram,
    __version__,
    is_testing,
    set_testing,
)
from tailguard.testing import ManualClock

if TYPE_CHECKING:
    from typing_extensions import ParamSpec, TypeVar

    from tailguard._native import _Retried, _Seconds

    P = ParamSpec("P")
    R = TypeVar("R")

__all__ = [
    "AllFailedError",
    "AttemptTimeoutError",
    "Backoff",
    "BreakerMetrics",
    "BreakerPermit",
    "BreakerTransition",
    "BudgetExhaustedError",
    "CircuitBreaker",
    "CircuitOpenError",
    "ConfigError",
    "Guarded",
    "Hedge",
    "HedgeBudget",
    "HedgeStats",
    "LatencyHistogram",
    "QuorumError",
    "Retry",
    "RetryBudget",
    "RetryError",
    "RetryEvent",
    "Retrying",
    "RollingHistogram",
    "TailguardError",
    "__version__",
    "first_ok",
    "hedge",
    "is_testing",
    "quorum",
    "retry",
    "scatter_gather",
    "set_testing",
    "testing",
]

RetryOn = Union[
    Type[BaseException],
    Tuple[Type[BaseException], ...],
    Callable[[BaseException], Union[bool, float, None]],
]


@overload
def retry(func: Callable[P, R], /) -> _Retried[P, R]: ...


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
