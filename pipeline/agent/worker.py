"""The agent's worker process, when the run starts it (`--agent-cmd`): one per run, serving every
conversation's room.

`AgentWorker(cmd, config, log_path, run_dirs)` runs the shell command in a process group of its
own with the run's LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET in its environment. Its
stdout and stderr go, line by line, through this process into `log_path` (beside the run
folders), with the API key and secret replaced by `<redacted>` should the worker print them.
`wait_registered` returns once the worker says it registered (livekit-agents logs `registered
worker`), and raises when it exits first or takes too long; `stop` ends it: SIGINT (the
framework's own graceful shutdown), then SIGTERM, then SIGKILL, each after a bounded wait.

As an `async with` object it starts and waits for registration on entry; on exit it stops the
worker and hands its evidence to every run folder it served (`hand_over`): its log as
`agent-worker.log`, and its record, complete now, as the manifest's `agent.worker`. Its
conversations, here or in worker processes, know it by a `WorkerRef`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
import shutil
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loguru import logger

from echoproof.aiotasks import AsyncClosing, cancel_and_wait
from echoproof.contract import MANIFEST, WORKER_LOG
from pipeline.config import Config
from pipeline.errors import ConnectError
from pipeline.recording.evidence import write_json_atomic

# livekit-agents logs this once the server accepted its registration (any version since 0.x).
REGISTERED = re.compile(r"registered worker", re.IGNORECASE)
# How long each signal may take before the next, stronger one.
STOP_WAITS_S = {signal.SIGINT: 10.0, signal.SIGTERM: 5.0, signal.SIGKILL: 5.0}
_LINE_LIMIT = 1 << 20


@dataclasses.dataclass(frozen=True)
class WorkerRef:
    """The run's agent worker as its conversations see it (picklable, for worker processes): its
    process, and its record (`AgentWorker.record`) as it was when they started."""

    pid: int
    record: dict[str, Any]

    def running(self) -> bool:
        """Whether its process is still there (neither gone nor a zombie)."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return False
        return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


