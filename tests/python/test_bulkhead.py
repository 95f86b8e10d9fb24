"""Bulkhead: the cap, the bounded queue (FIFO and LIFO), waits bounded in time, sync threads
and asyncio tasks, cancellation, the decorator and the context managers."""

from __future__ import annotations

import asyncio
import pickle
import threading
import time

import pytest

import tailguard as tg


def test_the_cap_holds_and_slots_come_back() -> None:
    bulkhead = tg.Bulkhead(2)
    first, second = bulkhead.acquire(), bulkhead.acquire()
    assert bulkhead.in_flight == 2
    with pytest.raises(tg.BulkheadFullError) as refused:
        bulkhead.acquire()
    assert refused.value.reason == "full"
    assert isinstance(refused.value, tg.TailguardError)
    assert bulkhead.try_acquire() is None
    first.release()
    first.release()  # a second release does nothing
    assert not first.held
    with bulkhead.acquire():
        assert bulkhead.in_flight == 2
    second.release()
    assert bulkhead.in_flight == 0
    assert bulkhead.rejected == (2, 0)


def test_a_sync_waiter_gets_the_slot_a_thread_releases() -> None:
    bulkhead = tg.Bulkhead(1, max_queue=1)
    held = bulkhead.acquire()
    threading.Timer(0.05, held.release).start()
    with bulkhead.acquire(timeout=10):
        assert bulkhead.in_flight == 1
    assert bulkhead.in_flight == 0


def test_a_sync_wait_ends_at_its_timeout_and_a_full_queue_refuses_at_once() -> None:
    bulkhead = tg.Bulkhead(1, max_queue=1, max_wait=0.05)
    held = bulkhead.acquire()
    start = time.monotonic()
    with pytest.raises(tg.BulkheadFullError) as refused:
        bulkhead.acquire()
    assert refused.value.reason == "deadline"
    assert time.monotonic() - start >= 0.05
    assert bulkhead.queued == 0

    async def main() -> None:
        waiting = asyncio.ensure_future(bulkhead.acquire_async(timeout=10))
        await asyncio.sleep(0)
        assert bulkhead.queued == 1
        with pytest.raises(tg.BulkheadFullError) as full:
            await bulkhead.acquire_async(timeout=10)
        assert full.value.reason == "full"
        held.release()
        (await waiting).release()

    asyncio.run(main())
    assert (bulkhead.in_flight, bulkhead.queued) == (0, 0)


@pytest.mark.parametrize("order, first", [("fifo", 0), ("lifo", 2)])
def test_the_queue_order_picks_who_goes_next(order: str, first: int) -> None:
    bulkhead = tg.Bulkhead(1, max_queue=3, queue_order=order)  # type: ignore[arg-type]
    assert bulkhead.queue_order == order
    served: list[int] = []

    async def main() -> None:
        held = bulkhead.acquire()

        async def waiter(i: int) -> None:
            async with bulkhead:
                served.append(i)

        tasks = []
        for i in range(3):
            tasks.append(asyncio.ensure_future(waiter(i)))
            await asyncio.sleep(0)
        held.release()
        await asyncio.gather(*tasks)

    asyncio.run(main())
    assert served[0] == first
    assert sorted(served) == [0, 1, 2]


def test_a_cancelled_task_leaves_the_queue_and_loses_no_slot() -> None:
    bulkhead = tg.Bulkhead(1, max_queue=4)

    async def main() -> None:
        held = bulkhead.acquire()
        waiting = asyncio.ensure_future(bulkhead.acquire_async())
        await asyncio.sleep(0)
        assert bulkhead.queued == 1
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert bulkhead.queued == 0
        # A slot handed over at the moment of cancellation goes on to the next waiter.
        first = asyncio.ensure_future(bulkhead.acquire_async())
        second = asyncio.ensure_future(bulkhead.acquire_async())
        await asyncio.sleep(0)
        held.release()  # granted to `first`...
        first.cancel()  # ...which is cancelled before it runs
        permit = await asyncio.wait_for(second, 5)
        permit.release()
        with pytest.raises(asyncio.CancelledError):
            await first

    asyncio.run(main())
    assert (bulkhead.in_flight, bulkhead.queued) == (0, 0)


def test_decorators_hold_a_slot_while_the_call_runs() -> None:
    bulkhead = tg.Bulkhead(3, max_queue=10)
    inside: list[int] = []
    peak = [0]

    @bulkhead
    def sync_work(x: int) -> int:
        """Doubles."""
        return x * 2

    @bulkhead
    async def async_work(x: int) -> int:
        inside.append(x)
        peak[0] = max(peak[0], len(inside))
        await asyncio.sleep(0.001)
        inside.remove(x)
        return x

    assert sync_work(4) == 8
    assert sync_work.__doc__ == "Doubles."
    assert isinstance(sync_work, tg.Bulkheaded)
    assert sync_work.bulkhead is bulkhead

    async def main() -> list[int]:
        return list(await asyncio.gather(*(async_work(i) for i in range(12))))

    assert asyncio.run(main()) == list(range(12))
    assert peak[0] == 3
    assert bulkhead.in_flight == 0


def test_an_exception_in_the_call_gives_the_slot_back() -> None:
    bulkhead = tg.Bulkhead(1)

    @bulkhead
    def boom() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        boom()
    with pytest.raises(KeyError):
        with bulkhead:
            raise KeyError("y")
    assert bulkhead.in_flight == 0


def test_threads_never_exceed_the_cap() -> None:
    bulkhead = tg.Bulkhead(2, max_queue=16)
    lock = threading.Lock()
    inside = [0]
    peak = [0]

    def work() -> None:
        for _ in range(50):
            with bulkhead:
                with lock:
                    inside[0] += 1
                    peak[0] = max(peak[0], inside[0])
                time.sleep(0.0001)
                with lock:
                    inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert peak[0] <= 2
    assert (bulkhead.in_flight, bulkhead.queued) == (0, 0)


def test_bad_settings_are_refused_naming_the_parameter() -> None:
    for kwargs, parameter in [
        ({"max_concurrent": 0}, "max_concurrent"),
        ({"max_queue": 2_000_000}, "max_queue"),
        ({"queue_order": "random"}, "queue_order"),
        ({"max_wait": -1}, "max_wait"),
    ]:
        with pytest.raises(tg.ConfigError) as err:
            tg.Bulkhead(**kwargs)  # type: ignore[arg-type]
        assert err.value.parameter == parameter
    with pytest.raises(TypeError):
        tg.Bulkhead("2")  # type: ignore[arg-type]


def test_the_error_pickles() -> None:
    err = tg.BulkheadFullError("full", "deadline")
    again = pickle.loads(pickle.dumps(err))
    assert (str(again), again.reason) == ("full", "deadline")
