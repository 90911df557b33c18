"""A conversation's life, whatever its kind: open its evidence, talk within the run's time bound,
close the evidence with the status and the reason it ended (`BoundedRun`), and the `Outcome` the
run reports. The tone conversation (`pipeline.tones.conversation`) and the conversation with an
agent under test (`pipeline.agent.conversation`) are its two kinds.
"""

from __future__ import annotations

import abc
import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loguru import logger

from echoproof.contract import Manifest
from pipeline.bounds import run_bound_s
from pipeline.config import Config
from pipeline.console.live import Counters
from pipeline.errors import ConnectError
from pipeline.gate import Begins, Gate, StartGate, StopSignal
from pipeline.recording import evidence, realtime


@dataclass
class Outcome:
    """One conversation's result: its run folder, how it ended, and each speaker's counters."""

    run_id: str
    run_dir: Path
    status: str
    reason: str | None
    customer: Counters
    support: Counters
    # Filled in by verification (pipeline.__main__), which runs after capture.
    passed: bool | None = None
    failures: list[str] = field(default_factory=list)
    verdict: str | None = None  # passed, failed, inconclusive
    verdict_reason: str | None = None  # inconclusive: the host stall


class BoundedRun(abc.ABC):
    """A conversation's life: open its evidence, talk within the run's time bound, and close
    the evidence whatever happened, with the status and the reason it ended."""

    config: Config
    run_id: str
    room: str
    embedded: bool
    server_pid: int | None
    outcome: Outcome
    manifest: evidence.ManifestFile
    _closers: list[Any]
    _realtime: realtime.Realtime | None
    # the reason recorded when the run ends before anyone it talks to has joined
    not_joined = "the run ended before the agents joined."

    async def run(self, stop: StopSignal, view: Begins, gate: Gate | None = None) -> None:
        """Talk for the configured duration (or until stopped), then close the evidence.

        With a `gate`, talking starts at the instant it gives (see `StartGate`).
        """
        status: str = "failed"
        reason: str | None = self.not_joined
        gate = gate or StartGate(1)
        self._gated = False
        try:
            self._open()
            async with asyncio.timeout(run_bound_s(self.config)):
                status, reason = await self._talk(stop, view, gate)
        except ConnectError as exc:
            status, reason = "failed", str(exc)
        except TimeoutError:
            status = "failed"
            reason = f"the run exceeded its time bound of {run_bound_s(self.config):g} s."
        except asyncio.CancelledError:
            status, reason = "interrupted", stop.reason or "the run was cancelled."
            raise
        except Exception as exc:
            status, reason = "failed", f"unexpected error: {exc!r}."
            raise
        finally:
            if not self._gated:
                gate.leave()
            await self._close(status, reason)

    @abc.abstractmethod
    def _open(self) -> None:
        """Create the run folder, every evidence file and the manifest (status running)."""

    @abc.abstractmethod
    async def _talk(self, stop: StopSignal, view: Begins, gate: Gate) -> tuple[str, str | None]:
        """Join, talk and leave; the run's status and the reason it ended."""

    @abc.abstractmethod
    async def _close(self, status: str, reason: str | None) -> None:
        """Close every evidence file and finish the manifest with `status` and `reason`."""

    def _manifest(self, mode: str, **fields: Any) -> Manifest:
        """The manifest as a run starts: what every run records, and `fields` (its kind's)."""
        c = self.config
        now_ns, now = time.monotonic_ns(), datetime.now(UTC)
        return Manifest(
            run_id=self.run_id,
            room=self.room,
            server_url=c.ws_url,
            embedded_server=self.embedded,
            mode=mode,
            host={"file": evidence.HOST, "server_sampled": self.server_pid is not None},
            burst={"duration_s": c.burst_s, "ramp_s": c.ramp_s, "amplitude": c.amplitude},
            clock={"monotonic_ns": now_ns, "wall": evidence.utc_iso(now)},
            started_at=evidence.utc_iso(now),
            duration_s=c.duration_s,
            versions=evidence.versions(),
            config=c.public(),
            fleet=None if c.fleet_id is None else {"id": c.fleet_id, "size": c.pairs},
            **fields,
        )

    def _finish(self, status: str, reason: str | None, **fields: Any) -> None:
        """Close every evidence file, record the outcome, finish the manifest with `fields`."""
        for closer in self._closers:
            closer.close()
        self.outcome.status, self.outcome.reason = status, reason
        if hasattr(self, "manifest"):
            rt = None if self._realtime is None else self._realtime.as_dict()
            self.manifest.finish(status, reason, realtime=rt, **fields)
        log = logger.info if status == "complete" else logger.warning
        log("run {}: {}{}", self.run_id, status, "" if reason is None else f" ({reason})")
