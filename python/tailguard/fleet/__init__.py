"""Circuit breakers and retry budgets shared by every instance of a service, through Redis (or
Valkey), in one background thread, never on the call path. Needs redis-py: ``pip install
tailguard[redis]`` (``import tailguard`` alone never imports it).

>>> import tailguard as tg
>>> from tailguard.fleet import Fleet
>>> fleet = Fleet("redis://127.0.0.1:6379/0", namespace="checkout")  # doctest: +SKIP
>>> payments = tg.CircuitBreaker(window=100)  # doctest: +SKIP
>>> fleet.share(payments, "payments")  # doctest: +SKIP
>>> fleet.share(tg.RetryBudget(0.1), "payments")  # doctest: +SKIP

Every instance keeps deciding locally: a breaker's and a budget's call path is exactly what it is
without a fleet. Every ``interval`` the thread publishes this instance's entry for each shared
policy and merges the others'. It is the same Redis schema as the Rust crate ``tailguard-fleet``,
so Rust and Python instances of one service share one fleet:

- a breaker: the hash ``tailguard:{namespace}:breaker:{name}``, field = the instance id, value =
  ``1:at_ms:calls:failures:slow:opened:by_rate`` (the wall-clock time, the counts of this
  instance's share of the fleet's window, the id of its own open period or 0, whether that
  opening came from the fleet's rate); the key expires after ``stale_after``. The breaker opens
  (reason ``"fleet"``) when the fleet's failure (or slow-call) rate over the fresh entries
  crosses its own threshold with at least its ``minimum_calls``, or, with ``follow_open``, when
  another instance's breaker opened on its own evidence. An opening reaches every instance
  within two intervals.
- a retry budget: the hash ``tailguard:{namespace}:budget:{name}``, value ``1:at_ms:units``
  (this instance's own balance in thousandths of a retry: ``ratio × 1000`` per call, ``-1000``
  per retry from its window). Each instance sets its budget's remote balance to
  ``floor(F / n) - own`` (``F`` the units summed over itself and the fresh peers, ``n`` the
  instances): the fleet's balance is divided equally at every sync (see :meth:`Fleet.share`
  for the overshoot).

**When Redis is down or slow**, the policies fall back to their local decisions: they fail
neither open nor closed, they behave as without a fleet. Calls never wait for the thread; its
connect, reads and writes are bounded by ``io_timeout``. One warning is logged on the logger
``tailguard.fleet`` per outage, and one when Redis is back; :meth:`Fleet.status` says ``"local"``
and counts ``syncs_failed``; the thread retries every interval and shares again as soon as
Redis answers.

**Sync and asyncio programs alike**: the thread is a daemon thread of its own with a blocking
redis-py client, so an asyncio program needs nothing else (no task to run, no ``await``): share
the breakers its coroutines use and go on. Calls never wait for Redis; the thread holds the
GIL only for the Python steps of a sync, never across a Redis round trip (measured: 0.1 to
0.15 ms of CPU per sync with one shared breaker, 0.55 to 0.7 ms with ten, once per
``interval``; ``tests/python/bench/fleet_sync.py``), so at most a call may wait that long for
the GIL once an interval.
"""

from __future__ import annotations

import datetime
import os
import secrets
import threading
import weakref
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Dict, Literal, Optional, Type, Union

from tailguard import _native
from tailguard._errors import ConfigError
from tailguard.fleet._budget import BudgetSlot
from tailguard.fleet._sync import BreakerSlot, Counters, Settings, Slot, Worker, redact

try:
    import redis as _redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError as error:  # pragma: no cover - the extra is installed for the tests
    raise ImportError(
        "tailguard.fleet needs redis-py: pip install 'tailguard[redis]'"
    ) from error

if TYPE_CHECKING:
    from redis import Redis

__all__ = ["Fleet", "Status"]

_Seconds = Union[int, float, datetime.timedelta]


