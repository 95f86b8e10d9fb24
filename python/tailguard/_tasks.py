"""Cancelling the tasks a fan-out or a hedge leaves behind."""

from __future__ import annotations

import asyncio
from typing import Any, Iterable


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
