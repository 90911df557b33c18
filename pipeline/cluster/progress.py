"""The driver's view of a run on a Ray cluster: per conversation its node, state and seconds
talked, within 80 columns (redrawn in place on a terminal, a log line per conversation every
few seconds otherwise).

    4 conversations on 2 nodes: 4 talking
    run                       node         node id  state        talked    bursts
    20261206T071000Z-1a2b3c4d vm-a         5413418f talking     12/20 s     24/24
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol, TextIO

from loguru import logger

from pipeline.cluster.nodes import Node
from pipeline.console.live import Flow, LiveView, PairView

_ROW = "{:<26}{:<13.12}{:<9.8}{:<10.9}{:>10}{:>10}"
_HEAD = _ROW.format("run", "node", "node id", "state", "talked", "bursts")


class RunState(Protocol):
    """What the view reads of one conversation (`pipeline.cluster.driver.RemoteRun`)."""

    run_id: str
    node: Node | None
    state: str
    talked_s: float
    view: PairView


def row(run: RunState, duration_s: float) -> str:
    """One conversation in one line: run id, node, state, seconds talked, bursts heard/sent."""
    c, s = run.view.customer, run.view.support
    heard, sent = c.bursts_heard + s.bursts_heard, c.bursts_sent + s.bursts_sent
    host, node_id = ("-", "-") if run.node is None else (run.node.host, run.node.ray_node_id)
    talked = f"{run.talked_s:.0f}/{duration_s:.0f} s"
    return _ROW.format(run.run_id, host, node_id, run.state, talked, f"{heard}/{sent}")


def head(runs: Sequence[RunState]) -> str:
    """The first line: how many conversations, on how many nodes, in which states."""
    nodes = {r.node.ray_node_id for r in runs if r.node is not None}
    states: dict[str, int] = {}
    for r in runs:
        states[r.state] = states.get(r.state, 0) + 1
    counts = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
    return f"{len(runs)} conversations on {len(nodes)} nodes: {counts}"[:79]


class ClusterView(LiveView):
    """Shows every conversation once a second until cancelled (then `finish()`)."""

    def __init__(
        self, runs: Sequence[RunState], duration_s: float, *, stream: TextIO | None = None
    ) -> None:
        super().__init__([r.view for r in runs], stream=stream)
        self.runs = runs
        self._duration_s = duration_s

    async def run(self) -> None:
        """Redraw every second; the owner cancels this task and then calls `finish()`."""
        loop = asyncio.get_running_loop()
        last_log = loop.time()
        while True:
            await asyncio.sleep(1.0)
            if self._tty:
                self._draw(0.0, [])
            elif loop.time() - last_log >= self._log_every_s:
                last_log = loop.time()
                for r in self.runs:
                    logger.info("{}", row(r, self._duration_s).rstrip())

    def lines(self, elapsed: float, per_pair: Sequence[Sequence[Flow]]) -> list[str]:
        """What the terminal shows (the arguments are the base view's, unused here)."""
        return [head(self.runs), _HEAD, *(row(r, self._duration_s) for r in self.runs)]
