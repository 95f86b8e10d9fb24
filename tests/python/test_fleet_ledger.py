"""The sans-IO half of `tailguard.fleet`'s breaker sharing (`_ledger.py`, a port of the Rust
fleet's `entry.rs` and `ledger.rs`), on native breakers driven by a ManualClock: no Redis, no
real time. The same cases as the Rust crate's tests, so both languages judge a hash alike."""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import pytest

import tailguard as tg
from tailguard.testing import ManualClock

pytest.importorskip("redis", reason="tailguard.fleet needs redis-py: pip install tailguard[redis]")

from tailguard.fleet._ledger import (  # noqa: E402 - after the skip
    FLEET_RATE,
    PEER_OPENED,
    PEER_SAW_RATE,
    Entry,
    Ledger,
    Verdict,
    View,
)

STALE = 3_000


def machine(clock: ManualClock) -> tg.CircuitBreaker:
    return tg.CircuitBreaker(
        window=10,
        minimum_calls=10,
        failure_rate=0.5,
        open_duration=10,
        half_open_calls=1,
        stripes=1,
        clock=clock,
    )


def calls(b: tg.CircuitBreaker, n: int, failure: bool) -> None:
    for _ in range(n):
        permit = b.acquire()
        if failure:
            permit.failure()
        else:
            permit.success()


def view(b: tg.CircuitBreaker, instances: int = 1, ahead: float = 0.1) -> View:
    """The breaker's view as the fleet's thread reads it (interval ``ahead``)."""
    return b._fleet_view(instances, ahead)


def entry(at_ms: int, calls: int, failures: int, opened: int, by_rate: bool = False) -> Entry:
    return Entry(at_ms, calls, failures, 0, opened, by_rate)


def fields(entries: List[Tuple[str, Entry]]) -> Dict[str, Optional[str]]:
    return {peer: e.encode() for peer, e in entries}


def judge(
    ledger: Ledger,
    b: tg.CircuitBreaker,
    h: Dict[str, Optional[str]],
    now_ms: int,
    follow_open: bool = True,
) -> Verdict:
    return ledger.judge(view(b), h, "me", now_ms, STALE, follow_open, b._fleet_crosses)


def test_entries_round_trip_and_foreign_values_are_refused() -> None:
    e = Entry(1_764_000_000_123, 100, 7, 3, 0, True)
    assert e.encode() == "1:1764000000123:100:7:3:0:1"
    assert Entry.decode(e.encode()) == e
    foreign = ["", "2:1:2:3:4:5", "1:1:2:3:4", "1:1:2:3:4:5:6", "1:x:2:3:4:5", "1:-1:2:3:4:5"]
    foreign += ["1:+1:2:3:4:5:0", "1:1:2:3:4:5:01"]  # no leading `+` (SCHEMA.md); 0 or 1
    for value in foreign:
        assert Entry.decode(value) is None, value


def test_the_fleets_failure_rate_trips_where_no_instance_alone_would() -> None:
    b = machine(ManualClock())
    calls(b, 2, failure=False)
    calls(b, 4, failure=True)  # 4 of 6: under minimum_calls
    assert b.state == "closed"
    ledger = Ledger()
    quiet = fields([("b", entry(1_000, 6, 1, 0))])  # 12 calls, 5 failures
    assert judge(ledger, b, quiet, 1_000).trip is None
    bad = fields([("b", entry(1_000, 6, 2, 0))])  # 12 calls, 6 failures
    verdict = judge(ledger, b, bad, 1_000)
    assert (verdict.trip, verdict.peers) == (FLEET_RATE, 1)


def test_huge_counts_from_peers_saturate_instead_of_overflowing() -> None:
    # Values another instance wrote near u64::MAX: the sum must not overflow the native
    # threshold's u64 arguments (OverflowError in the fleet's thread) nor hide the failures.
    b = machine(ManualClock())
    most = (1 << 64) - 1
    h = fields([("a", entry(10_000, most, most, 0)), ("b", entry(10_000, most, most, 0))])
    verdict = judge(Ledger(), b, h, 10_000)
    assert (verdict.trip, verdict.peers) == (FLEET_RATE, 2)


def test_an_entry_from_far_ahead_is_stale_and_removed_not_counted_forever() -> None:
    # All failures, dated a minute (or an eternity) ahead: it would never age out.
    b = machine(ManualClock())
    for at_ms in (70_000, (1 << 64) - 1):
        verdict = judge(Ledger(), b, fields([("ghost", entry(at_ms, 100, 100, 0))]), 10_000)
        assert (verdict.trip, verdict.peers, verdict.stale) == (None, 0, ["ghost"])


