"""The run folder the driver writes for a conversation whose node was lost: verify FAILs it with
the reason, whether or not the node had sent its manifest (no Ray needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import verify
from pipeline.cluster.lost import write_failed_run
from pipeline.config import from_dict
from pipeline.recording import evidence
from verify.evidence import read_manifest

REASON = "node vm (5413418f) was lost: Ray declared it dead."


def _seen(run_id: str) -> dict[str, Any]:
    """A manifest as a node sends it when the run begins."""
    data = {
        "run_id": run_id,
        "participants": {"customer": {"identity": "customer-1", "tone_hz": 440.0},
                         "support": {"identity": "support-agent-1", "tone_hz": 550.0}},
        "directions": evidence.directions(),
        "burst": {"duration_s": 0.3, "ramp_s": 0.005, "amplitude": 0.5},
        "clock": {"monotonic_ns": 1, "wall": evidence.utc_iso()},
        "config": {"out_dir": "/staging"},
    }  # fmt: skip
    return data


@pytest.mark.parametrize("seen", [False, True])
def test_verify_fails_it_with_the_reason(tmp_path: Path, seen: bool) -> None:
    """A signed report whose verdict fails first on the run's status, with the reason; the
    manifest names the node and the driver's out_dir."""
    config = from_dict(
        {"livekit": {"url": "ws://127.0.0.1:7880", "api_key": "k", "api_secret": "s"},
         "out_dir": str(tmp_path / "out")}
    )  # fmt: skip
    run_id = evidence.new_run_id()
    node = {"host": "vm", "ray_node_id": "5413418f" + "0" * 48}
    run = write_failed_run(
        config, run_id, REASON, node, _seen(run_id) if seen else None, embedded=True
    )
    manifest = read_manifest(run)
    assert manifest.node == node and manifest.status == "failed" and manifest.reason == REASON
    assert manifest.config["out_dir"] == str(tmp_path / "out")
    result = verify.write_report(run, key_path=tmp_path / "key.pem", html=False)
    assert result.failures[0] == f"run status is failed, expected complete: {REASON}"
    (checked,) = verify.check(tmp_path / "out")
    assert checked.status == "fail" and REASON in checked.reason
