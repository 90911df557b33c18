"""A paused host is not a broken network: the whole run frozen (SIGSTOP) reads OK or INCONCLUSIVE
naming the freeze, while a network outage of the same length still FAILs naming the gap."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import verify
from pipeline.config.faults import FREEZE_ENV
from tests.conftest import scaled
from tests.pipeline.conftest import Finished, free_port, run_cli, write_config

DURATION_S = 20
FREEZE_AT_S = 8.0


async def _run(tmp_path: Path, env: dict[str, str] | None = None, **fields: Any) -> Finished:
    """One run on an embedded server the run starts itself (so the freeze stops it too)."""
    config = write_config(
        tmp_path / "c.json",
        f"ws://127.0.0.1:{free_port()}",
        "devkey",
        "s3cret-" + "7" * 32,
        signing_key=str(tmp_path / "signing-key.pem"),
        **fields,
    )
    done = await run_cli(
        "--config", str(config), "--duration", str(DURATION_S), "--out", str(tmp_path / "rec"),
        limit_s=scaled(240), env=env,
    )  # fmt: skip
    assert "Traceback" not in done.stderr and done.code in (0, 1, 4), done.stderr[-3000:]
    return done


def _report(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    (run,) = (tmp_path / "rec").iterdir()
    return run, json.loads((run / "report.json").read_bytes())


@pytest.mark.parametrize("freeze_s", [0.3, 0.5, 0.8])
async def test_a_frozen_host_is_ok_or_inconclusive_naming_the_freeze(
    tmp_path: Path, freeze_s: float
) -> None:
    """Capture and embedded server stopped together for 0.3-0.8 s: the report sees one freeze of
    about that length, the run is OK or INCONCLUSIVE naming it (never FAIL, exit 0 or 4), and
    nothing names a sample-rate mismatch or blames the network."""
    done = await _run(tmp_path, env={FREEZE_ENV: f"{FREEZE_AT_S}:{freeze_s}"})
    run, report = _report(tmp_path)
    manifest = json.loads((run / "manifest.json").read_bytes())
    assert manifest["config"]["faults"] == {"freeze": {"at_s": FREEZE_AT_S, "duration_s": freeze_s}}
    [freeze] = report["host"]["freezes"]
    assert 0.8 * freeze_s * 1000 <= freeze["stood_ms"] <= freeze_s * 1000 + scaled(300), freeze
    verdict = report["verdict"]
    assert verdict["status"] in ("passed", "inconclusive"), verdict
    assert not any("sample-rate" in f or "kHz audio" in f for f in verdict["failures"]), verdict
    if verdict["status"] == "inconclusive":
        assert done.code == 4, done.stderr[-2000:]
        assert verdict["reason"].startswith("the whole host stood still for"), verdict
        assert f"INCONCLUSIVE: {run}: the whole host stood still" in done.stdout
    else:
        assert done.code == 0, done.stderr[-2000:]
    for d in report["directions"]:
        spans = [s for s in d["disturbed"] if s["freeze"]]
        assert len(spans) == 1 and spans[0]["start_s"] <= freeze["at_s"], d["disturbed"]
        frozen = [s for s in d["quality"]["segments"] if s["disturbed"]]
        assert d["quality"]["pitch_segments_left_out"] == [s["segment"] for s in frozen]
    assert verify.check(run)[0].status in ("ok", "inconclusive")


async def test_a_network_outage_of_the_same_length_still_fails_naming_the_gap(
    tmp_path: Path,
) -> None:
    """The server drops one direction's audio for 0.8 s at the same point: nothing on the host
    stalled with it, so the run FAILs (exit 1) naming the gap. Bursts of 0.9 s in every second
    (both at once) make sure the outage cuts at least 0.35 s from one, whatever its phase."""
    done = await _run(
        tmp_path,
        mode="duplex",
        burst={"duration_s": 0.9, "period_s": 1.0, "ramp_s": 0.005, "amplitude": 0.5},
        probe=None,
        impairment={"support_to_customer": {"outages": [[FREEZE_AT_S, 0.8]]}},
    )
    run, report = _report(tmp_path)
    verdict = report["verdict"]
    assert report["host"]["freezes"] == []
    assert any("support->customer: gap max" in f for f in verdict["failures"]), verdict
    # The outage is the network's: at least one of its failures (the gap, the packet loss) is
    # explained by no host stall. (A real stall of the busy host may still coincide with the
    # gap, measured once in a full suite: a sender 243 ms late at 2.1 s; the run stays FAILED.)
    assert None in verdict["host_stalls"], verdict
    assert verdict["status"] == "failed" and done.code == 1, done.stderr[-2000:]
    assert f"FAIL: {run}: " in done.stdout and "gap max" in done.stdout
