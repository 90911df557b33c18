"""Where the conversations run: one bundle of `ray.cpus_per_conversation` CPUs per conversation,
spread over the nodes, reserved all at once, and a check that every chosen node reaches the
server.

All at once (a placement group) because the conversations start together: a task queued behind
the others would keep the start gate closed until every other had timed out. Spread (SPREAD:
as many nodes as there are, several bundles on one node when there are fewer nodes than
conversations); both speakers of a conversation are one task, so its latency keeps one clock.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import ray
from ray.util.placement_group import placement_group, placement_group_table, remove_placement_group
from ray.util.scheduling_strategies import (
    NodeAffinitySchedulingStrategy,
    PlacementGroupSchedulingStrategy,
)

from echoproof.aiotasks import AsyncClosing
from pipeline.config import Config
from pipeline.errors import ConfigError, ConnectError

# How long the cluster may take to find room for every conversation (an autoscaling cluster
# adds nodes meanwhile).
PLACE_TIMEOUT_S = 120.0


class Placement(AsyncClosing):
    """The reserved bundles, one per conversation; an `async with` object whose close (which
    frees them) is safe twice."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.node_ids: list[str] = []  # the node of each bundle
        self._group: Any = None

    async def __aenter__(self) -> Placement:
        cpus, n = self.config.ray.cpus_per_conversation, self.config.pairs
        self._group = placement_group([{"CPU": cpus}] * n, strategy="SPREAD")
        try:
            await asyncio.wait_for(self._group.ready(), PLACE_TIMEOUT_S)
        except TimeoutError:
            total = ray.cluster_resources().get("CPU", 0.0)
            await self.aclose()
            raise ConfigError(
                f"the Ray cluster found no room for {n} conversations of {cpus:g} CPU each "
                f"within {PLACE_TIMEOUT_S:g} s (it has {total:g} CPUs); lower --pairs or "
                "ray.cpus_per_conversation."
            ) from None
        table = await asyncio.to_thread(placement_group_table, self._group)
        bundles = table["bundles_to_node_id"]
        self.node_ids = [bundles[i] for i in range(n)]
        return self

    def strategy(self, index: int) -> PlacementGroupSchedulingStrategy:
        """Where conversation `index` runs: its own bundle."""
        return PlacementGroupSchedulingStrategy(self._group, placement_group_bundle_index=index)

    async def aclose(self) -> None:
        """Free the bundles; safe to call twice."""
        group, self._group = self._group, None
        if group is not None:
            await asyncio.to_thread(remove_placement_group, group)


@ray.remote(num_cpus=0, max_retries=0)
def _reach(host: str, port: int, timeout_s: float) -> tuple[str, str | None]:
    """On a node: its host name, and why it cannot open a TCP connection to host:port (None: it
    can)."""
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as exc:
        return socket.gethostname(), exc.strerror or type(exc).__name__
    return socket.gethostname(), None


async def check_server(config: Config, node_ids: list[str]) -> None:
    """ConnectError, in one sentence, unless every node in `node_ids` reaches the server."""
    timeout = config.connect_timeout_s
    for node_id in dict.fromkeys(node_ids):
        strategy = NodeAffinitySchedulingStrategy(node_id, soft=False)
        ref = _reach.options(scheduling_strategy=strategy).remote(config.host, config.port, timeout)
        try:
            host, why = await asyncio.wait_for(ref, timeout + 30)
        except TimeoutError:
            host, why = "?", f"no answer within {timeout + 30:g} s"
        if why is not None:
            raise ConnectError(
                f"the LiveKit server {config.ws_url} cannot be reached from Ray node {host} "
                f"({node_id[:8]}): {why}; every node must reach it (a loopback URL with --ray "
                "starts the embedded server on this machine's address in the cluster)."
            )
