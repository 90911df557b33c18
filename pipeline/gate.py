"""When conversations start and stop: one start instant for all of them, and the stop request.

`StopSignal` asks every conversation to stop early (Ctrl-C, SIGTERM). `StartGate` gives every
conversation of a run one start instant, once each has joined or given up; a conversation sees it
through the `Gate` protocol (a worker process through its parent, see `pipeline.worker`), and
tells whoever follows it (`Begins`: the live view, or a worker's report) when it starts talking.
With a join ramp (`join_ramp_s`) the conversations join one after another instead, and each
starts talking as soon as it is ready (`start_gates`, `join_delay_s`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Protocol

# The senders start this long after both speakers hear each other (both from the same instant);
# with several conversations, SETTLE_S after the last pair hears each other (see StartGate).
START_DELAY_S = 0.2
SETTLE_S = 2.0


class StopSignal:
    """Asks every conversation to stop early (Ctrl-C, SIGTERM); the first reason given is kept."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.reason: str | None = None

    def set(self, reason: str) -> None:
        """Stop, because of `reason` (one sentence)."""
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    def is_set(self) -> bool:
        """True once stopping was asked for."""
        return self._event.is_set()

    async def wait(self) -> None:
        """Return once stopping was asked for."""
        await self._event.wait()


class Begins(Protocol):
    """Told when a conversation starts talking: the live view, or a worker's report."""

    def begin(self, start_ns: int, duration_s: float) -> None: ...


class Gate(Protocol):
    """Gives a conversation its start instant: `StartGate`, or a worker's parent."""

    # True when talking may start long after `ready()` (several conversations): see
    # `pipeline.tones.conversation.STATS_GRACE_S`.
    settles: bool

    def ready(self) -> Awaitable[int]: ...

    def leave(self) -> None: ...


class StartGate:
    """One start instant for every conversation of a run, once each has joined or given up.

    Joining is CPU-heavy, and the SDK goes on working for a second or two after a participant
    hears the other: a conversation that talks while others join fills its jitter buffers under
    that load, and they keep the extra delay for seconds. So several conversations start
    together SETTLE_S after the last one is ready; a lone one, which has only its own join to
    wait for, START_DELAY_S after (the measurements are in `docs/realtime.md`).
    Each conversation calls `ready()` (then waits) or, if it failed before, `leave()`: once each.
    """

    def __init__(self, conversations: int) -> None:
        self._waiting = conversations
        self.settles = conversations > 1
        self._delay_s = SETTLE_S if self.settles else START_DELAY_S
        self._open = asyncio.Event()
        self.start_ns = 0

    def ready(self) -> Awaitable[int]:
        """This conversation can talk: the shared start instant, once every other is ready too."""
        self.leave()  # counted now, not when the caller first awaits
        return self._start()

    async def _start(self) -> int:
        await self._open.wait()
        return self.start_ns

    async def opened(self) -> int:
        """The start instant, once every conversation is ready or has left."""
        return await self._start()

    def leave(self) -> None:
        """This conversation will not talk: do not wait for it."""
        self._waiting -= 1
        if self._waiting <= 0 and not self._open.is_set():
            self.start_ns = time.monotonic_ns() + int(self._delay_s * 1e9)
            self._open.set()


def start_gates(conversations: int, ramp_s: float) -> list[StartGate]:
    """Each conversation's gate: without a ramp one `StartGate` shared by all, one start instant
    once all have joined; with a ramp one each, as for a lone conversation, since the joins are
    spread out anyway and a caller does not wait for the next one to call."""
    if ramp_s <= 0:
        return [StartGate(conversations)] * conversations
    return [StartGate(1) for _ in range(conversations)]


def join_delay_s(i: int, conversations: int, ramp_s: float) -> float:
    """When the `i`-th of `conversations` joins, in seconds after the first: evenly over the
    ramp."""
    return i * ramp_s / conversations
