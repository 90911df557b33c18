"""Ending asyncio tasks: cancel them, wait for them, and lose neither a cancellation nor an error;
and `AsyncClosing`, the end of an `async with` resource.

The pattern this replaces, ``task.cancel()`` then ``with suppress(CancelledError): await task``,
cannot tell the task's CancelledError (expected) from one aimed at the awaiting task (which must
propagate), so it swallows the latter: the caller goes on as if nobody had asked it to stop.
:func:`cancel_and_wait` tells them apart. It is shared by ``sfu``, ``pipeline`` and ``benchmarks``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from loguru import logger

__all__ = ["AsyncClosing", "cancel_and_wait"]


async def cancel_and_wait(*tasks: asyncio.Future[Any] | None) -> None:
    """Cancel every task (``None`` entries are skipped) and wait until all of them have ended.

    - A task that ends cancelled, or returns, is done with: its CancelledError is not an error.
    - A task's own exception (done before the call or raised while it was being cancelled) is
      re-raised once every task has ended: one error as itself, several as an ExceptionGroup.
    - When the caller itself is cancelled while it waits, it still waits for the tasks (they
      have been cancelled already, so they end promptly), then raises CancelledError; the tasks'
      own errors are then logged (loguru, level ERROR) instead of raised, as the cancellation
      wins. A task that ignores its cancellation keeps the caller waiting, as ``await`` would.

    A cancellation that reached the caller before this call and is already being handled (this
    runs in a ``finally`` or ``except CancelledError`` block) is left to propagate as it does.
    """
    owned = [t for t in tasks if t is not None]
    for t in owned:
        t.cancel()
    caller_cancelled = False
    pending = set(owned)
    while pending:
        try:
            _, pending = await asyncio.wait(pending)
        except asyncio.CancelledError:
            # asyncio.wait never raises a task's CancelledError: this one is aimed at the caller.
            caller_cancelled = True
    errors = list(_errors(owned))
    if caller_cancelled:
        for exc in errors:
            logger.opt(exception=exc).error(
                "a task ended with {} while its owner was cancelled", type(exc).__name__
            )
        raise asyncio.CancelledError
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ExceptionGroup(f"{len(errors)} tasks failed while being cancelled", errors)


def _errors(tasks: Iterable[asyncio.Future[Any]]) -> Iterable[Exception]:
    """The exceptions the ended ``tasks`` raised, other than their cancellation."""
    for t in tasks:
        if t.cancelled():
            continue
        exc = t.exception()
        if exc is None:
            continue
        if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit: not ours to group
            raise exc
        yield exc


class AsyncClosing:
    """Base of an `async with` resource: leaving the block calls its `aclose`, which each
    resource makes safe to call twice (an error path may have closed it already)."""

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
