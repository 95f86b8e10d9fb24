"""Type stubs for ``tailguard._native``, the Rust half of tailguard."""

import datetime
from typing import (
    Any,
    Awaitable,
    Callable,
    Generic,
    Iterator,
    Literal,
    Optional,
    Tuple,
    Type,
    TypeVar,
    Union,
    final,
)

from typing_extensions import disjoint_base

_Seconds = Union[int, float, datetime.timedelta]
_Jitter = Optional[Literal["none", "full", "equal", "decorrelated"]]
_On = Union[
    Type[BaseException],
    Tuple[Type[BaseException], ...],
    Callable[[BaseException], Union[bool, float, None]],
]
_R = TypeVar("_R")

__version__: str
__all__ = [
    "Backoff",
    "BackoffIterator",
    "BreakerMetrics",
    "BreakerPermit",
    "BreakerTransition",
    "CircuitBreaker",
    "Guarded",
    "Hedge",
    "HedgeBudget",
    "HedgeStats",
    "LatencyHistogram",
    "ManualClock",
    "Retry",
    "RetryBudget",
    "RetryEvent",
    "RetryRun",
    "Retrying",
    "RollingHistogram",
    "__version__",
    "is_testing",
    "set_testing",
]

def set_testing(enabled: bool, /) -> bool:
    """Turns testing mode (every backoff sleep is zero) on or off; returns the previous setting."""

def is_testing() -> bool:
    """Whether testing mode is on."""

@final
class ManualClock:
    """A clock that moves only when told to; pass it as ``clock=``."""

    def __new__(cls, start: Optional[float] = ...) -> ManualClock: ...
    def now(self) -> float: ...
    def advance(self, seconds: _Seconds) -> None: ...

@final
class Backoff:
    """Retry delays in seconds: constant, linear or exponential, capped, jittered, seedable."""

    @staticmethod
    def constant(
        delay: _Seconds,
        *,
        max_retries: Optional[int] = None,
        jitter: _Jitter = ...,
        seed: Optional[int] = None,
    ) -> Backoff: ...
    @staticmethod
    def linear(
        base: _Seconds,
        step: _Seconds,
        *,
        max_delay: Optional[_Seconds] = None,
        max_retries: Optional[int] = None,
        jitter: _Jitter = ...,
        seed: Optional[int] = None,
    ) -> Backoff: ...
    @staticmethod
    def exponential(
        base: _Seconds,
        *,
        factor: Optional[float] = ...,
        max_delay: Optional[_Seconds] = None,
        max_retries: Optional[int] = None,
        jitter: _Jitter = ...,
        seed: Optional[int] = None,
    ) -> Backoff: ...
    @staticmethod
    def default() -> Backoff: ...
    @property
    def kind(self) -> Literal["constant", "linear", "exponential"]: ...
    @property
    def base(self) -> float: ...
    @property
    def step(self) -> float: ...
    @property
    def factor(self) -> float: ...
    @property
    def max_delay(self) -> Optional[float]: ...
    @property
    def max_retries(self) -> Optional[int]: ...
    @property
    def jitter(self) -> Literal["none", "full", "equal", "decorrelated"]: ...
    @property
    def seed(self) -> Optional[int]: ...
    def take(self, n: int) -> list[float]: ...
    def __iter__(self) -> BackoffIterator: ...

@final
class BackoffIterator(Iterator[float]):
    def __iter__(self) -> BackoffIterator: ...
    def __next__(self) -> float: ...
    def __length_hint__(self) -> int: ...

@final
class RetryBudget:
    """Retries limited to ``ratio`` of calls over a sliding window, plus a floor per second."""

    def __new__(
        cls,
        ratio: Optional[float] = ...,
        *,
        min_per_second: Optional[int] = ...,
        window: Optional[_Seconds] = ...,
        clock: Optional[ManualClock] = None,
    ) -> RetryBudget: ...
    @property
    def ratio(self) -> float: ...
    @property
    def min_per_second(self) -> int: ...
    @property
    def window(self) -> float: ...
    def deposit(self) -> None: ...
    def try_withdraw(self) -> bool: ...
    def available(self) -> int: ...

@final
class RetryEvent:
    """What an ``on_retry`` hook receives before each retry."""

    @property
    def attempt(self) -> int: ...
    @property
    def delay(self) -> float: ...
    @property
    def elapsed(self) -> float: ...
    @property
    def exception(self) -> BaseException: ...

