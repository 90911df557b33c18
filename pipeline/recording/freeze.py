"""A host freeze on purpose (tests and benchmarks): every process of the run stopped at once.

`ECHOPROOF_FAULT_FREEZE=AT_S:DURATION_S` stops the capture process and every process under it
(its conversation workers, the embedded server it started, an agent worker it started) with
SIGSTOP, AT_S seconds into the talk, and resumes them with SIGCONT DURATION_S later: what a VM
pause or a burst of CPU steal does to a machine, while packets wait in socket buffers. A process
cannot resume itself, so a helper process does both (`pipeline.recording._freezer`); it ignores
SIGINT and SIGTERM while the run stands still, so that stopping the run never leaves it stopped.
The fault is read with the config (`pipeline.config.faults`) and recorded in the manifest.

    async with Freezer(fault, start_ns):   # around the talk; waits for the helper at the end
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

from echoproof.aiotasks import AsyncClosing
from pipeline.config.faults import FreezeFault


class Freezer(AsyncClosing):
    """The helper process that freezes this process's tree once; an `async with` object whose
    close is safe twice: it waits for the helper (a freeze under way ends on its own)."""

    def __init__(self, fault: FreezeFault, start_ns: int) -> None:
        self._fault = fault
        self._start_ns = start_ns
        self._proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Freezer:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(Path(__file__).with_name("_freezer.py")),
            str(os.getpid()),
            str(self._start_ns + round(self._fault.at_s * 1e9)),
            f"{self._fault.duration_s:.6f}",
            start_new_session=True,  # a Ctrl-C for the run's group is not its business
        )
        return self

    async def aclose(self) -> None:
        """Cancel a freeze not begun yet; wait for one under way to end."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGUSR1)  # before the freeze: give up; during: ignored
        await proc.wait()
