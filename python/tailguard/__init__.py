"""tailguard: retry with backoff and budgets, circuit breakers, hedging, latency histograms and
overload limits (bulkheads, rate limiters, client-side throttling), for sync and asyncio code,
on a Rust core.

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
    BulkheadFullError,
    CircuitOpenError,
    ConfigError,
    DeadlineExceededError,
    LimitExceededError,
    QuorumError,
    RateLimitedError,
    RetryError,
    TailguardError,
    ThrottledError,
)
from tailguard import testing
from tailguard._breaker import CircuitBreaker
from tailguard._fanout import first_ok, quorum, scatter_gather
from tailguard._hedge import NoTargetError, hedge
from tailguard._pipeline import Pipeline
from tailguard._limits import Bulkhead, KeyedRateLimiter, RateLimiter, Throttle
from tailguard._limit import AdaptiveLimiter, Limited
from tailguard._native import (
    AdaptiveTimeout,
    Backoff,
    BreakerMetrics,
    BreakerPermit,
    BreakerTransition,
    BulkheadPermit,
    Bulkheaded,
    Guarded,
    Hedge,
    HedgeBudget,
    HedgeStats,
    LatencyHistogram,
    Piped,
    RateLimited,
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
    "AdaptiveTimeout",
    "AdaptiveLimiter",
    "AllFailedError",
    "AttemptTimeoutError",
    "Backoff",
    "BreakerMetrics",
    "BreakerPermit",
    "BreakerTransition",
    "BudgetExhaustedError",
    "Bulkhead",
    "BulkheadFullError",
    "BulkheadPermit",
    "Bulkheaded",
    "CircuitBreaker",
    "CircuitOpenError",
    "ConfigError",
    "DeadlineExceededError",
    "Guarded",
    "Hedge",
    "HedgeBudget",
    "HedgeStats",
    "KeyedRateLimiter",
    "LatencyHistogram",
    "Piped",
    "Pipeline",
    "NoTargetError",
    "LimitExceededError",
    "LimitPermit",
    "Limited",
    "QuorumError",
    "RateLimited",
    "RateLimitedError",
    "RateLimiter",
    "Retry",
    "RetryBudget",
    "RetryError",
    "RetryEvent",
    "Retrying",
    "RollingHistogram",
    "TailguardError",
    "Throttle",
    "ThrottledError",
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
