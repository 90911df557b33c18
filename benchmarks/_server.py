"""What several benchmarks share: the embedded server in a child process (for asyncio code or
plain), CPU time from /proc, the project's logs silenced while a benchmark prints its own
table."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import selectors
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from loguru import logger

ROOT = Path(__file__).resolve().parent.parent


@contextlib.asynccontextmanager
async def sfu_process(*args: str, root: Path = ROOT) -> AsyncIterator[tuple[str, int]]:
    """``python -m echoproof.sfu --port 0 ARGS`` in a child process: (its URL, its pid); stopped
    on exit.

    A process of its own, as users run it: in the benchmark's process its forwarding would
    compete with the agents for one event loop and one GIL. ``root``: the source tree whose
    server runs (another commit's checkout, for a comparison, where it may still be the
    top-level ``sfu``), with this interpreter.
    """
    module = "echoproof.sfu" if (root / "echoproof" / "sfu").is_dir() else "sfu"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, "--port", "0", "--log-level", "WARNING", *args,
        cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            line = (await proc.stdout.readline()).decode()
        match = re.search(r"ws://\S+", line)
        if not match:
            raise RuntimeError(f"the embedded server printed no URL (got {line!r})")
        yield match.group(0), proc.pid
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                async with asyncio.timeout(20):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()


@contextlib.contextmanager
def sfu_server(api_key: str, api_secret: str) -> Iterator[tuple[str, int]]:
    """A fresh embedded server process for code without an event loop: (its URL, its pid)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "echoproof.sfu", "--port", "0", "--api-key", api_key,
         "--api-secret", api_secret, "--log-level", "WARNING"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            line = proc.stdout.readline() if sel.select(timeout=30) else ""
        match = re.search(r"ws://\S+", line)
        if not match:
            raise RuntimeError(f"the embedded server printed no URL within 30 s (got {line!r})")
        yield match.group(0), proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def cpu_seconds(pid: int) -> float:
    """utime+stime of a whole process (all its threads, live and ended); NaN once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def quiet_logs(*packages: str) -> Iterator[None]:
    """The packages' loguru logs are off inside the block, back on after it."""
    for name in packages:
        logger.disable(name)
    try:
        yield
    finally:
        for name in packages:
            logger.enable(name)
