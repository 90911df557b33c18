"""`--pairs N` through the CLI: one worker process per conversation, one combined result."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import wave
from pathlib import Path

from pipeline.gate import SETTLE_S
from pipeline.recording.wav import HEADER_BYTES as WAV_HEADER
from tests.conftest import scaled
from tests.pipeline.conftest import free_port, start_cli, wait_talking, write_config


def _workers_of(pid: int) -> set[int]:
    """The pids of `pid`'s child processes that run `pipeline.worker`."""
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except FileNotFoundError:
                continue
            if b"pipeline.worker" in cmdline:
                found.add(int(child))
    return found


def _start_ns(run: Path) -> int:
    """When the run's conversation started talking (its events log)."""
    for line in (run / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event["event"] == "conversation_started":
            return int(event["start_ns"])
    raise AssertionError(f"{run} has no conversation_started event")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def _start(tmp_path: Path, duration: str) -> tuple[asyncio.subprocess.Process, Path, bytes]:
    """The CLI with three pairs on its own embedded server, once all three are talking."""
    config = write_config(
        tmp_path / "config.json",
        f"ws://127.0.0.1:{free_port()}",
        "devkey",
        "secret",
        signing_key=str(tmp_path / "signing-key.pem"),
    )
    out = tmp_path / "recordings"
    proc = await start_cli(
        "--config", str(config), "--pairs", "3", "--duration", duration, "--out", str(out)
    )
    assert proc.stderr is not None
    stderr = await wait_talking(proc, 3)
    return proc, out, stderr


async def test_three_pairs_run_in_three_processes_and_verify(tmp_path: Path) -> None:
    """Three conversations run in three worker processes; every run completes and verifies."""
    proc, out, stderr = await _start(tmp_path, "4")
    workers = _workers_of(proc.pid)
    stdout, rest = await asyncio.wait_for(proc.communicate(), scaled(90))
    stderr += rest
    assert proc.returncode == 0, stderr.decode()
    assert len(workers) == 3 and proc.pid not in workers
    assert not any(_alive(pid) for pid in workers)
    assert b"Traceback" not in stderr, stderr.decode()
    runs = sorted(out.iterdir())
    assert len(runs) == 3
    # one start instant for all: nobody talks while another conversation still joins
    assert len({_start_ns(run) for run in runs}) == 1
    text = stdout.decode()
    for run in runs:
        assert json.loads((run / "manifest.json").read_text())["status"] == "complete"
        assert json.loads((run / "report.json").read_text())["verdict"]["passed"] is True
        assert f"run {run.name}: complete" in text
        assert f"OK: {run}" in text


async def test_sigint_stops_every_worker_with_exit_130(tmp_path: Path) -> None:
    """SIGINT to the CLI alone stops all three workers; each closes its evidence as interrupted."""
    proc, out, stderr = await _start(tmp_path, "60")
    workers = _workers_of(proc.pid)
    assert len(workers) == 3
    await asyncio.sleep(SETTLE_S + 1.0)  # several pairs talk SETTLE_S after "talking for"
    sent_at = time.monotonic()
    proc.send_signal(signal.SIGINT)
    stdout, rest = await asyncio.wait_for(proc.communicate(), scaled(60))
    stderr += rest
    assert proc.returncode == 130, stderr.decode()
    assert time.monotonic() - sent_at < scaled(30)
    assert not any(_alive(pid) for pid in workers)
    assert b"Traceback" not in stderr, stderr.decode()
    runs = sorted(out.iterdir())
    assert len(runs) == 3
    for run in runs:
        manifest = json.loads((run / "manifest.json").read_text())
        assert manifest["status"] == "interrupted"
        assert manifest["reason"] == "interrupted by SIGINT (Ctrl-C).", stderr.decode()[-4000:]
        for name in ("support-from-customer.wav", "customer-from-support.wav"):
            with wave.open(str(run / name), "rb") as w:
                samples = w.getnframes()
            assert samples > 48000 // 2  # recorded before the interrupt
            assert (
                run / name
            ).stat().st_size == WAV_HEADER + 2 * samples  # closed: header counts all
        assert f"run {run.name}: interrupted" in stdout.decode()


async def test_killed_worker_fails_only_its_run(tmp_path: Path) -> None:
    """A worker killed with SIGKILL: its run fails (manifest says so, WAVs stay valid), the others
    complete, and the CLI exits 3."""
    proc, out, stderr = await _start(tmp_path, "6")
    victim = min(_workers_of(proc.pid))
    os.kill(victim, signal.SIGKILL)
    stdout, rest = await asyncio.wait_for(proc.communicate(), scaled(90))
    stderr += rest
    assert proc.returncode == 3, stderr.decode()
    assert b"Traceback" not in stderr, stderr.decode()
    statuses = {}
    for run in sorted(out.iterdir()):
        manifest = json.loads((run / "manifest.json").read_text())
        statuses[run.name] = manifest["status"]
        if manifest["status"] == "failed":
            assert f"(pid {victim}) exited with code -9" in manifest["reason"]
            for name in ("support-from-customer.wav", "customer-from-support.wav"):
                with wave.open(str(run / name), "rb") as w:
                    samples = w.getnframes()
                assert WAV_HEADER + 2 * samples <= (run / name).stat().st_size
    assert sorted(statuses.values()) == ["complete", "complete", "failed"]
    assert f"(pid {victim}) exited with code -9" in stdout.decode()
