"""Helpers for testing code that uses tailguard.

- :func:`zero_sleeps` (or :func:`tailguard.set_testing`) makes every backoff sleep zero, so tests
  of retrying code run at full speed while still making every attempt.
- :class:`ManualClock` is a clock that moves only when told to. Pass it as ``clock=`` to a retry
  policy, a :class:`~tailguard.RetryBudget`, a circuit breaker or a histogram; a retry loop on it
  advances the clock instead of sleeping.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from tailguard._native import ManualClock, is_testing, set_testing

__all__ = ["ManualClock", "is_testing", "set_testing", "zero_sleeps"]


@contextlib.contextmanager
def zero_sleeps() -> Iterator[None]:
    """Within the block, retry loops do not sleep between attempts (the previous setting is
    restored after)."""
    previous = set_testing(True)
    try:
        yield
    finally:
        set_testing(previous)
