"""The nodes of a Ray cluster as a run names them: a host name and Ray's node id (two nodes of
one machine share the host name), and which of them Ray still counts alive."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

import ray


@dataclass(frozen=True)
class Node:
    """One node of the cluster: its host name and Ray node id."""

    host: str
    ray_node_id: str

    @property
    def name(self) -> str:
        """How messages name it: `host (first 8 hex digits of the node id)`."""
        return f"{self.host} ({self.ray_node_id[:8]})"

    def to_json(self) -> dict[str, Any]:
        """The manifest's `node`."""
        return {"host": self.host, "ray_node_id": self.ray_node_id}


def this_node() -> Node:
    """The node this process runs on (inside a task, or the driver's)."""
    return Node(socket.gethostname(), ray.get_runtime_context().get_node_id())


def alive() -> dict[str, bool]:
    """Every node Ray knows of, by node id: alive or not (blocking: a call to the head)."""
    return {n["NodeID"]: bool(n["Alive"]) for n in ray.nodes()}
