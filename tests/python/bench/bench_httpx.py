"""What tailguard.httpx's transports add to a successful request, against plain httpx.

Two measures, each the median over interleaved rounds (every client once per round, in a
shuffled order, so a noisy neighbour hits both alike):

- **end to end**: GET requests over keep-alive to a local HTTP/1.1 server (a minimal asyncio
  server in a child process, so it never competes for this process's GIL), through
  ``httpx.Client`` with its default transport and with ``tailguard.httpx.Transport`` around
  that same transport; and the async pair. Reported per request as the client thread's CPU
  time (``time.thread_time_ns``: what a loaded machine's preemption does not inflate, and the
  server's work is not counted) and as wall time.
- **transport alone**: ``handle_request`` of the tailguard transport around an inner transport
  that returns a ready response, against that inner transport called directly: the overhead
  itself, without the noise of a network round trip.

Build tailguard in release mode first, and install the httpx extra:

    VIRTUAL_ENV=$PWD/.venv PATH=$PWD/.venv/bin:$PATH maturin develop --release
    .venv/bin/python -m pip install 'httpx>=0.23'
    .venv/bin/python tests/python/bench/bench_httpx.py          # --rounds 21 --requests 500

Output: a Markdown table (for BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import platform
import random
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Tuple

import httpx

import tailguard.httpx as tgx

# The server: answers every request on a connection with the same 200, keep-alive.
SERVER = r"""
import asyncio, sys
REPLY = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok"
class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buffer = transport, b""
    def data_received(self, data):
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            _, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            self.transport.write(REPLY)
async def main():
    server = await asyncio.get_running_loop().create_server(Echo, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(3600)
asyncio.run(main())
"""

Clock = Callable[[], int]


def per_request_sync(
    client: httpx.Client, url: str, n: int, clock: Clock
) -> float:
    started = clock()
    for _ in range(n):
        client.get(url)
    return (clock() - started) / n


async def per_request_async(
    client: httpx.AsyncClient, url: str, n: int, clock: Clock
) -> float:
    started = clock()
    for _ in range(n):
        await client.get(url)
    return (clock() - started) / n


def end_to_end(url: str, rounds: int, n: int) -> Dict[str, Tuple[float, float, float]]:
    """Median CPU ns, minimum CPU ns and median wall ns per request, by client."""
    sync_clients = {
        "httpx.Client": httpx.Client(),
        "httpx.Client + tailguard.httpx.Transport": httpx.Client(
            transport=tgx.Transport(httpx.HTTPTransport())
        ),
    }
    loop = asyncio.new_event_loop()
    async_clients = {
        "httpx.AsyncClient": httpx.AsyncClient(),
        "httpx.AsyncClient + tailguard.httpx.AsyncTransport": httpx.AsyncClient(
            transport=tgx.AsyncTransport(httpx.AsyncHTTPTransport())
        ),
    }
    cpu: Dict[str, List[float]] = {name: [] for name in (*sync_clients, *async_clients)}
    wall: Dict[str, List[float]] = {name: [] for name in cpu}
    # Warm up: connections open, code paths hot.
    for client in sync_clients.values():
        per_request_sync(client, url, n, time.perf_counter_ns)
    for aclient in async_clients.values():
        loop.run_until_complete(per_request_async(aclient, url, n, time.perf_counter_ns))
    for _ in range(rounds):
        order = list(cpu)
        random.shuffle(order)
        for name in order:
            for samples, clock in ((cpu, time.thread_time_ns), (wall, time.perf_counter_ns)):
                gc.collect()
                if name in sync_clients:
                    samples[name].append(per_request_sync(sync_clients[name], url, n, clock))
                else:
                    samples[name].append(
                        loop.run_until_complete(
                            per_request_async(async_clients[name], url, n, clock)
                        )
                    )
    for client in sync_clients.values():
        client.close()
    for aclient in async_clients.values():
        loop.run_until_complete(aclient.aclose())
    loop.close()
    return {
        name: (statistics.median(cpu[name]), min(cpu[name]), statistics.median(wall[name]))
        for name in cpu
    }


class Ready(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Returns one ready response: the inner transport of the overhead measure."""

    def __init__(self) -> None:
        self.response = httpx.Response(200, content=b"ok")

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self.response

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return self.response


async def _async_loop(transport: httpx.AsyncBaseTransport, request: httpx.Request, n: int) -> float:
    handle = transport.handle_async_request
    started = time.thread_time_ns()
    for _ in range(n):
        await handle(request)
    return (time.thread_time_ns() - started) / n


def transport_alone(rounds: int, n: int) -> Dict[str, float]:
    """Median CPU ns per ``handle_request`` (``handle_async_request``): the ready inner
    transport called directly, and through tailguard's."""
    request = httpx.Client().build_request("GET", "http://127.0.0.1:8080/")
    inner = Ready()
    sync: Dict[str, httpx.BaseTransport] = {"sync inner": inner, "sync tailguard": tgx.Transport(inner)}
    asynchronous: Dict[str, httpx.AsyncBaseTransport] = {
        "async inner": inner,
        "async tailguard": tgx.AsyncTransport(inner),
    }
    samples: Dict[str, List[float]] = {name: [] for name in (*sync, *asynchronous)}
    loop = asyncio.new_event_loop()
    n *= 20
    for _ in range(rounds):
        order = list(samples)
        random.shuffle(order)
        for name in order:
            gc.collect()
            if name in sync:
                handle = sync[name].handle_request
                started = time.thread_time_ns()
                for _ in range(n):
                    handle(request)
                samples[name].append((time.thread_time_ns() - started) / n)
            else:
                samples[name].append(
                    loop.run_until_complete(_async_loop(asynchronous[name], request, n))
                )
    loop.close()
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--requests", type=int, default=500, help="requests per client per round")
    args = parser.parse_args()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        url = f"http://127.0.0.1:{port}/"
        figures = end_to_end(url, args.rounds, args.requests)
    finally:
        server.kill()
        server.wait()
    alone = transport_alone(args.rounds, args.requests)
    print(
        f"Python {platform.python_version()}, httpx {httpx.__version__}, "
        f"{args.rounds} rounds x {args.requests} requests, medians\n"
    )
    print(
        "| client | CPU µs / request, median | added | CPU µs, minimum | added | "
        "wall µs / request, median |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    plain = {"sync": figures["httpx.Client"], "async": figures["httpx.AsyncClient"]}
    for name, (cpu, least, wall) in figures.items():
        base = plain["async" if "Async" in name else "sync"]
        added = "" if cpu == base[0] else f"{(cpu - base[0]) / 1000:+.2f}"
        added_least = "" if least == base[1] else f"{(least - base[1]) / 1000:+.2f}"
        print(
            f"| {name} | {cpu / 1000:.2f} | {added} | {least / 1000:.2f} | {added_least} | "
            f"{wall / 1000:.2f} |"
        )
    print("\nTransport alone (the inner transport returns a ready response), CPU per request:\n")
    print("| transport | inner alone | through tailguard | added |")
    print("|---|---:|---:|---:|")
    for kind, label in (("sync", "Transport"), ("async", "AsyncTransport")):
        inner, wrapped = alone[f"{kind} inner"], alone[f"{kind} tailguard"]
        print(
            f"| tailguard.httpx.{label} | {inner:.0f} ns | {wrapped:.0f} ns | "
            f"**{(wrapped - inner) / 1000:.2f} µs** |"
        )

if __name__ == "__main__":
    main()
