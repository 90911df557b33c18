"""Fixtures of the Ray tests: Ray's own multi-node test cluster on this machine (two nodes of one
CPU each, the driver's faster health checks) and the CLI pointed at it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ray.cluster_utils import Cluster

from pipeline.cluster.connection import HEALTH_CHECKS
from tests.pipeline.conftest import Finished, free_port, run_cli, start_cli, write_config


def two_nodes() -> Cluster:
    """A head and one more node, 1 CPU each, started and waited for."""
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "_system_config": HEALTH_CHECKS},
    )
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    return cluster


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Cluster]:
    """Two nodes for the tests of one module (each node costs 0.5-1 GB and seconds to start)."""
    cluster = two_nodes()
    try:
        yield cluster
    finally:
        cluster.shutdown()


def node_ids(cluster: Cluster) -> set[str]:
    """The Ray node ids of the cluster's live nodes."""
    return {n.node_id for n in cluster.list_all_nodes()}


def ray_config(tmp_path: Path, cpus: float, **fields: Any) -> Path:
    """A config whose loopback URL is free (the run starts the embedded server) with `cpus`
    per conversation."""
    return write_config(
        tmp_path / "config.json",
        f"ws://127.0.0.1:{free_port()}",
        "devkey",
        "s3cret-ray-tests",
        signing_key=str(tmp_path / "signing-key.pem"),
        ray={"cpus_per_conversation": cpus},
        **fields,
    )


def cluster_env(cluster: Cluster) -> dict[str, str]:
    """The environment that makes `--ray auto` join `cluster`."""
    return {"RAY_ADDRESS": cluster.address}


async def run_on(cluster: Cluster, *args: str, limit_s: float) -> Finished:
    """`python -m pipeline ARGS --ray auto` on `cluster`, to the end."""
    return await run_cli(*args, "--ray", "auto", limit_s=limit_s, env=cluster_env(cluster))


async def start_on(cluster: Cluster, *args: str) -> Any:
    """`python -m pipeline ARGS --ray auto` on `cluster`, started."""
    return await start_cli(*args, "--ray", "auto", env=cluster_env(cluster))


def manifest(run: Path) -> dict[str, Any]:
    """A run folder's manifest."""
    data: dict[str, Any] = json.loads((run / "manifest.json").read_text())
    return data