@dataclass(frozen=True)
class Status:
    """A snapshot of a :class:`Fleet`'s sharing, for metrics and health checks."""

    mode: Literal["shared", "local"]
    """``"shared"`` while the last sync reached Redis; ``"local"`` before the first and during
    an outage (every policy then decides alone, as without a fleet)."""
    syncs: int
    """Syncs that reached Redis."""
    syncs_failed: int
    """Syncs that did not (refused, timed out, an error reply)."""
    fleet_trips: int
    """Times the fleet opened a local breaker."""
    peers: int
    """Other instances with fresh entries at the last sync, summed over the shared policies."""
    breakers: int
    """Breakers shared."""
    budgets: int
    """Retry budgets shared."""


def _seconds(name: str, value: object) -> float:
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds or a timedelta, got {value!r}")
    return float(value)


def _stop(worker: Worker, thread: threading.Thread, owned: Optional[Redis]) -> None:
    worker.stop.set()
    if thread is not threading.current_thread():
        thread.join(timeout=worker.settings.interval + 4 * worker.settings.io_timeout + 1.0)
    if owned is not None:
        owned.close()


class Fleet:
    """Shares circuit breakers and retry budgets with the other instances of a service through
    Redis; see the module's documentation.

    ``redis`` is a URL (``redis://host:port/db``; the fleet makes its own client, with
    ``io_timeout`` as its connect and socket timeouts and no retries) or a ``redis.Redis``
    client (give it short ``socket_timeout`` and ``socket_connect_timeout``: a slow Redis then
    delays the thread by at most those, and calls never). Settings, checked here (a
    :class:`~tailguard.ConfigError` names the one refused): ``namespace`` (the keys'
    ``tailguard:{namespace}:``, one per service; default ``"default"``), ``interval`` (seconds
    between syncs, 0.01 to 60; default 0.25), ``stale_after`` (how old an entry may be and
    still count, and the keys' expiry; at least two intervals; default three), ``io_timeout``
    (0.001 s to the interval; default 0.1 s or the interval if shorter), ``follow_open``
    (whether another instance's breaker opening on its own evidence opens this one; default
    ``True``), ``instance_id`` (this instance's field in every hash, unique in the fleet;
    default: the process id and a random suffix).

    The thread starts here; a Redis that is down now is not an error (the fleet starts
    ``"local"``). :meth:`close` (or leaving a ``with`` block, or dropping the fleet) stops it
    and removes this instance's entries; the policies keep working, locally.
    """

    def __init__(
        self,
        redis: Union[str, Redis],
        *,
        namespace: str = "default",
        interval: _Seconds = 0.25,
        stale_after: Optional[_Seconds] = None,
        io_timeout: Optional[_Seconds] = None,
        follow_open: bool = True,
        instance_id: Optional[str] = None,
    ) -> None:
        if not isinstance(namespace, str) or not namespace:
            raise ConfigError("namespace must be a non-empty string", "namespace")
        if instance_id is None:
            instance_id = f"{os.getpid()}-{secrets.token_hex(4)}"  # as the Rust fleet's
        if not isinstance(instance_id, str) or not instance_id:
            raise ConfigError("instance_id must be a non-empty string", "instance_id")
        every = _seconds("interval", interval)
        if not 0.01 <= every <= 60.0:
            raise ConfigError(f"interval must be between 0.01 and 60 s, got {every}", "interval")
        stale = every * 3 if stale_after is None else _seconds("stale_after", stale_after)
        if not stale >= every * 2:
            raise ConfigError(
                f"stale_after must be at least two intervals ({every * 2} s), got {stale}",
                "stale_after",
            )
        io = min(0.1, every) if io_timeout is None else _seconds("io_timeout", io_timeout)
        if not 0.001 <= io <= every:
            raise ConfigError(
                f"io_timeout must be between 0.001 s and the interval ({every} s), got {io}",
                "io_timeout",
            )
        owned: Optional[Redis] = None
        if isinstance(redis, str):
            try:
                owned = _redis.Redis.from_url(
                    redis,
                    socket_timeout=io,
                    socket_connect_timeout=io,
                    retry=Retry(NoBackoff(), 0),
                )
            except ValueError as error:
                raise ConfigError(f"redis is not a Redis URL: {error}", "redis") from error
            client, where = owned, redact(redis)
        elif isinstance(redis, _redis.Redis):
            client, where = redis, repr(redis)
        else:
            raise TypeError(f"redis must be a URL or a redis.Redis client, got {redis!r}")
        self._settings = Settings(
            namespace=namespace,
            instance_id=instance_id,
            interval=every,
            stale_after=stale,
            io_timeout=io,
            follow_open=bool(follow_open),
            where=where,
        )
        self._counters = Counters()
        self._worker = Worker(client, self._settings, self._counters)
        self._keys: Dict[str, str] = {}
        """The keys shared, and their kinds."""
        self._lock = threading.Lock()
        thread = threading.Thread(target=self._worker.run, name="tailguard-fleet", daemon=True)
        thread.start()
        self._close = weakref.finalize(self, _stop, self._worker, thread, owned)

    def share(self, policy: Union[_native.CircuitBreaker, _native.RetryBudget], name: str) -> None:
        """Shares a breaker or a retry budget under ``name``: the instances that share a policy
        of the same kind and name (in the same namespace) see one dependency, and must
        configure it alike. From the next sync on:

        - a :class:`~tailguard.CircuitBreaker` may be opened by the fleet (see the module's
          documentation);
        - a :class:`~tailguard.RetryBudget` holds for the fleet: at every sync the fleet's
          balance (every instance's deposits, ``ratio`` of its calls, minus its retries) is
          divided equally among the instances, each deciding locally until the next. The
          fleet may overshoot ``ratio`` × its calls by what it retries in about one interval
          (a peer's published balance is up to an interval old), plus each instance's own
          ``min_per_second`` floor, which is not shared. While Redis is unreachable for longer
          than ``stale_after``, each budget is its own again (its own calls' ratio and floor).

        Raises :class:`~tailguard.ConfigError` (``name``) if this fleet already shares a policy
        of that kind and name or the name is empty, ``TypeError`` for anything else, and
        ``RuntimeError`` once the fleet is closed."""
        if not isinstance(name, str) or not name:
            raise ConfigError("name must be a non-empty string", "name")
        namespace = self._settings.namespace
        with self._lock:
            if not self._close.alive:
                raise RuntimeError("this fleet is closed")
            if isinstance(policy, _native.CircuitBreaker):
                kind = "breaker"
                key = f"tailguard:{namespace}:{kind}:{name}"
                slot: Slot = BreakerSlot(policy, name, key, self._settings.interval)
            elif isinstance(policy, _native.RetryBudget):
                kind = "budget"
                key = f"tailguard:{namespace}:{kind}:{name}"
                slot = BudgetSlot(policy, name, key)
            else:
                raise TypeError(
                    f"policy must be a tailguard.CircuitBreaker or RetryBudget, got {policy!r}"
                )
            if key in self._keys:
                raise ConfigError(f"a {kind} named {name!r} is already shared", "name")
            self._keys[key] = kind
            self._worker.add(slot)

    def status(self) -> Status:
        """What the sharing is doing now."""
        counters = self._counters
        kinds = list(self._keys.values())
        return Status(
            mode="shared" if counters.shared else "local",
            syncs=counters.syncs,
            syncs_failed=counters.syncs_failed,
            fleet_trips=counters.fleet_trips,
            peers=counters.peers,
            breakers=kinds.count("breaker"),
            budgets=kinds.count("budget"),
        )

    @property
    def instance_id(self) -> str:
        """This instance's id (its field in the hashes)."""
        return self._settings.instance_id

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run."""
        return not self._close.alive

    def close(self) -> None:
        """Stops the thread (waiting for a sync under way) and removes this instance's
        entries; the policies keep working, locally. Closing again does nothing."""
        with self._lock:
            self._close()

    def __enter__(self) -> Fleet:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        s = self._settings
        return (
            f"Fleet(redis={s.where!r}, namespace={s.namespace!r}, "
            f"instance_id={s.instance_id!r}, status={self.status()!r})"
        )