def test_stale_and_unreadable_entries_do_not_count_and_are_listed_for_removal() -> None:
    b = machine(ManualClock())
    calls(b, 4, failure=True)
    ledger = Ledger()
    h = fields([("old", entry(1_000, 10, 10, 0)), ("me", entry(5_000, 99, 99, 0))])
    h["junk"] = "v9"
    h["binary"] = None  # a value that is not text
    verdict = judge(ledger, b, h, 1_000 + STALE + 1)
    assert (verdict.trip, verdict.peers) == (None, 0)
    assert sorted(verdict.stale) == ["binary", "junk", "old"]
    # Exactly at the limit, it still counts.
    assert judge(ledger, b, h, 1_000 + STALE).trip == FLEET_RATE


def test_a_peers_opening_trips_once_and_a_new_opening_trips_again() -> None:
    clock = ManualClock()
    b = machine(clock)
    ledger = Ledger()
    h = fields([("b", entry(1_000, 0, 0, 900))])
    assert judge(ledger, b, h, 1_000).trip == PEER_OPENED
    assert b._fleet_trip()
    ledger.tripped = (view(b)[1], PEER_OPENED)
    # Our probe succeeds and closes the breaker; b still shows the same opening: no trip.
    clock.advance(10)
    b.acquire().success()
    assert b.state == "closed"
    h = fields([("b", entry(11_000, 0, 0, 900))])
    assert judge(ledger, b, h, 11_000).trip is None
    # b reopens (its probe failed): a new opening.
    h = fields([("b", entry(12_000, 0, 0, 11_500))])
    assert judge(ledger, b, h, 12_000).trip == PEER_OPENED


def test_openings_seen_while_not_closed_do_not_trip_later() -> None:
    clock = ManualClock()
    b = machine(clock)
    calls(b, 10, failure=True)
    assert b.state == "open"
    ledger = Ledger()
    h = fields([("b", entry(1_000, 0, 0, 900))])
    assert judge(ledger, b, h, 1_000).trip is None
    clock.advance(10)
    b.acquire().success()
    assert judge(ledger, b, h, 1_500).trip is None


def test_following_openings_can_be_switched_off_but_an_opening_on_the_rate_is_followed() -> None:
    b = machine(ManualClock())
    h = fields([("b", entry(1_000, 0, 0, 900))])
    assert judge(Ledger(), b, h, 1_000, follow_open=False).trip is None
    h = fields([("b", entry(1_000, 0, 0, 900, by_rate=True))])
    assert judge(Ledger(), b, h, 1_000, follow_open=False).trip == PEER_SAW_RATE


def test_the_entry_publishes_counts_only_while_closed_and_openings_only_of_its_own() -> None:
    clock = ManualClock()
    b = machine(clock)
    ledger = Ledger()
    calls(b, 3, failure=True)
    e = ledger.entry(view(b), 50_000)
    assert (e.at_ms, e.calls, e.failures, e.opened) == (50_000, 3, 3, 0)
    # Open on its own window, 2 s ago: published with the wall-clock time it opened, the same
    # id on every sync.
    calls(b, 7, failure=True)
    clock.advance(2)
    e = ledger.entry(view(b), 52_000)
    assert (e.calls, e.failures, e.opened) == (0, 0, 50_000)
    clock.advance(1)
    assert ledger.entry(view(b), 53_001).opened == 50_000
    # Tripped by the fleet: not published as an opening.
    b = machine(clock)
    ledger = Ledger()
    assert b._fleet_trip()
    ledger.tripped = (view(b)[1], PEER_OPENED)
    assert ledger.entry(view(b), 50_000).opened == 0
    # Tripped on the fleet's rate: published, marked so, for the others to follow.
    b = machine(clock)
    ledger = Ledger()
    assert b._fleet_trip()
    ledger.tripped = (view(b)[1], FLEET_RATE)
    e = ledger.entry(view(b), 50_000)
    assert (e.opened, e.by_rate) == (50_000, True)


def test_the_share_of_a_count_window_is_its_newest_calls() -> None:
    b = machine(ManualClock())
    calls(b, 3, failure=False)
    calls(b, 3, failure=True)
    state, _, _, published, judged = view(b)
    assert (state, published, judged) == ("closed", (6, 3, 0), (6, 3, 0))
    assert view(b, 2)[3:] == ((5, 3, 0), (5, 3, 0))  # window 10 over 2 instances: newest 5
    assert view(b, 4)[3:] == ((3, 3, 0), (3, 3, 0))


def test_a_time_window_publishes_only_what_stays_within_the_window_until_read() -> None:
    """As the Rust fleet's `fleet_part`: a 1 s window in ten buckets; the others read up to
    100 ms later, so what leaves the window by then is not published (but is judged)."""
    clock = ManualClock()
    b = tg.CircuitBreaker(time_window=1, time_window_buckets=10, minimum_calls=10, clock=clock)
    calls(b, 5, failure=True)
    clock.advance(0.5)
    calls(b, 5, failure=False)
    clock.advance(0.35)  # 850 ms: every call is still in the window 100 ms on
    assert view(b, 3, 0.1)[3:] == ((10, 5, 0), (10, 5, 0))
    clock.advance(0.1)  # 950 ms: the failures leave the window before a reader reads them
    assert view(b, 3, 0.1)[3:] == ((5, 0, 0), (10, 5, 0))
