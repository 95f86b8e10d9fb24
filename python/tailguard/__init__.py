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

from tailguard._errors import (
    AllFailedError,
    AttemptTimeoutError,
    BudgetExhaustedError,
    CircuitOpenError,
    ConfigError,
    LimitExceededError,
    QuorumError,
    RetryError,
    TailguardError,
)
from tailguard import testing
from tailguard._breaker import CircuitBreaker
from tailguard._fanout import first_ok, quorum, scatter_gather
from tailguard._limit import AdaptiveLimiter, Limited
from tailguard._hedge import hedge
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
    LimitPermit,
    Retry,
    RetryBudget,
    RetryEvent,
    Retrying,
    RollingHistogram,
    __version__,
    is_testing,
)
from tailguard._retry import RetryOn as RetryOn  # the `on=` type alias, defined here before
from tailguard._retry import retry
from tailguard.testing import ManualClock, set_testing

__all__ = [
    "AdaptiveLimiter",
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
    "LimitExceededError",
    "LimitPermit",
    "Limited",
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
