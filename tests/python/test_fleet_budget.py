"""`tailguard.fleet` shares retry budgets through a real redis-server, with the schema of
`fleet/SCHEMA.md`: the fleet's balance is divided equally at every sync, the fleet holds its
ratio within the documented overshoot, and an outage gives each budget its own again. The
budgets read a ManualClock (their windows do not slide), so their balances are exact; the fleet
syncs in real time."""

from __future__ import annotations

import time
from typing import Iterator, List

import pytest

import tailguard as tg
from fleet_redis import LocalRedis, eventually, local_redis
from tailguard.fleet import Fleet
from tailguard.fleet._budget import decode, encode, merge
from tailguard.testing import ManualClock

INTERVAL = 0.05
KEY = "tailguard:test:budget:payments"


@pytest.fixture
def server() -> Iterator[LocalRedis]:
    yield from local_redis()


@pytest.fixture
def fleets() -> Iterator[List[Fleet]]:
    made: List[Fleet] = []
    yield made
    for fleet in made:
        fleet.close()


def fleet(server: LocalRedis, made: List[Fleet], instance: str) -> Fleet:
    f = Fleet(server.url, namespace="test", instance_id=instance, interval=INTERVAL)
    made.append(f)
    return f


def budget(clock: ManualClock, deposits: int = 0) -> tg.RetryBudget:
    b = tg.RetryBudget(0.1, min_per_second=0, window=10, clock=clock)
    for _ in range(deposits):
        b.deposit()
    return b


def test_values_and_the_merge_rule() -> None:
    assert encode(1_764_000_000_123, -2500) == "1:1764000000123:-2500"
    assert decode("1:1764000000123:-2500") == (1_764_000_000_123, -2500)
    too_big = "1:1:9223372036854775808"
    for foreign in ["", "2:1:5", "1:1", "1:1:2:3", "1:-1:5", "1:x:5", too_big, "1:1:+2", "1:+1:2"]:
        assert decode(foreign) is None, foreign
    # F = 10000 - 3000 over 2 instances: 3500 each, so a remote of 3500 - 10000.
    assert merge(10_000, {"me": "junk", "b": "1:1000:-3000"}, "me", 1000, 3000) == (
        -6500,
        1,
        [],
    )
    # Rounded towards minus infinity: F = -3 over 2 is -2 each.
    assert merge(0, {"b": "1:1000:-3"}, "me", 1000, 3000) == (-2, 1, [])
    # Stale and unreadable peers do not count and are removed.
    assert merge(7, {"old": "1:1:500", "bad": "1:x"}, "me", 10_000, 3000) == (0, 0, ["old", "bad"])
    # So is one dated beyond stale_after ahead: it would never age out.
    assert merge(7, {"ahead": "1:13001:500"}, "me", 10_000, 3000) == (0, 0, ["ahead"])


def test_an_instance_without_calls_retries_from_the_fleets_surplus(
    server: LocalRedis, fleets: List[Fleet]
) -> None:
    clock = ManualClock()
    a, b = budget(clock, deposits=100), budget(clock)  # 10 retries' worth, and none
    assert (a.available(), b.available()) == (10, 0)
    fa, fb = fleet(server, fleets, "a"), fleet(server, fleets, "b")
    fa.share(a, "payments")
    fb.share(b, "payments")
    assert eventually(lambda: (a.available(), b.available()) == (5, 5)), (
        a.available(),
        b.available(),
    )
    assert fa.status().budgets == 1 and fa.status().peers == 1
    # What each publishes is its own balance only, never what it merged.
    plain = server.client()
    raw = plain.hgetall(KEY)
    assert isinstance(raw, dict)
    values = {str(k): decode(str(v)) for k, v in raw.items()}
    assert {k: v[1] for k, v in values.items() if v is not None} == {"a": 10_000, "b": 0}


def test_the_fleet_holds_its_budget_within_one_rounds_overshoot(
    server: LocalRedis, fleets: List[Fleet]
) -> None:
    clock = ManualClock()
    a, b = budget(clock, deposits=100), budget(clock)
    fa, fb = fleet(server, fleets, "a"), fleet(server, fleets, "b")
    fa.share(a, "payments")
    fb.share(b, "payments")
    assert eventually(lambda: b.available() == 5)
    granted = {"a": 0, "b": 0}
    for _ in range(16):  # rounds: each instance asks once, then a few syncs pass
        granted["a"] += a.try_withdraw()
        granted["b"] += b.try_withdraw()
        time.sleep(4 * INTERVAL)
    total = granted["a"] + granted["b"]
    # The fleet's 10 retries, give or take the one round in flight at a sync (the documented
    # overshoot: what the fleet retries in about an interval), and at least 9 (the last
    # retry's worth is split in halves no instance can spend).
    assert 9 <= total <= 10 + 2, granted
    assert granted["b"] >= 3, granted  # alone, b would have had none


def test_redis_down_gives_each_budget_its_own_and_sharing_returns_with_redis(
    server: LocalRedis, fleets: List[Fleet]
) -> None:
    clock = ManualClock()
    a, b = budget(clock, deposits=100), budget(clock)
    fa, fb = fleet(server, fleets, "a"), fleet(server, fleets, "b")
    fa.share(a, "payments")
    fb.share(b, "payments")
    assert eventually(lambda: (a.available(), b.available()) == (5, 5))
    server.stop()
    # After stale_after without a sync: local, each budget on its own calls alone.
    assert eventually(lambda: (a.available(), b.available()) == (10, 0)), (
        a.available(),
        b.available(),
    )
    assert fa.status().mode == "local" and fb.status().mode == "local"
    server.restart()
    assert eventually(lambda: (a.available(), b.available()) == (5, 5))
    assert fa.status().mode == "shared"


def test_a_peers_value_in_the_schemas_format_counts(
    server: LocalRedis, fleets: List[Fleet]
) -> None:
    """A value written as the Rust fleet writes it (signed units) is merged, and ours reads the
    same way."""
    clock = ManualClock()
    a = budget(clock, deposits=100)
    fa = fleet(server, fleets, "py")
    fa.share(a, "payments")
    plain = server.client()
    assert eventually(lambda: decode(str(plain.hget(KEY, "py"))) is not None)

    def peer_owes() -> bool:
        plain.hset(KEY, "rust-1", encode(time.time_ns() // 1_000_000, -3000))
        return a.available() == 3  # (10000 - 3000) / 2 = 3.5 retries each

    assert eventually(peer_owes), a.available()
    # Closing leaves the budget its own again and removes our value.
    fa.close()
    assert a.available() == 10
    assert plain.hget(KEY, "py") is None
