"""Cancelling the tasks a fan-out or a hedge leaves behind."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Iterable, TypeVar

T = TypeVar("T")


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


def start_leg(awaitable: Awaitable[T]) -> asyncio.Future[T]:
    """Starts one leg of a fan-out or a hedged call as a task whose outcome is always retrieved.

    The call that started it accounts for every leg: it returns a winner's result, raises with
    the failures it waited for, and deliberately drops the rest (a leg that failed alongside the
    winner, or while being cancelled, even after the caller itself was cancelled). So asyncio
    must never log such a leg as "Task exception was never retrieved".
    """
    task = asyncio.ensure_future(awaitable)
    task.add_done_callback(_retrieve)
    return task


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancels every task and waits until each has finished, so no loser outlives the call.

    If the caller itself is cancelled while waiting, the tasks are still cancelled and the
    cancellation propagates.
    """
    pending = [task for task in tasks if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
    for task in pending:
        # Mark each exception retrieved, so asyncio does not log "never retrieved".
        if not task.cancelled():
            task.exception()
