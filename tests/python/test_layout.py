"""Each public function lives beside the loop it drives, and the package still exports it under
the same name and signature (issue 16, the Python layer)."""

from __future__ import annotations

import inspect

import tailguard as tg
from tailguard import _fanout, _hedge, _retry


def test_retry_and_hedge_live_beside_their_loops() -> None:
    assert tg.retry is _retry.retry and tg.retry.__module__ == "tailguard._retry"
    assert tg.hedge is _hedge.hedge and tg.hedge.__module__ == "tailguard._hedge"
    assert not hasattr(_fanout, "hedge")
    assert tg.RetryOn is _retry.RetryOn


def test_the_public_signatures_are_unchanged() -> None:
    assert str(inspect.signature(tg.retry)) == (
        "(func: 'Optional[Callable[..., Any]]' = None, /, **settings: 'Any') -> 'Any'"
    )
    # `targets` and `healthy` (replica-aware hedging) were added after the others.
    assert str(inspect.signature(tg.hedge)) == (
        "(factory: 'Callable[..., Awaitable[T]]', *, delay: 'Union[_Seconds, str, None]' = None, "
        "max_attempts: 'Optional[int]' = None, budget: \"Union[_Number, HedgeBudget, "
        "Literal['unlimited'], None]\" = None, policy: 'Optional[Hedge]' = None, "
        "targets: 'Optional[Sequence[Any]]' = None, "
        "healthy: 'Optional[Callable[[Any], bool]]' = None) -> 'T'"
    )
    assert {"retry", "hedge", "first_ok", "quorum", "scatter_gather"} <= set(tg.__all__)
