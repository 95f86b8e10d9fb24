"""The sans-IO half of sharing one breaker: what to publish, and whether the fleet's entries say
to trip. A port of the Rust fleet's ``entry.rs`` and ``ledger.rs`` (crate ``tailguard-fleet``),
field for field, so Python and Rust instances share one fleet: no IO and no clock here.

An entry is the value of this instance's field in the hash ``tailguard:{namespace}:breaker:{name}``:
``1:at_ms:calls:failures:slow:opened:by_rate`` (format version 1; the publisher's wall-clock
milliseconds; the calls, failures and slow calls of its part of the fleet's window; the id of its
own open period, 0 if none; 1 if that opening came from the fleet's failure rate).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Tuple

#: The format's version, the first part of every value.
VERSION = "1"
_U64_MAX = (1 << 64) - 1
#: An unsigned decimal field, as the Rust reader: no leading ``+`` (``fleet/SCHEMA.md``).
DIGITS = re.compile(r"[0-9]+\Z")


def is_fresh(at_ms: int, now_ms: int, stale_after_ms: int) -> bool:
    """Whether a value written at ``at_ms`` still counts at ``now_ms``: at most
    ``stale_after_ms`` old, and no more than that ahead either (a value dated far ahead would
    otherwise never age out)."""
    return abs(now_ms - at_ms) <= stale_after_ms

#: A breaker's ``(calls, failures, slow_calls)``.
Counts = Tuple[int, int, int]

#: ``(state, since, age_ms, published, judged)``, from the native breaker's ``_fleet_view``:
#: ``since`` identifies the current state's period, ``age_ms`` is its age; ``published`` is
#: this instance's part of the fleet's window for the others (a count window's newest
#: ``ceil(window / instances)`` calls; a time window's calls still in it one interval on, when
#: the others read them), ``judged`` its part when it judges (the same for a count window; a
#: time window's whole current window), as the Rust fleet's ``ledger::fleet_part``.
View = Tuple[str, int, int, Counts, Counts]

#: Why the fleet trips a breaker.
FLEET_RATE = "fleet_rate"
PEER_OPENED = "peer_opened"
PEER_SAW_RATE = "peer_saw_rate"

#: The log line's words for each reason (as the Rust fleet's).
WHY_WORDS = {
    FLEET_RATE: "the fleet's failure rate crossed its threshold",
    PEER_OPENED: "another instance opened its breaker",
    PEER_SAW_RATE: "another instance saw the fleet's failure rate cross its threshold",
}


@dataclass(frozen=True)
class Entry:
    """What one instance reports about one breaker."""

    at_ms: int
    calls: int
    failures: int
    slow: int
    opened: int
    by_rate: bool

    def encode(self) -> str:
        """``1:at_ms:calls:failures:slow:opened:by_rate``."""
        return (
            f"{VERSION}:{self.at_ms}:{self.calls}:{self.failures}:{self.slow}:"
            f"{self.opened}:{int(self.by_rate)}"
        )

    @staticmethod
    def decode(value: str) -> Optional[Entry]:
        """The entry, or ``None`` for a value of another version or shape."""
        parts = value.split(":")
        if len(parts) != 7 or parts[0] != VERSION or parts[6] not in ("0", "1"):
            return None
        numbers: List[int] = []
        for part in parts[1:]:
            if not DIGITS.match(part):
                return None
            number = int(part)
            if number > _U64_MAX:
                return None
            numbers.append(number)
        at_ms, calls, failures, slow, opened, by_rate = numbers
        return Entry(at_ms, calls, failures, slow, opened, by_rate == 1)


@dataclass
class Verdict:
    """What a read of the hash decided."""

    trip: Optional[str] = None
    """Trip the local breaker, and why (``FLEET_RATE``, ``PEER_OPENED``, ``PEER_SAW_RATE``)."""
    stale: List[str] = field(default_factory=list)
    """Fields too old (or unreadable) to count: remove them."""
    peers: int = 0
    """Other instances with fresh entries."""


@dataclass
class Ledger:
    """One shared breaker's memory between syncs."""

    tripped: Optional[Tuple[int, str]] = None
    """When the fleet last tripped this breaker (its ``since`` right after), and why."""
    own_open: Optional[Tuple[int, int]] = None
    """This instance's current own open period: its ``since``, and the id published for it."""
    seen_open: Dict[str, int] = field(default_factory=dict)
    """The last opening id seen from each peer, so one opening trips this breaker once."""

    def entry(self, view: View, now_ms: int) -> Entry:
        """What to publish for a breaker showing ``view`` at wall-clock ``now_ms``."""
        state, since, age_ms, (calls, failures, slow), _ = view
        counting = state in ("closed", "disabled")
        if state != "open":
            published, by_rate = False, False
        elif self.tripped is not None and self.tripped[0] == since:
            published = by_rate = self.tripped[1] == FLEET_RATE
        else:
            published, by_rate = True, False
        opened = 0
        if published:
            if self.own_open is not None and self.own_open[0] == since:
                opened = self.own_open[1]
            else:
                opened = max(now_ms - age_ms, 1)
                self.own_open = (since, opened)
        else:
            self.own_open = None
        return Entry(
            at_ms=now_ms,
            calls=calls if counting else 0,
            failures=failures if counting else 0,
            slow=slow if counting else 0,
            opened=opened,
            by_rate=by_rate,
        )

    def judge(
        self,
        view: View,
        fields: Mapping[str, Optional[str]],
        me: str,
        now_ms: int,
        stale_after_ms: int,
        follow_open: bool,
        crosses: Callable[[int, int, int], bool],
    ) -> Verdict:
        """Judges the hash read (field = instance id; a value that is not text is ``None``)
        against the local breaker's ``view``: entries older than ``stale_after_ms`` are ignored
        and listed for removal; ``crosses(calls, failures, slow)`` is the breaker's threshold."""
        verdict = Verdict()
        state, _, _, _, (calls, failures, slow) = view
        new_opening: Optional[str] = None
        for peer, value in fields.items():
            if peer == me:
                continue
            entry = Entry.decode(value) if value is not None else None
            if entry is None:
                verdict.stale.append(peer)
                continue
            if not is_fresh(entry.at_ms, now_ms, stale_after_ms):
                verdict.stale.append(peer)
                self.seen_open.pop(peer, None)
                continue
            verdict.peers += 1
            # Saturating at u64 like the Rust fleet: the threshold takes u64 counts.
            calls = min(calls + entry.calls, _U64_MAX)
            failures = min(failures + entry.failures, _U64_MAX)
            slow = min(slow + entry.slow, _U64_MAX)
            if entry.opened != 0 and self.seen_open.get(peer) != entry.opened:
                if entry.by_rate:
                    new_opening = PEER_SAW_RATE
                elif follow_open and new_opening is None:
                    new_opening = PEER_OPENED
                self.seen_open[peer] = entry.opened
        for peer in [p for p in self.seen_open if p not in fields]:
            del self.seen_open[peer]
        if state != "closed" or verdict.peers == 0:
            return verdict
        verdict.trip = FLEET_RATE if crosses(calls, failures, slow) else new_opening
        return verdict
