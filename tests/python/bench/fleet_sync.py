"""What `tailguard.fleet` costs a Python process, against a redis-server it starts on 127.0.0.1:

1. the CPU time of one sync of the background thread (an upper bound on how long it holds the
   GIL per interval), with 1 and 10 shared breakers, each with two peers' entries;
2. a breaker's call path (`with breaker:`) with no fleet, and with a fleet syncing every 50 ms
   (the shared breaker, and another one in the same process), interleaved in one run: the call
   path itself is unchanged; what may differ is the thread's share of the GIL and the CPU.

    .venv/bin/python tests/python/bench/fleet_sync.py
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import redis

import tailguard as tg
from tailguard.fleet import Fleet
from tailguard.fleet._sync import BreakerSlot, Counters, Settings, Worker


def start_server() -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("redis-server") or shutil.which("valkey-server")
    if binary is None:
        raise SystemExit("no redis-server: apt-get install redis-server")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    for _ in range(500):
        try:
            client.ping()
            break
        except redis.exceptions.ConnectionError:
            time.sleep(0.02)
    return server, port


def sync_cost(client: redis.Redis, breakers: int, rounds: int = 2000) -> tuple[float, float]:
    """(CPU seconds, wall seconds) per sync."""
    settings = Settings("bench", "me", 0.25, 3600.0, 0.1, True, "local")
    worker = Worker(client, settings, Counters())
    now_ms = time.time_ns() // 1_000_000
    for i in range(breakers):
        breaker = tg.CircuitBreaker(window=100)
        for _ in range(50):
            breaker.acquire().success()
        key = f"tailguard:bench:breaker:b{i}"
        client.hset(key, mapping={"p1": f"1:{now_ms}:10:1:0:0:0", "p2": f"1:{now_ms}:10:1:0:0:0"})
        worker.slots.append(BreakerSlot(breaker, f"b{i}", key, settings.interval))
    for _ in range(20):
        worker.exchange()
    cpu, wall = time.thread_time(), time.perf_counter()
    for _ in range(rounds):
        worker.exchange()
    return (time.thread_time() - cpu) / rounds, (time.perf_counter() - wall) / rounds


def calls_per_second(breaker: tg.CircuitBreaker, seconds: float = 1.0) -> float:
    done, until = 0, time.perf_counter() + seconds
    while time.perf_counter() < until:
        for _ in range(1000):
            with breaker:
                pass
        done += 1000
    return done / seconds


def main() -> None:
    server, port = start_server()
    try:
        client = redis.Redis(port=port)
        for breakers in (1, 10):
            cpu, wall = sync_cost(client, breakers)
            print(
                f"one sync, {breakers:2d} breakers: {cpu * 1e6:6.0f} us CPU "
                f"({wall * 1e6:.0f} us wall, the round trip included)"
            )
        alone = tg.CircuitBreaker(window=100)
        shared = tg.CircuitBreaker(window=100)
        rates: dict[str, list[float]] = {
            "no fleet": [],
            "fleet, its breaker": [],
            "fleet, another breaker": [],
        }
        for run in range(5):  # interleaved, to share the machine's moods
            rates["no fleet"].append(calls_per_second(alone))
            url = f"redis://127.0.0.1:{port}/0"
            with Fleet(url, namespace="bench", interval=0.05) as fleet:
                fleet.share(shared, f"calls{run}")
                time.sleep(0.1)
                rates["fleet, its breaker"].append(calls_per_second(shared))
                rates["fleet, another breaker"].append(calls_per_second(alone))
                assert fleet.status().mode == "shared", fleet.status()
        best = {name: max(values) for name, values in rates.items()}
        for name, rate in best.items():
            ratio = best["no fleet"] / rate
            print(
                f"with breaker: (best of 5 runs of 1 s), {name:>22}: {1e9 / rate:6.0f} ns "
                f"per call, {ratio:.3f}x no fleet"
            )
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
