"""One start instant and one stop switch for the conversations of a whole cluster.

`ClusterGate` is a small async Ray actor on the driver's node (it reserves no CPU): each
conversation's task says `ready(run_id)` once both speakers hear each other and waits there, or
`leave(run_id)` when it will not talk (so do the driver for a conversation whose node was lost);
once every conversation did one of the two, all get the same start instant, as wall-clock ns,
SETTLE_S later (`pipeline.gate.StartGate`, `docs/realtime.md`). Each node turns it into its own
monotonic clock (`monotonic_at`): one instant across machines as far as their clocks agree (NTP;
two nodes of one machine differed by 0.11 ms). `stop(reason)` asks every task to stop early
(Ctrl-C on the driver: a terminal's Ctrl-C never reaches Ray's worker processes).

`NodeGate` is a task's side of it, a `pipeline.gate.Gate` for the worker process it runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from pipeline.gate import SETTLE_S, START_DELAY_S


class ClusterGate:
    """The actor: who is still joining, the start instant once none is, and the stop switch."""

    def __init__(self, run_ids: list[str]) -> None:
        self._waiting = set(run_ids)
        self._delay_s = SETTLE_S if len(run_ids) > 1 else START_DELAY_S
        self._open = asyncio.Event()
        self._start_wall_ns = 0
        self._stop = asyncio.Event()
        self._reason = ""

    async def ready(self, run_id: str) -> int:
        """`run_id` can talk: the shared start instant (wall-clock ns) once no one is joining."""
        self._count(run_id)
        await self._open.wait()
        return self._start_wall_ns

    async def leave(self, run_id: str) -> None:
        """`run_id` will not talk: do not wait for it (again: no effect)."""
        self._count(run_id)

    async def stop(self, reason: str) -> None:
        """Ask every conversation to stop; the first reason is kept."""
        if not self._stop.is_set():
            self._reason = reason
            self._stop.set()

    async def stopped(self) -> str:
        """The reason, once stopping was asked for."""
        await self._stop.wait()
        return self._reason

    def _count(self, run_id: str) -> None:
        self._waiting.discard(run_id)
        if not self._waiting and not self._open.is_set():
            self._start_wall_ns = time.time_ns() + int(self._delay_s * 1e9)
            self._open.set()


def start_gate(run_ids: list[str], node_id: str | None) -> Any:
    """The gate actor for `run_ids`, on node `node_id` (the driver's; None: where Ray likes)."""
    options: dict[str, Any] = {"num_cpus": 0, "max_restarts": 0}
    if node_id is not None:
        options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id, soft=False)
    return ray.remote(**options)(ClusterGate).remote(run_ids)


def monotonic_at(wall_ns: int) -> int:
    """This machine's monotonic clock at wall-clock instant `wall_ns`."""
    return time.monotonic_ns() + (wall_ns - time.time_ns())


class NodeGate:
    """A task's side of `ClusterGate`: the `Gate` its worker process is given."""

    def __init__(
        self, actor: Any, run_id: str, *, settles: bool, on_ready: Callable[[], None]
    ) -> None:
        self.settles = settles
        self._actor = actor
        self._run_id = run_id
        self._on_ready = on_ready

    def ready(self) -> Awaitable[int]:
        """Counted at once; the start instant on this node's monotonic clock, once open."""
        self._on_ready()
        return self._start(self._actor.ready.remote(self._run_id))

    async def _start(self, ref: Any) -> int:
        return monotonic_at(await ref)

    def leave(self) -> None:
        """This conversation will not talk."""
        self._actor.leave.remote(self._run_id)
