"""Sharing one retry budget: the value this instance publishes and how the fleet's are merged,
as ``fleet/SCHEMA.md`` (the Rust crate ``tailguard-fleet``) lays down.

The hash is ``tailguard:{namespace}:budget:{name}``; each instance's value is
``1:{at_ms}:{units}``, ``units`` its own balance in thousandths of a retry (its calls' deposits,
``ratio × 1000`` each, minus ``1000`` per retry granted from its window; signed). A reader sums
its own and the fresh peers' units into ``F``, counts ``n`` instances, and sets its budget's
remote balance to ``floor(F / n) - own``: the fleet's balance is divided equally at every sync,
and each instance decides locally, lock-free, until the next.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, List, Mapping, Optional, Tuple

from tailguard.fleet._ledger import DIGITS, VERSION, is_fresh
from tailguard.fleet._sync import Counters, Settings, stage_value, text_fields

if TYPE_CHECKING:
    from redis.client import Pipeline

    from tailguard._native import RetryBudget

_I64 = 1 << 63
_SIGNED = re.compile(r"-?[0-9]+\Z")  # as the Rust reader: no leading `+`


def encode(at_ms: int, units: int) -> str:
    """``1:{at_ms}:{units}``."""
    return f"{VERSION}:{at_ms}:{units}"


def decode(value: Optional[str]) -> Optional[Tuple[int, int]]:
    """``(at_ms, units)``, or ``None`` for a value of another version or shape."""
    if value is None:
        return None
    parts = value.split(":")
    if len(parts) != 3 or parts[0] != VERSION:
        return None
    if not DIGITS.match(parts[1]) or not _SIGNED.match(parts[2]):
        return None
    at_ms, units = int(parts[1]), int(parts[2])
    if at_ms >= 1 << 64 or not -_I64 <= units < _I64:
        return None
    return at_ms, units


def merge(
    own: int, fields: Mapping[str, Optional[str]], me: str, now_ms: int, stale_after_ms: int
) -> Tuple[int, int, List[str]]:
    """``(remote, peers, stale)``: the remote balance to set (``floor(F / n) - own``), how many
    fresh peers there are, and the fields to remove (stale or unreadable)."""
    total, peers, stale = own, 0, []
    for peer, value in fields.items():
        if peer == me:
            continue
        entry = decode(value)
        if entry is None or not is_fresh(entry[0], now_ms, stale_after_ms):
            stale.append(peer)
            continue
        peers += 1
        total += entry[1]
    remote = total // (1 + peers) - own
    return max(-_I64, min(remote, _I64 - 1)), peers, stale


class BudgetSlot:
    """One shared retry budget: ``HSET`` its own balance, ``PEXPIRE``, ``HGETALL``; then set the
    remote balance; after ``stale_after`` without a sync, the remote balance goes back to 0."""

    def __init__(self, budget: RetryBudget, name: str, key: str) -> None:
        self.budget = budget
        self.name = name
        self.key = key
        self._own = 0
        self._last_ok_ms: Optional[int] = None
        """When the last sync reached Redis (wall clock), while a remote balance is set."""

    def stage(self, pipe: Pipeline, me: str, now_ms: int, ttl_ms: int) -> int:
        self._own = self.budget._fleet_balance()
        return stage_value(pipe, self.key, me, encode(now_ms, self._own), ttl_ms)

    def settle(
        self,
        replies: List[Any],
        settings: Settings,
        counters: Counters,
        now_ms: int,
        after: Pipeline,
    ) -> Tuple[bool, int]:
        remote, peers, stale = merge(
            self._own,
            text_fields(replies[2]),
            settings.instance_id,
            now_ms,
            settings.stale_after_ms,
        )
        self.budget._fleet_set_remote(remote)
        self._last_ok_ms = now_ms
        if stale:
            after.hdel(self.key, *stale)
        return bool(stale), peers

    def failed(self, now_ms: int, stale_after_ms: int) -> None:
        """A sync failed: once no sync has reached Redis for ``stale_after``, the budget is
        its own again (the others' balances are too old to trust)."""
        if self._last_ok_ms is not None and now_ms - self._last_ok_ms > stale_after_ms:
            self.budget._fleet_set_remote(0)
            self._last_ok_ms = None

    def left(self) -> None:
        """The fleet stopped: the budget is its own again."""
        self.budget._fleet_set_remote(0)
