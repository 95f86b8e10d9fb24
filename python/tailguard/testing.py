"""Helpers for testing code that uses tailguard.

- :func:`set_testing` turns testing mode on or off: every backoff sleep is zero, so tests of
  retrying code run at full speed while still making every attempt. Call it, or use it as a
  context manager (``with set_testing(True): ...``), which restores the previous setting on exit.
- :class:`ManualClock` is a clock that moves only when told to. Pass it as ``clock=`` to a retry
  policy, a :class:`~tailguard.RetryBudget`, a circuit breaker or a histogram; a retry loop on it
  advances the clock instead of sleeping.
"""

from __future__ import annotations

import contextlib
import warnings
from types import TracebackType
from typing import ContextManager, Iterator, Optional, Type

from tailguard._native import ManualClock, _set_testing, is_testing

__all__ = ["ManualClock", "is_testing", "set_testing", "zero_sleeps"]


class _RestoreTesting:
    """What :func:`set_testing` returns: the setting is already changed; used as a context
    manager, it puts back the setting it replaced when the block exits (also on an exception)."""

    __slots__ = ("previous",)

    def __init__(self, previous: bool) -> None:
        #: The setting before the call.
        self.previous = previous

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        """Restores the setting that :func:`set_testing` replaced."""
        _set_testing(self.previous)

    def __repr__(self) -> str:
        return f"<tailguard.testing.set_testing: previously {self.previous}>"


def set_testing(enabled: bool, /) -> _RestoreTesting:
    """Turns testing mode (every backoff sleep is zero) on or off, at once.

    As a plain call, the setting stays until changed again. As a context manager, the previous
    setting is restored when the block exits, whether or not it raised::

        with tailguard.testing.set_testing(True):
            assert flaky_call() == "ok"  # every retry at once

    The returned object's ``previous`` is the setting before the call.
    """
    if not isinstance(enabled, bool):
        raise TypeError(f"`enabled` must be a bool, got {type(enabled).__name__}")
    return _RestoreTesting(_set_testing(enabled))


def zero_sleeps() -> ContextManager[None]:
    """Deprecated since ``set_testing`` became a context manager: use
    ``with set_testing(True):``, which this now is.

    Within the block, retry loops do not sleep between attempts; the previous setting is restored
    after.
    """
    warnings.warn(
        "tailguard.testing.zero_sleeps() is deprecated; use "
        "`with tailguard.testing.set_testing(True):`",
        DeprecationWarning,
        stacklevel=2,
    )
    return _zero_sleeps()


@contextlib.contextmanager
def _zero_sleeps() -> Iterator[None]:
    with set_testing(True):
        yield