@final
class Retry:
    """A retry policy; call it on a function (sync or ``async def``) to decorate it."""

    def __new__(
        cls,
        *,
        on: Optional[_On] = None,
        attempts: Optional[int] = None,
        deadline: Optional[_Seconds] = None,
        timeout: Optional[_Seconds] = None,
        backoff: Optional[Backoff] = None,
        budget: Optional[RetryBudget] = None,
        on_retry: Optional[Callable[[RetryEvent], object]] = None,
        retry_on_timeout: Optional[bool] = None,
        clock: Optional[ManualClock] = None,
    ) -> Retry: ...
    def __call__(self, func: _F) -> _F: ...
    def call(self, func: Callable[..., _R], /, *args: Any, **kwargs: Any) -> _R: ...
    @property
    def on(self) -> _On: ...
    @property
    def attempts(self) -> int: ...
    @property
    def deadline(self) -> Optional[float]: ...
    @property
    def timeout(self) -> Optional[float]: ...
    @property
    def backoff(self) -> Backoff: ...
    @property
    def budget(self) -> Optional[RetryBudget]: ...
    @property
    def clock(self) -> Optional[ManualClock]: ...
    @property
    def _needs_run(self) -> bool: ...
    @property
    def _now(self) -> Callable[[], float]: ...
    def _start(self) -> RetryRun: ...
    def _after_first_failure(self, started: float) -> RetryRun: ...

_F = TypeVar("_F", bound=Callable[..., Any])

@final
class Retrying(Generic[_R]):
    """A sync function wrapped by a :class:`Retry` policy."""

    def __call__(self, *args: Any, **kwargs: Any) -> _R: ...
    def __get__(self, instance: object, owner: Optional[type] = None, /) -> Any: ...
    @property
    def retry(self) -> Retry: ...

@final
class RetryRun:
    """One async call's retry state (internal)."""

    def begin(self) -> Optional[float]: ...
    def failed(
        self, exc: BaseException, timed_out: bool = False
    ) -> Union[float, tuple[float, Awaitable[object]], None]: ...
    def close(self) -> None: ...
    @property
    def attempts(self) -> int: ...

@final
class LatencyHistogram:
    """Lock-free latency histogram; percentiles within 1/128 relative error."""

    def __new__(cls) -> LatencyHistogram: ...
    def record(self, seconds: _Seconds) -> None: ...
    def record_ns(self, nanos: int) -> None: ...
    def quantile(self, p: float) -> Optional[float]: ...
    @property
    def count(self) -> int: ...
    @property
    def min(self) -> Optional[float]: ...
    @property
    def max(self) -> Optional[float]: ...
    @property
    def mean(self) -> Optional[float]: ...
    def merge(self, other: LatencyHistogram) -> None: ...
    def reset(self) -> None: ...
    def __len__(self) -> int: ...

@final
class RollingHistogram:
    """Percentiles over a sliding window of the recent past."""

    def __new__(
        cls,
        window: Optional[_Seconds] = ...,
        *,
        slots: Optional[int] = ...,
        clock: Optional[ManualClock] = None,
    ) -> RollingHistogram: ...
    @property
    def window(self) -> float: ...
    def record(self, seconds: _Seconds) -> None: ...
    def quantile(self, p: float) -> Optional[float]: ...
    @property
    def count(self) -> int: ...
    def reset(self) -> None: ...

@final
class HedgeBudget:
    """A cap on hedging's extra load: hedges <= ratio x primaries; shareable."""

    def __new__(cls, ratio: float, *, max_burst: Optional[int] = ...) -> HedgeBudget: ...
    @property
    def ratio(self) -> float: ...
    @property
    def max_burst(self) -> int: ...
    def available(self) -> int: ...
    def deposit(self) -> None: ...
    def try_withdraw(self) -> bool: ...

@final
class HedgeStats:
    @property
    def primaries(self) -> int: ...
    @property
    def hedges_sent(self) -> int: ...
    @property
    def hedges_won(self) -> int: ...
    @property
    def budget_refusals(self) -> int: ...
    @property
    def extra_load(self) -> float: ...

