"""The background thread: every interval, publish each shared policy's entry, read the fleet's,
and act on what the ledgers say. The only place that talks to Redis; never on a call's path.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Protocol, Tuple

from tailguard.fleet._ledger import WHY_WORDS, FLEET_RATE, Ledger

if TYPE_CHECKING:
    from redis import Redis
    from redis.client import Pipeline

    from tailguard._native import CircuitBreaker

LOG = logging.getLogger("tailguard.fleet")


def wall_ms() -> int:
    """The wall-clock time in milliseconds since the Unix epoch (what entries carry)."""
    return time.time_ns() // 1_000_000


def text(value: object) -> Optional[str]:
    """A hash field or value as text (redis-py gives bytes unless ``decode_responses``)."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return value if isinstance(value, str) else None


def text_fields(reply: object) -> Dict[str, Optional[str]]:
    """An ``HGETALL`` reply as ``{field: value}`` text (fields that are not text dropped)."""
    fields: Dict[str, Optional[str]] = {}
    if isinstance(reply, dict):
        for key, value in reply.items():
            name = text(key)
            if name is not None:
                fields[name] = text(value)
    return fields


@dataclass(frozen=True)
class Settings:
    """A fleet's checked settings."""

    namespace: str
    instance_id: str
    interval: float
    stale_after: float
    io_timeout: float
    follow_open: bool
    where: str
    """The Redis, for log lines (its URL without a password, or the client's repr)."""

    @property
    def stale_after_ms(self) -> int:
        """``stale_after`` in whole milliseconds, as values are dated."""
        return int(self.stale_after * 1000)


def stage_value(pipe: Pipeline, key: str, me: str, value: str, ttl_ms: int) -> int:
    """Queues one object's part of a sync (``fleet/SCHEMA.md``, "Each sync"): ``HSET key me
    value``, ``PEXPIRE key ttl_ms``, ``HGETALL key``; returns how many replies they give (the
    hash read is the last)."""
    pipe.hset(key, me, value)
    pipe.pexpire(key, ttl_ms)
    pipe.hgetall(key)
    return 3


class Counters:
    """What :class:`~tailguard.fleet.Status` reports, written by the thread only."""

    def __init__(self) -> None:
        self.shared = False
        self.syncs = 0
        self.syncs_failed = 0
        self.fleet_trips = 0
        self.peers = 0


class Slot(Protocol):
    """One shared policy as the thread sees it."""

    key: str

    def stage(self, pipe: Pipeline, me: str, now_ms: int, ttl_ms: int) -> int:
        """Queues this sync's commands; returns how many replies they give."""

    def settle(
        self,
        replies: List[Any],
        settings: Settings,
        counters: Counters,
        now_ms: int,
        after: Pipeline,
    ) -> Tuple[bool, int]:
        """Acts on the replies and queues follow-up commands on ``after``: whether it did, and
        how many fresh peers it saw."""

    def failed(self, now_ms: int, stale_after_ms: int) -> None:
        """A sync failed (Redis down or slow)."""

    def left(self) -> None:
        """The fleet stopped."""


class BreakerSlot:
    """One shared breaker: ``HSET`` our entry, ``PEXPIRE`` the key, ``HGETALL`` it; then judge,
    trip, and remove stale fields."""

    def __init__(self, breaker: CircuitBreaker, name: str, key: str, interval: float) -> None:
        self.breaker = breaker
        self.name = name
        self.key = key
        self.ledger = Ledger()
        self.instances = 1
        """Instances sharing this breaker at the last sync, this one included."""
        self.ahead = interval
        """How far ahead a time window's published part is cut: the fleet's interval."""
        self._view = breaker._fleet_view(1, interval)

    def stage(self, pipe: Pipeline, me: str, now_ms: int, ttl_ms: int) -> int:
        self._view = self.breaker._fleet_view(self.instances, self.ahead)
        entry = self.ledger.entry(self._view, now_ms)
        return stage_value(pipe, self.key, me, entry.encode(), ttl_ms)

    def settle(
        self,
        replies: List[Any],
        settings: Settings,
        counters: Counters,
        now_ms: int,
        after: Pipeline,
    ) -> Tuple[bool, int]:
        me = settings.instance_id
        verdict = self.ledger.judge(
            self._view,
            text_fields(replies[2]),
            me,
            now_ms,
            settings.stale_after_ms,
            settings.follow_open,
            self.breaker._fleet_crosses,
        )
        self.instances = 1 + verdict.peers
        queued = False
        if verdict.stale:
            after.hdel(self.key, *verdict.stale)
            queued = True
        if verdict.trip is not None and self.breaker._fleet_trip():
            view = self.breaker._fleet_view(self.instances, self.ahead)
            self.ledger.tripped = (view[1], verdict.trip)
            if verdict.trip == FLEET_RATE:
                # Tell the others now, not at the next sync: they follow this opening.
                after.hset(self.key, me, self.ledger.entry(view, now_ms).encode())
                queued = True
            counters.fleet_trips += 1
            LOG.info("breaker %s opened by the fleet: %s", self.name, WHY_WORDS[verdict.trip])
        return queued, verdict.peers

    def failed(self, now_ms: int, stale_after_ms: int) -> None:
        """Nothing to undo: the breaker decides on its own window, as it always does."""

    def left(self) -> None:
        """Nothing to undo: a trip by the fleet ends as any opening does."""


