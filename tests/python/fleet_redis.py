"""A throwaway ``redis-server`` on 127.0.0.1 for the fleet's tests (``test_fleet*.py``): started
on a free port with no persistence, stopped at the end; as the Rust fleet's ``LocalRedis``.

Without a redis-server (or redis-py) the tests are skipped with a message saying how to install
it, unless ``TAILGUARD_REQUIRE_REDIS=1`` (as ``scripts/test`` sets once it has installed one):
then they fail.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from typing import TYPE_CHECKING, Callable, Iterator, Optional

import pytest

if TYPE_CHECKING:
    import redis

INSTALL_HINT = (
    "install Redis's server (Debian/Ubuntu: `apt-get install redis-server`; or valkey-server) "
    "and redis-py (`pip install 'tailguard[redis]'`)"
)

#: Generous: these judge shapes (who opened, which mode), not how fast.
PATIENCE = 10.0


def _binary() -> Optional[str]:
    for name in ("redis-server", "valkey-server"):
        path = shutil.which(name)
        if path is not None:
            return path
    return None


def _unavailable(why: str) -> None:
    if os.environ.get("TAILGUARD_REQUIRE_REDIS"):
        pytest.fail(f"TAILGUARD_REQUIRE_REDIS is set, but: {why}")
    pytest.skip(f"skipped: {why} ({INSTALL_HINT})")


class LocalRedis:
    """A redis-server this test started; :meth:`stop`, :meth:`restart`, :meth:`freeze` and
    :meth:`thaw` make outages."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]
        self.process: Optional[subprocess.Popen[bytes]] = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:{port}/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        """A plain client, for reading and writing entries by hand."""
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True)

    def restart(self) -> None:
        """Starts the server (again, on its port, empty) and waits until it answers PING."""
        import redis

        self.stop()
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
            + ["--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        give_up = time.monotonic() + PATIENCE
        while True:
            try:
                redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=0.2).ping()
                return
            except redis.exceptions.RedisError:
                if time.monotonic() > give_up:
                    self.stop()
                    raise
                time.sleep(0.02)

    def stop(self) -> None:
        """Kills the server (an outage)."""
        if self.process is not None:
            self.thaw()
            self.process.kill()
            self.process.wait()
            self.process = None

    def freeze(self) -> None:
        """SIGSTOP: the port stays open but nothing answers (a stalled Redis)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT after :meth:`freeze`."""
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)


def local_redis() -> Iterator[LocalRedis]:
    """The fixture's body: a running server, stopped afterwards (or a skip)."""
    try:
        import redis  # noqa: F401
    except ImportError:
        _unavailable("redis-py is not installed")
    binary = _binary()
    if binary is None:
        _unavailable("no redis-server found")
        return
    server = LocalRedis(binary)
    server.restart()
    try:
        yield server
    finally:
        server.stop()


def eventually(done: Callable[[], bool], patience: float = PATIENCE) -> bool:
    """Waits (up to ``patience`` seconds) until ``done()``; whether it came."""
    give_up = time.monotonic() + patience
    while time.monotonic() < give_up:
        if done():
            return True
        time.sleep(0.005)
    return done()