class AgentWorker(AsyncClosing):
    """The worker process of the agent under test; see the module docstring."""

    def __init__(
        self, cmd: str, config: Config, log_path: Path, run_dirs: Sequence[Path] = ()
    ) -> None:
        self.cmd = cmd
        self.log_path = log_path
        self.run_dirs = list(run_dirs)
        self._start_timeout_s = 0.0 if config.agent is None else config.agent.worker_start_timeout_s
        self._secrets = [s for s in (config.api_secret, config.api_key) if s]
        self._env = {
            **os.environ,
            "LIVEKIT_URL": config.ws_url,
            "LIVEKIT_API_KEY": config.api_key,
            "LIVEKIT_API_SECRET": config.api_secret,
        }
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._registered = asyncio.Event()
        self.started_ns: int | None = None
        self.registered_ns: int | None = None
        self.exited_ns: int | None = None  # when it exited on its own (not stopped by us)
        self.stopped_by: str | None = None  # the signal that ended it, when we stopped it

    async def __aenter__(self) -> AgentWorker:
        try:
            await self.start()
            await self.wait_registered(self._start_timeout_s)
        except BaseException:
            await self.stop()
            raise
        return self

    async def aclose(self) -> None:
        """Stop the worker and hand its evidence to every run folder; safe to call twice."""
        await self.stop()
        served = [d for d in self.run_dirs if (d / MANIFEST).is_file()]
        for run_dir in served:
            self.hand_over(run_dir)
        if served:
            self.log_path.unlink(missing_ok=True)  # each run folder holds a copy now

    def ref(self) -> WorkerRef:
        """What its conversations know of it."""
        assert self._proc is not None, "start() first"
        return WorkerRef(self._proc.pid, self.record())

    def hand_over(self, run_dir: Path) -> None:
        """Copy the log into `run_dir` and complete its manifest's `agent.worker` with the
        record as it is now (what its conversation wrote there, its scheduling, is kept)."""
        with contextlib.suppress(FileNotFoundError):
            shutil.copyfile(self.log_path, run_dir / WORKER_LOG)
        path = run_dir / MANIFEST
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
            agent = manifest["agent"]
        except (OSError, ValueError, KeyError, TypeError):
            return  # not a manifest of an agent run: nothing of ours to complete
        agent["worker"] = {**(agent.get("worker") or {}), **self.record()}
        write_json_atomic(path, manifest)

    async def start(self) -> None:
        """Start the command; its output goes to the log file from now on."""
        log = self.log_path.open("w", encoding="utf-8")
        try:
            self._proc = await asyncio.create_subprocess_shell(
                self.cmd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=self._env,
                start_new_session=True,  # its own process group: stop() signals the whole tree
                limit=_LINE_LIMIT,
            )
        except OSError as exc:
            log.close()
            raise ConnectError(f"could not start the agent worker ({exc.strerror}).") from None
        self.started_ns = time.monotonic_ns()
        logger.info(
            "agent worker started (pid {}); its output goes to {}", self._proc.pid, log.name
        )
        self._reader = asyncio.create_task(self._copy(log), name="agent-worker-log")

    @property
    def returncode(self) -> int | None:
        """Its exit code once it exited, else None."""
        return None if self._proc is None else self._proc.returncode

    def redact(self, text: str) -> str:
        """`text` with the API key and secret replaced."""
        for s in self._secrets:
            text = text.replace(s, "<redacted>")
        return text

    async def _copy(self, log: Any) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        out = self._proc.stdout
        try:
            while True:
                try:
                    raw = await out.readline()
                except ValueError:  # a line beyond the limit: take what is buffered
                    raw = await out.read(_LINE_LIMIT)
                if not raw:
                    break
                line = raw.decode("utf-8", "replace")
                log.write(self.redact(line))
                log.flush()
                if not self._registered.is_set() and REGISTERED.search(line):
                    self.registered_ns = time.monotonic_ns()
                    self._registered.set()
            await self._proc.wait()
            if self.stopped_by is None:
                self.exited_ns = time.monotonic_ns()
                logger.warning("the agent worker exited with code {}", self._proc.returncode)
        finally:
            log.close()

    async def wait_registered(self, timeout_s: float) -> None:
        """Return once the worker registered; ConnectError when it exits first or takes longer."""
        assert self._reader is not None, "start() first"
        registered = asyncio.ensure_future(self._registered.wait())
        try:
            await asyncio.wait(
                (registered, self._reader), timeout=timeout_s, return_when="FIRST_COMPLETED"
            )
        finally:
            await cancel_and_wait(registered)
        if self._registered.is_set():
            logger.info("the agent worker registered")
            return
        if self._reader.done():
            raise ConnectError(
                f"the agent worker exited with code {self.returncode} before it registered; "
                f"see {self.log_path}."
            )
        raise ConnectError(
            f"the agent worker did not register within {timeout_s:g} s (no 'registered worker' "
            f"in its output); see {self.log_path}."
        )

    async def stop(self) -> None:
        """End the worker: SIGINT, SIGTERM, SIGKILL to its process group, each waited for."""
        proc = self._proc
        if proc is None:
            return
        for sig, wait_s in STOP_WAITS_S.items():
            if proc.returncode is not None:
                break
            self.stopped_by = sig.name
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), wait_s)
        if proc.returncode is None:
            logger.warning("the agent worker (pid {}) did not end after SIGKILL", proc.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # what it left behind in its group
        if self._reader is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._reader), 5)
            except TimeoutError:
                await cancel_and_wait(self._reader)

    def record(self) -> dict[str, Any]:
        """The manifest's `agent.worker`: when it started, registered, exited; how it ended."""
        return {
            "log": WORKER_LOG,
            "started_ns": self.started_ns,
            "registered_ns": self.registered_ns,
            "exit_code": self.returncode,
            "exited_ns": self.exited_ns,
            "stopped_by": self.stopped_by,
        }