class Worker:
    """The thread's state and loop."""

    def __init__(self, client: Redis, settings: Settings, counters: Counters) -> None:
        self.client = client
        self.settings = settings
        self.counters = counters
        self.slots: List[Slot] = []
        self.pending: List[Slot] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.in_outage = False
        self.failed_in_outage = 0

    def add(self, slot: Slot) -> None:
        """Hands a slot over; the thread takes it on its next sync."""
        with self.lock:
            self.pending.append(slot)

    def run(self) -> None:
        """Syncs every interval until stopped, then leaves."""
        while True:
            self.take_pending()
            self.sync_once()
            if self.stop.wait(self.settings.interval):
                self.leave()
                return

    def take_pending(self) -> None:
        with self.lock:
            self.slots.extend(self.pending)
            self.pending.clear()

    def sync_once(self) -> None:
        """One sync; on any error, local mode (one log line per outage)."""
        if not self.slots:
            return
        try:
            self.exchange()
        except Exception as error:  # noqa: BLE001 - the thread must outlive any failure
            self.counters.syncs_failed += 1
            self.counters.shared = False
            now_ms = wall_ms()
            for slot in self.slots:
                slot.failed(now_ms, self.settings.stale_after_ms)
            if not self.in_outage:
                self.in_outage = True
                self.failed_in_outage = 0
                LOG.warning(
                    "redis at %s unreachable (%s: %s); policies decide locally, reconnecting "
                    "every %ss",
                    self.settings.where,
                    type(error).__name__,
                    error,
                    self.settings.interval,
                )
            self.failed_in_outage += 1
            return
        self.counters.syncs += 1
        self.counters.shared = True
        if self.in_outage:
            self.in_outage = False
            LOG.warning(
                "redis at %s is back after %d failed syncs; sharing again",
                self.settings.where,
                self.failed_in_outage,
            )

    def exchange(self) -> None:
        """One round trip for every slot; a second only if some slot queued follow-ups."""
        settings = self.settings
        me = settings.instance_id
        ttl_ms = max(1, settings.stale_after_ms)
        now_ms = wall_ms()
        pipe = self.client.pipeline(transaction=False)
        counts = [slot.stage(pipe, me, now_ms, ttl_ms) for slot in self.slots]
        replies = pipe.execute()
        after = self.client.pipeline(transaction=False)
        queued, peers, start = False, 0, 0
        for slot, count in zip(self.slots, counts):
            mine = replies[start : start + count]
            start += count
            more, seen = slot.settle(mine, settings, self.counters, now_ms, after)
            queued, peers = queued or more, peers + seen
        self.counters.peers = peers
        if queued:
            after.execute()

    def leave(self) -> None:
        """On stop: removes this instance's fields (best effort, one short round trip)."""
        self.take_pending()
        for slot in self.slots:
            slot.left()
        if not self.slots or self.in_outage:
            return
        try:
            pipe = self.client.pipeline(transaction=False)
            for slot in self.slots:
                pipe.hdel(slot.key, self.settings.instance_id)
            pipe.execute()
        except Exception:  # noqa: BLE001 - leaving is best effort
            pass


def redact(url: str) -> str:
    """``url`` without its password, for log lines."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.partition(":")[0]
    return f"{scheme}://{user + ':***@' if user else '***@'}{host}"

