"""A small real HTTP/1.1 server for the integration tests: threaded, on 127.0.0.1 and a free
port, answering each path from a script of replies and recording what it saw (arrival times,
and whether a client hung up while its reply was being delayed)."""

from __future__ import annotations

import collections
import email.utils
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Deque, Dict, Iterator, List, Optional


@dataclass
class Reply:
    """One scripted answer."""

    status: int = 200
    body: bytes = b"ok"
    #: Seconds to wait before answering; a client that closes the connection meanwhile is
    #: recorded as ``hung_up`` and gets nothing.
    delay: float = 0.0
    #: ``Retry-After`` as delta-seconds.
    retry_after: Optional[int] = None
    #: ``Retry-After`` as an HTTP-date this many seconds from now (the date is whole seconds).
    retry_after_date: Optional[float] = None


@dataclass
class Seen:
    """One request as the server saw it."""

    method: str
    path: str
    port: int
    arrived: float  # time.monotonic()
    arrived_wall: float  # time.time()
    status: int = 0
    replied: float = 0.0  # time.monotonic() once the reply was written
    #: The wall time the reply's Retry-After asked the client to wait until.
    retry_until_wall: Optional[float] = None
    hung_up: bool = False
    peer: int = 0  # the client's port: one per connection


@dataclass
class _State:
    scripts: Dict[str, Deque[Reply]] = field(default_factory=dict)
    seen: List[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    changed: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _handle(self) -> None:
        state = self.server.state
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        path = self.path.split("?")[0]
        seen = Seen(
            self.command,
            path,
            self.server.server_address[1],
            time.monotonic(),
            time.time(),
            peer=self.client_address[1],
        )
        with state.lock:
            script = state.scripts.get(path)
            reply = script.popleft() if script else Reply()
            state.seen.append(seen)
            state.changed.notify_all()
        if reply.delay and self._hung_up_within(reply.delay):
            with state.lock:
                seen.hung_up = True
                state.changed.notify_all()
            self.close_connection = True
            return
        self.send_response(reply.status)
        if reply.retry_after is not None:
            self.send_header("Retry-After", str(reply.retry_after))
            seen.retry_until_wall = time.time() + reply.retry_after
        if reply.retry_after_date is not None:
            date = email.utils.formatdate(time.time() + reply.retry_after_date, usegmt=True)
            self.send_header("Retry-After", date)
            seen.retry_until_wall = email.utils.parsedate_to_datetime(date).timestamp()
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)
        self.wfile.flush()
        with state.lock:
            seen.status = reply.status
            seen.replied = time.monotonic()
            state.changed.notify_all()

    def _hung_up_within(self, delay: float) -> bool:
        """Waits ``delay`` seconds; True as soon as the client closes the connection."""
        end = time.monotonic() + delay
        conn = self.connection
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return False
            readable, _, _ = select.select([conn], [], [], min(left, 0.02))
            if readable:
                try:
                    data = conn.recv(1, socket.MSG_PEEK)
                except OSError:
                    return True
                if not data:
                    return True

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: _State


class Server:
    """The server, started on construction; use as a context manager (or call :meth:`close`)."""

    def __init__(self) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.state = _State()
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.host = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def script(self, path: str, *replies: Reply) -> None:
        """Answers the next requests to ``path`` with ``replies``, then with 200 "ok"."""
        with self._server.state.lock:
            self._server.state.scripts.setdefault(path, collections.deque()).extend(replies)

    def seen(self, path: Optional[str] = None) -> List[Seen]:
        """The requests seen so far (to ``path``), oldest first."""
        with self._server.state.lock:
            return [s for s in self._server.state.seen if path is None or s.path == path]

    def wait_for(self, predicate: Callable[[List[Seen]], bool], timeout: float = 10.0) -> bool:
        """Waits (at most ``timeout`` seconds) until ``predicate(seen)`` holds."""
        state = self._server.state
        end = time.monotonic() + timeout
        with state.changed:
            while not predicate(list(state.seen)):
                left = end - time.monotonic()
                if left <= 0:
                    return False
                state.changed.wait(left)
        return True

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def servers(n: int) -> Iterator[Server]:
    """``n`` servers (for a fixture that closes them)."""
    for _ in range(n):
        yield Server()
