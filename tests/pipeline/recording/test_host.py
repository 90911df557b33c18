"""Host figures during capture: host.csv, and a stalled sender named in an INCONCLUSIVE verdict."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

import verify
from pipeline.recording.evidence import HOST_COLUMNS, HostWriter
from pipeline.recording.host import HostMonitor, Stalls
from tests.conftest import scaled
from tests.pipeline.conftest import free_port, run_cli, write_config
from verify import evidence as ev


def test_stalls_measure_lateness_from_the_first_frame_and_receive_gaps() -> None:
    """Lateness counts from the first frame's time + n x 10 ms; the worst since the last take."""
    s = Stalls()
    s.sent(0, 1_000_000_000)
    s.sent(1, 1_010_500_000)  # 0.5 ms late
    s.sent(2, 1_045_000_000)  # 25 ms late
    s.received(2_000_000_000)
    s.received(2_010_000_000)
    s.received(2_090_000_000)  # 80 ms without a frame
    assert s.take() == (25.0, 80.0)
    assert s.take() == (None, None)  # nothing happened since
    s.sent(3, 1_029_000_000)  # early: not late
    assert s.take() == (0.0, None)


async def test_monitor_writes_one_row_a_second(tmp_path: Path) -> None:
    """The monitor writes a row per second with the /proc figures this machine offers."""
    writer = HostWriter(tmp_path / "host.csv")
    stalls = {"customer": Stalls(), "support": Stalls()}
    async with HostMonitor(writer, stalls, server_pid=os.getpid()):
        stalls["support"].sent(0, 0)
        await asyncio.sleep(2.3)
    writer.close()
    table = ev.read_host(tmp_path / "host.csv")
    assert len(table) == 3  # two whole windows and the last, partial one
    assert table.columns["window_ms"][0] == pytest.approx(1000, abs=scaled(150))
    assert table.columns["support_send_late_ms"][0] == 0.0
    assert all(v != v for v in table.columns["customer_send_late_ms"])  # never sent: empty
    assert (table.columns["loop_lag_ms"] >= 0).all()
    assert (table.columns["capture_wait_ms"] >= 0).all()
    assert (table.columns["server_wait_ms"] >= 0).all()
    assert list(ev.HOST_COLUMNS) == list(HOST_COLUMNS)


async def test_a_stalled_sender_makes_the_run_inconclusive(tmp_path: Path) -> None:
    """The Support agent's send loop held 0.5 s on purpose: latency fails its limit, the verdict
    is INCONCLUSIVE naming that stall, the exit code is 4, every figure stays as measured."""
    config = write_config(
        tmp_path / "c.json",
        f"ws://127.0.0.1:{free_port()}",
        "devkey",
        "s3cret-" + "9" * 32,
        signing_key=str(tmp_path / "signing-key.pem"),
        thresholds={"max_latency_p95_ms": 300, "max_gap_ms": 1000},
    )
    out = tmp_path / "recordings"
    done = await run_cli(
        "--config", str(config), "--duration", "12", "--out", str(out),
        limit_s=scaled(180), env={"ECHOPROOF_FAULT_SEND_STALL": "support:4:0.5"},
    )  # fmt: skip
    assert "Traceback" not in done.stderr
    (run,) = out.iterdir()
    report = json.loads((run / "report.json").read_bytes())
    assert report["verdict"]["status"] == "inconclusive", report["verdict"]
    assert done.code == 4, done.stderr[-2000:]
    reason = report["verdict"]["reason"]
    assert reason.startswith("support's sending process was ")
    assert "behind real time at" in reason and reason.endswith("; rerun on a quieter machine")
    assert f"INCONCLUSIVE: {run}: {reason}" in done.stdout
    assert "support->customer: latency p95" in " ".join(report["verdict"]["failures"])
    late = report["host"]["figures"]["support_send_late_ms"]["max"]
    assert 450 <= late <= 700
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["config"]["faults"] == {
        "send_stall": {"role": "support", "at_s": 4.0, "duration_s": 0.5}
    }
    assert verify.check(run)[0].status == "inconclusive"
    scheduling = report["host"]["scheduling"]  # how the talk was scheduled, said in the report
    assert scheduling == manifest["realtime"]
    assert scheduling["policy"] == "fifo" or scheduling["reason"]


async def test_a_network_outage_stays_a_fail(tmp_path: Path) -> None:
    """The same kind of hole made by the network (a server-side outage) is a FAIL naming what it
    cut: nothing on the host explains 2 s of missing audio, though a short stall nearby may
    explain one small hole inside a burst."""
    config = write_config(
        tmp_path / "c.json",
        f"ws://127.0.0.1:{free_port()}",
        "devkey",
        "s3cret-" + "8" * 32,
        signing_key=str(tmp_path / "signing-key.pem"),
        impairment={"support_to_customer": {"outages": [[3.0, 2.0]]}},
    )
    out = tmp_path / "recordings"
    done = await run_cli(
        "--config", str(config), "--duration", "12", "--out", str(out), limit_s=scaled(180)
    )
    (run,) = out.iterdir()
    report = json.loads((run / "report.json").read_bytes())
    verdict = report["verdict"]
    # The outage cuts holes into the bursts around it (gaps) and may swallow whole bursts (lost).
    outage = [
        i
        for i, f in enumerate(verdict["failures"])
        if f.startswith("support->customer: gap max")
        or f.startswith("support->customer: bursts lost")
    ]
    assert outage, verdict["failures"]
    if all(verdict["host_stalls"][i] is not None for i in outage):  # only a long stall can
        assert max(s["value_ms"] for s in report["host"]["stalls"]) >= 450
        pytest.skip(f"the host really stalled at the outage: {verdict['host_stalls']}")
    assert verdict["status"] == "failed"
    assert done.code == 1, done.stderr[-2000:]
    assert f"FAIL: {run}: " in done.stdout