@final
class Hedge:
    """A hedging policy: fixed or adaptive (``"p95"``) delay, attempt cap, budget."""

    def __new__(
        cls,
        delay: Union[_Seconds, str, None] = ...,
        *,
        max_attempts: Optional[int] = ...,
        budget: Union[float, HedgeBudget, Literal["unlimited"], None] = ...,
        min_samples: Optional[int] = ...,
        delay_floor: Optional[_Seconds] = ...,
        delay_ceiling: Optional[_Seconds] = ...,
        window: Optional[_Seconds] = ...,
        window_slots: Optional[int] = ...,
        clock: Optional[ManualClock] = None,
    ) -> Hedge: ...
    @property
    def delay(self) -> Union[float, str, datetime.timedelta]: ...
    @property
    def max_attempts(self) -> int: ...
    def current_delay(self) -> Optional[float]: ...
    def stats(self) -> HedgeStats: ...
    def latency_quantile(self, p: float) -> Optional[float]: ...
    def run(self, factory: Callable[[], Awaitable[_R]]) -> Awaitable[_R]: ...
    def __call__(self, func: _F) -> _F: ...
    def _begin(self) -> Optional[float]: ...
    def _try_hedge(self) -> bool: ...
    def _hedge_won(self) -> None: ...
    def _primary_done(self, seconds: float) -> None: ...

_BreakerOn = Union[
    Type[BaseException],
    Tuple[Type[BaseException], ...],
    Callable[[BaseException], bool],
]

@final
class BreakerPermit:
    """Permission for one call through a breaker; report it once."""

    def success(self) -> None: ...
    def failure(self) -> None: ...
    def record(self, exc: Optional[BaseException] = None) -> None: ...
    def release(self) -> None: ...
    @property
    def is_probe(self) -> bool: ...

@final
class BreakerMetrics:
    @property
    def state(self) -> str: ...
    @property
    def calls(self) -> int: ...
    @property
    def failures(self) -> int: ...
    @property
    def slow_calls(self) -> int: ...
    @property
    def failure_rate(self) -> Optional[float]: ...
    @property
    def slow_call_rate(self) -> Optional[float]: ...
    @property
    def consecutive_failures(self) -> int: ...
    @property
    def rejections(self) -> int: ...
    @property
    def probes_in_flight(self) -> int: ...
    @property
    def in_state_for(self) -> float: ...
    @property
    def open_for(self) -> Optional[float]: ...

@final
class BreakerTransition:
    @property
    def from_state(self) -> str: ...
    @property
    def to_state(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def generation(self) -> int: ...

@disjoint_base
class CircuitBreaker:
    """The native circuit breaker; use ``tailguard.CircuitBreaker``, which adds the context
    managers."""

    def __new__(
        cls,
        *,
        failure_rate: Optional[float] = ...,
        window: Optional[int] = ...,
        time_window: Optional[_Seconds] = ...,
        time_window_buckets: Optional[int] = ...,
        minimum_calls: Optional[int] = ...,
        consecutive_failures: Optional[int] = ...,
        open_duration: Union[_Seconds, Backoff, None] = ...,
        half_open_calls: Optional[int] = ...,
        half_open_success_rate: Optional[float] = ...,
        half_open_timeout: Optional[_Seconds] = ...,
        slow_call_duration: Optional[_Seconds] = ...,
        slow_call_rate: Optional[float] = ...,
        on: Optional[_BreakerOn] = ...,
        on_transition: Optional[Callable[[BreakerTransition], object]] = ...,
        stripes: Optional[int] = ...,
        clock: Optional[ManualClock] = ...,
    ) -> CircuitBreaker: ...
    def __call__(self, func: _F) -> _F: ...
    def call(self, func: Callable[..., _R], /, *args: Any, **kwargs: Any) -> _R: ...
    def acquire(self) -> BreakerPermit: ...
    @property
    def state(self) -> str:
        """"closed", "open", "half_open", "forced_open" or "disabled"."""
    def metrics(self) -> BreakerMetrics: ...
    def force_open(self) -> None: ...
    def disable(self) -> None: ...
    def reset(self) -> None: ...
    def add_listener(self, listener: Callable[[BreakerTransition], object]) -> None: ...
    def remove_listener(self, listener: Callable[[BreakerTransition], object]) -> bool: ...
    @property
    def on(self) -> _BreakerOn: ...

@final
class Guarded(Generic[_R]):
    """A sync function guarded by a :class:`CircuitBreaker`."""

    def __call__(self, *args: Any, **kwargs: Any) -> _R: ...
    def __get__(self, instance: object, owner: Optional[type] = None, /) -> Any: ...
    @property
    def breaker(self) -> CircuitBreaker: ...
