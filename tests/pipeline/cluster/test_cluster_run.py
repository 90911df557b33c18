"""`--pairs 4 --ray auto` on Ray's two-node test cluster: every run folder gathered and verified,
both nodes used, the fleet summary recomputable from the runs; a server the nodes cannot reach;
Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
from ray.cluster_utils import Cluster

import verify
from tests.conftest import scaled
from tests.pipeline.cluster.conftest import manifest, node_ids, ray_config, run_on, start_on
from tests.pipeline.conftest import REPO, cli_env, free_port, write_config


async def test_four_conversations_on_two_nodes_verify(tmp_path: Path, ray_cluster: Cluster) -> None:
    """Four tone conversations on two nodes: each run folder arrives whole and verifies OK, the
    manifests name both nodes, and the fleet summary equals its recomputation."""
    config = ray_config(tmp_path, 0.5)  # two conversations per 1-CPU node
    out = tmp_path / "recordings"
    done = await run_on(
        ray_cluster, "--config", str(config), "--pairs", "4", "--duration", "4", "--out", str(out),
        limit_s=scaled(240),
    )  # fmt: skip
    assert done.code == 0, done.stderr[-6000:]
    assert "Traceback" not in done.stderr
    runs = sorted(p for p in out.iterdir() if p.is_dir())
    assert len(runs) == 4, runs
    results = verify.check(out)
    assert [r.status for r in results] == ["ok"] * 4, [r.reason for r in results]
    manifests = [manifest(run) for run in runs]
    assert {m["node"]["ray_node_id"] for m in manifests} == node_ids(ray_cluster)
    for m in manifests:
        assert m["status"] == "complete" and m["config"]["out_dir"] == str(out)
        assert m["embedded_server"] is True and m["node"]["host"]
    assert len({m["fleet"]["id"] for m in manifests}) == 1
    _check_fleet(out, runs)


def _check_fleet(out: Path, runs: list[Path]) -> None:
    """`python -m verify OUT` writes fleet.json; its figures are the runs' own, recomputed."""
    done = subprocess.run(
        [sys.executable, "-m", "verify", str(out)],
        cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=scaled(180),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (fleet_json,) = out.glob("fleet-*/fleet.json")
    fleet = json.loads(fleet_json.read_text())
    assert fleet["conversations"] == 4 and fleet["counts"] == {
        "ok": 4,
        "fail": 0,
        "inconclusive": 0,
    }
    reports = [json.loads((run / "report.json").read_text()) for run in runs]
    for name, pick in (
        ("latency_median_ms", lambda d: d["latency_ms"]["median"]),
        ("latency_p95_ms", lambda d: d["latency_ms"]["p95"]),
        ("gap_max_ms", lambda d: d["gap_max_ms"]),
    ):
        worst = np.array([max(pick(d) for d in r["directions"]) for r in reports])
        spread = fleet["figures"][name]
        assert spread["count"] == 4, name
        assert abs(spread["max"] - worst.max()) < 1e-3, name
        assert abs(spread["p50"] - np.percentile(worst, 50)) < 1e-3, name
        assert abs(spread["p95"] - np.percentile(worst, 95)) < 1e-3, name


async def test_unreachable_server_is_one_sentence_exit_3(
    tmp_path: Path, ray_cluster: Cluster
) -> None:
    """A server URL no node can reach: one sentence naming a node, exit 3, nothing run."""
    host = ray_cluster.head_node.node_ip_address
    url = f"ws://{host}:{free_port()}"  # not loopback: the run starts no server there
    config = write_config(tmp_path / "config.json", url, "devkey", "s3cret-ray-tests")
    out = tmp_path / "recordings"
    done = await run_on(
        ray_cluster, "--config", str(config), "--pairs", "2", "--out", str(out),
        limit_s=scaled(120),
    )  # fmt: skip
    assert done.code == 3, done.stderr[-4000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr[-4000:]
    assert f"the LiveKit server {url} cannot be reached from Ray node" in errors[0]
    assert errors[0].count(". ") == 0 and errors[0].endswith(".")
    assert "Traceback" not in done.stderr
    assert not [p for p in out.iterdir() if p.is_dir()]


async def test_sigint_interrupts_every_conversation_and_keeps_them(
    tmp_path: Path, ray_cluster: Cluster
) -> None:
    """SIGINT to the driver alone: every conversation on the nodes closes its evidence as
    interrupted, its run folder arrives, exit 130."""
    config = ray_config(tmp_path, 0.5)
    out = tmp_path / "recordings"
    proc = await start_on(
        ray_cluster, "--config", str(config), "--pairs", "2", "--duration", "60",
        "--out", str(out),
    )  # fmt: skip
    assert proc.stderr is not None
    stderr = b""
    async with asyncio.timeout(scaled(180)):
        while stderr.count(b" talking ") < 2:  # both rows of the progress view say talking
            line = await proc.stderr.readline()
            assert line, stderr.decode()[-4000:]
            stderr += line
    proc.send_signal(signal.SIGINT)
    stdout, rest = await asyncio.wait_for(proc.communicate(), scaled(120))
    text = (stderr + rest).decode()
    assert proc.returncode == 130, text[-4000:]
    assert "Traceback" not in text
    runs = sorted(p for p in out.iterdir() if p.is_dir())
    assert len(runs) == 2
    for run in runs:
        m = manifest(run)
        assert m["status"] == "interrupted" and m["reason"] == "interrupted by SIGINT (Ctrl-C)."
        assert m["node"] is not None
        assert f"run {run.name}: interrupted" in stdout.decode()
