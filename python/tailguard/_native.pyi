"""Type stubs for ``tailguard._native``, the Rust half of tailguard."""

import datetime
from typing import Any, Callable, Generic, Iterator, Literal, Optional, Tuple, Type, TypeVar, Union

_Seconds = Union[int, float, datetime.timedelta]
_Jitter = Optional[Literal["none", "full", "equal", "decorrelated"]]
_On = Union[
    Type[BaseException],
    Tuple[Type[BaseException], ...],
    Callable[[BaseException], Union[bool, float, None]],
]
_R = TypeVar("_R")

__version__: str

def set_testing(enabled: bool, /) -> bool:
    """Turns testing mode (every backoff sleep is zero) on or off; returns the previous setting."""

def is_testing() -> bool:
    """Whether testing mode is on."""

class ManualClock:
    """A clock that moves only when told to; pass it as ``clock=``."""

    def __init__(self, start: Optional[float] = ...) -> None: ...
    def now(self) -> float: ...
    def advance(self, seconds: _Seconds) -> None: ...

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

class BackoffIterator(Iterator[float]):
    def __iter__(self) -> BackoffIterator: ...
    def __next__(self) -> float: ...
    def __length_hint__(self) -> int: ...

class RetryBudget:
    """Retries limited to ``ratio`` of calls over a sliding window, plus a floor per second."""

    def __init__(
        self,
        ratio: Optional[float] = ...,
        *,
        min_per_second: Optional[int] = ...,
        window: Optional[_Seconds] = ...,
        clock: Optional[ManualClock] = None,
    ) -> None: ...
    @property
    def ratio(self) -> float: ...
    @property
    def min_per_second(self) -> int: ...
    @property
    def window(self) -> float: ...
    def deposit(self) -> None: ...
    def try_withdraw(self) -> bool: ...
    def available(self) -> int: ...

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

class Retry:
    """A retry policy; call it on a function (sync or ``async def``) to decorate it."""

    def __init__(
        self,
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
    ) -> None: ...
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
    def _start(self) -> RetryRun: ...
    def _after_first_failure(self) -> RetryRun: ...

_F = TypeVar("_F", bound=Callable[..., Any])

class Retrying(Generic[_R]):
    """A sync function wrapped by a :class:`Retry` policy."""

    def __call__(self, *args: Any, **kwargs: Any) -> _R: ...
    def __get__(self, instance: object, owner: Optional[type] = None) -> Any: ...
    @property
    def retry(self) -> Retry: ...

class RetryRun:
    """One async call's retry state (internal)."""

    def begin(self) -> Optional[float]: ...
    def failed(self, exc: BaseException, timed_out: bool = False) -> Optional[float]: ...
    @property
    def attempts(self) -> int: ...
