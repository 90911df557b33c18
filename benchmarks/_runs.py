"""One ``python -m pipeline`` run as a new user's ``nox -s run`` makes it, for the benchmarks that
judge whole runs (stability, quality's loss ladder, callers); and busy-looping neighbours
(``hogs``) to run them beside.

The config's ``livekit.url`` is a free loopback port, so the run starts the embedded server
itself (and so can apply an ``impairment`` block), then verifies and signs its report with a
temporary key (``ECHOPROOF_SIGNING_KEY`` in the work folder; the user's key is untouched). A run
that overruns its duration + ``OVERRUN_S`` is killed with its process group.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "devkey"
API_SECRET = "echoproof-benchmark-runs-secret-0123456789"
OVERRUN_S = 120.0  # a run may take its duration plus this (joining, verifying, leaving)
EXIT_STATUS = {0: "OK", 1: "FAIL", 4: "INCONCLUSIVE"}


@dataclass
class PipelineRun:
    """What one run left: its exit code, wall time, an error, stderr's tail, its run folder."""

    returncode: int
    wall_s: float
    run_dir: Path | None
    error: str | None = None
    stderr_tail: list[str] = field(default_factory=list)

    def report(self) -> dict[str, Any] | None:
        """The run's ``report.json``, None when it wrote none."""
        path = None if self.run_dir is None else self.run_dir / "report.json"
        if path is None or not path.exists():
            return None
        report: dict[str, Any] = json.loads(path.read_text())
        return report


def exit_status(returncode: int) -> str:
    """What `python -m pipeline`'s exit code says: OK, FAIL, INCONCLUSIVE, else ERROR."""
    return EXIT_STATUS.get(returncode, "ERROR")


def free_port() -> int:
    """A loopback port nobody listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pipeline_run(
    extra: dict[str, Any],
    duration_s: float,
    out: Path,
    work: Path,
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
    watch: Callable[[int, float], None] | None = None,
    watch_every_s: float = 30.0,
) -> PipelineRun:
    """``python -m pipeline --config CONFIG --duration D --out OUT ARGS``, the config holding the
    embedded server's address and `extra`'s blocks (``impairment``, ``probe``...); `env`: more
    environment (a fault such as ``ECHOPROOF_FAULT_FREEZE``); `watch(pid, elapsed_s)` is called
    every `watch_every_s` while the run lasts (its first call at 0)."""
    out.mkdir(parents=True)
    config: dict[str, Any] = {
        "livekit": {"url": f"ws://127.0.0.1:{free_port()}", "api_key": API_KEY,
                    "api_secret": API_SECRET},
        **extra,
    }  # fmt: skip
    config_path = work / "config.json"
    config_path.write_text(json.dumps(config))
    command = [sys.executable, "-m", "pipeline", "--config", str(config_path),
               "--duration", f"{duration_s:g}", "--out", str(out), *args]  # fmt: skip
    env = {**os.environ, **(env or {}), "ECHOPROOF_SIGNING_KEY": str(work / "signing-key.pem")}
    started = time.monotonic()
    stderr_path = work / "stderr.txt"
    with (work / "stdout.txt").open("w") as stdout, stderr_path.open("w") as stderr:
        proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=stdout, stderr=stderr, start_new_session=True
        )
        try:
            returncode = _wait(proc, started + duration_s + OVERRUN_S, watch, watch_every_s)
        except subprocess.TimeoutExpired:
            returncode = -signal.SIGKILL
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the run's server and workers, if left
            proc.wait()
    wall_s = round(time.monotonic() - started, 1)
    run_dirs = sorted(p for p in out.iterdir() if p.is_dir())
    done = PipelineRun(returncode, wall_s, run_dirs[0] if run_dirs else None)
    if wall_s >= duration_s + OVERRUN_S:
        done.error = f"overran {duration_s + OVERRUN_S:g} s and was killed"
    if exit_status(returncode) == "ERROR":  # keep what it said
        done.stderr_tail = stderr_path.read_text(errors="replace").strip().splitlines()[-5:]
    return done


def _wait(
    proc: subprocess.Popen[bytes],
    deadline: float,
    watch: Callable[[int, float], None] | None,
    every_s: float,
) -> int:
    """`proc`'s exit code, waiting until the monotonic `deadline`, calling `watch` on the way."""
    started = time.monotonic()
    while True:
        now = time.monotonic()
        if watch is not None:
            watch(proc.pid, now - started)
        step = deadline - now if watch is None else min(every_s, deadline - now)
        try:
            return proc.wait(timeout=max(step, 0.0))
        except subprocess.TimeoutExpired:
            if time.monotonic() >= deadline:
                raise


@contextlib.contextmanager
def hogs(count: int) -> Iterator[None]:
    """`count` busy-looping Python processes (normal priority) for the block; killed after it."""
    procs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
        for _ in range(count)
    ]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()


def remove(out: Path) -> None:
    """Free the disk a run's folders took; its figures are read by then."""
    shutil.rmtree(out, ignore_errors=True)
