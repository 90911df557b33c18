"""Owning asyncio tasks: one way to end them, shared by sfu, pipeline and benchmarks."""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_wait(*tasks: asyncio.Future[Any] | None) -> None:
    """Cancel every task and wait until each has ended.

    A task's own CancelledError is expected and absorbed; a cancellation aimed at the caller
    (which is waiting here) is re-raised once every task has ended. Other exceptions of the
    tasks are theirs to report: they are retrieved here so that asyncio does not log them.
    """
    live = [t for t in tasks if t is not None]
    for t in live:
        t.cancel()
    for t in live:
        try:
            await t
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
        except Exception:  # the task's owner reported it, or it is moot now
            pass
