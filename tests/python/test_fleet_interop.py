"""A Python instance and a Rust instance (the `tailguard-fleet` crate's examples `breaker_peer`
and `budget_peer`, built here with cargo) share one breaker and one retry budget through a real
redis-server: an opening on either side opens the other, the fleet's failure rate summed across
both languages opens both, and the budget's balance is divided between them."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

import tailguard as tg
from fleet_redis import PATIENCE, LocalRedis, eventually, local_redis
from tailguard.fleet import Fleet
from tailguard.testing import ManualClock

ROOT = Path(__file__).resolve().parents[2]
INTERVAL = 0.05


@pytest.fixture
def server() -> Iterator[LocalRedis]:
    yield from local_redis()


@pytest.fixture(scope="module")
def examples() -> Path:
    """The examples' folder, with both built (quick when `cargo test` already built them)."""
    cargo = shutil.which("cargo")
    if cargo is None:
        if os.environ.get("TAILGUARD_REQUIRE_REDIS"):
            pytest.fail("TAILGUARD_REQUIRE_REDIS is set, but there is no cargo to build the peer")
        pytest.skip("skipped: no cargo to build the Rust peer (tailguard-fleet's breaker_peer)")
    subprocess.run(
        [cargo, "build", "--quiet", "--locked", "-p", "tailguard-fleet"]
        + ["--example", "breaker_peer", "--example", "budget_peer"],
        cwd=ROOT,
        check=True,
        timeout=900,
    )
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return target / "debug" / "examples"


@pytest.fixture
def peer_binary(examples: Path) -> Path:
    return examples / "breaker_peer"


class RustProcess:
    """A Rust example instance, driven line by line over its stdin."""

    def __init__(self, binary: Path, url: str, instance: str, *extra: str) -> None:
        self.process = subprocess.Popen(
            [str(binary), url, "test", instance, str(int(INTERVAL * 1000)), *extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self, command: str, reply: str) -> List[str]:
        """The words of the answer to `command` after its first, which must be `reply`."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        words = self.process.stdout.readline().split()
        assert words and words[0] == reply, f"the peer answered {words!r}"
        return words[1:]

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                assert self.process.stdin is not None
                self.process.stdin.write("quit\n")
                self.process.stdin.close()
                self.process.wait(timeout=PATIENCE)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()


class RustPeer(RustProcess):
    """The Rust instance sharing the breaker `dependency`."""

    def send(self, command: str) -> Tuple[str, str, int, int]:
        """`(state, mode, syncs, fleet_trips)` after the command."""
        state, mode, syncs, trips = self.ask(command, "state")
        return state, mode, int(syncs), int(trips)


@pytest.fixture
def peers(peer_binary: Path) -> Iterator[List[RustPeer]]:
    made: List[RustPeer] = []
    yield made
    for peer in made:
        peer.close()


def setup(
    server: LocalRedis, binary: Path, made: List[RustPeer], time_window: bool = False
) -> Tuple[Fleet, tg.CircuitBreaker, RustPeer]:
    fleet = Fleet(server.url, namespace="test", instance_id="py", interval=INTERVAL)
    if time_window:
        breaker = tg.CircuitBreaker(
            time_window=60, time_window_buckets=10, minimum_calls=10, failure_rate=0.5,
            open_duration=60,
        )
    else:
        breaker = tg.CircuitBreaker(window=20, minimum_calls=10, failure_rate=0.5, open_duration=60)
    fleet.share(breaker, "dependency")
    rust = RustPeer(binary, server.url, "rust", *(["time"] if time_window else []))
    made.append(rust)

    def both_shared() -> bool:
        _, mode, syncs, _ = rust.send("state")
        return mode == "shared" and syncs >= 1 and fleet.status().peers == 1

    assert eventually(both_shared), (rust.send("state"), fleet.status())
    return fleet, breaker, rust


def test_the_python_breaker_opens_when_the_rust_one_opens(
    server: LocalRedis, peer_binary: Path, peers: List[RustPeer]
) -> None:
    fleet, breaker, rust = setup(server, peer_binary, peers)
    with fleet:
        assert rust.send("fail 10")[0] == "open"
        assert eventually(lambda: breaker.state == "open"), breaker.state
        assert fleet.status().fleet_trips == 1


def test_the_rust_breaker_opens_when_the_python_one_opens(
    server: LocalRedis, peer_binary: Path, peers: List[RustPeer]
) -> None:
    fleet, breaker, rust = setup(server, peer_binary, peers)
    with fleet:
        for _ in range(10):
            breaker.acquire().failure()
        assert breaker.state == "open"
        assert eventually(lambda: rust.send("state")[0] == "open"), rust.send("state")
        assert rust.send("state")[3] == 1
        assert fleet.status().fleet_trips == 0


@pytest.mark.parametrize("time_window", [False, True], ids=["count_window", "time_window"])
def test_the_failure_rate_summed_across_languages_opens_both(
    server: LocalRedis, peer_binary: Path, peers: List[RustPeer], time_window: bool
) -> None:
    fleet, breaker, rust = setup(server, peer_binary, peers, time_window)
    with fleet:
        # 5 of 9 in Rust, 3 of 8 in Python: each under minimum_calls, 8 of 17 together.
        rust.send("fail 5")
        rust.send("ok 4")
        for _ in range(3):
            breaker.acquire().failure()
        for _ in range(5):
            breaker.acquire().success()
        time.sleep(6 * INTERVAL)
        assert (breaker.state, rust.send("state")[0]) == ("closed", "closed")
        breaker.acquire().failure()  # 9 of 18: the fleet crosses 50%
        assert eventually(lambda: breaker.state == "open" and rust.send("state")[0] == "open"), (
            breaker.state,
            rust.send("state"),
        )


class RustBudgetPeer(RustProcess):
    """The Rust instance sharing the budget `payments`."""

    def send(self, command: str) -> Tuple[int, int, str, int]:
        """`(granted, available, mode, syncs)` after the command."""
        granted, available, mode, syncs = self.ask(command, "budget")
        return int(granted), int(available), mode, int(syncs)


def test_a_budget_is_divided_between_a_python_and_a_rust_instance(
    server: LocalRedis, examples: Path
) -> None:
    clock = ManualClock()
    budget = tg.RetryBudget(0.1, min_per_second=0, window=60, clock=clock)
    for _ in range(100):
        budget.deposit()  # 10 retries' worth, in Python
    rust = RustBudgetPeer(examples / "budget_peer", server.url, "rust")
    try:
        with Fleet(server.url, namespace="test", instance_id="py", interval=INTERVAL) as fleet:
            fleet.share(budget, "payments")
            assert rust.send("state")[1] == 0
            # The Rust instance, with no calls of its own, gets half the fleet's surplus.
            assert eventually(
                lambda: rust.send("state")[1] == 5 and budget.available() == 5
            ), (rust.send("state"), budget.available())
            assert rust.send("withdraw 10")[0] == 5
            # Rust now owes 5 retries: the fleet holds 5, 2.5 each.
            assert eventually(lambda: budget.available() == 2 and rust.send("state")[1] == 2), (
                budget.available(),
                rust.send("state"),
            )
            # Rust's own calls count for Python too: 300 more calls, 30 retries' worth.
            rust.send("deposit 300")
            assert eventually(lambda: budget.available() == 17), budget.available()
    finally:
        rust.close()
