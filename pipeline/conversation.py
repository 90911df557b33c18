"""One conversation: two agents in one room, and the run folder that holds what they heard.

`Conversation(config, run_id, ...).run(stop, view, gate)` opens the run folder and its evidence
(manifest status `running`), has both agents join and wait for each other, starts talking at the
instant the `gate` gives, lets the last frames arrive, then closes the evidence. It never raises
for a run-time fault: it ends with status `complete`, `interrupted` (the `StopSignal` was set) or
`failed` (lost the server, was removed from the room by it, could not join, ran past its time
bound), and its `Outcome` and manifest say so.
"""

from __future__ import annotations

import abc
import asyncio
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from loguru import logger

import dsp
from echoproof.aiotasks import cancel_and_wait
from echoproof.contract import CHANNELS, FRAME_SAMPLES, MANIFEST_SCHEMA, ROLES, SAMPLE_RATE
from pipeline import evidence, probe, realtime
from pipeline.agent import Agent
from pipeline.bounds import TAIL_MIN_S, run_bound_s, tail_max_s
from pipeline.config import Config
from pipeline.errors import ConnectError, PipelineError
from pipeline.gate import Begins, Gate, StartGate, StopSignal
from pipeline.host import HostMonitor
from pipeline.impairment import IDENTITY_PREFIXES
from pipeline.live import Counters, PairView
from pipeline.rooms import room_name, token
from pipeline.voice import Voice, schedule, total_frames

T = TypeVar("T")
# RTC statistics are sampled this often during a conversation (and once at the end).
STATS_EVERY_S = 5.0
# After a settled start, no RTC statistics for this long: the SDK (1.2.1) can abort the process
# in get_rtc_stats soon after a track's first audio when the track sat silent for over ~0.5 s
# (2 of 3 tries after 1 s, 3 of 3 after 2 s; never with 0.3 s). Sampling every 5 s from the
# start has never hit it.
STATS_GRACE_S = 5.0


@dataclass
class Outcome:
    """One conversation's result: its run folder, how it ended, and each agent's counters."""

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
    manifest: evidence.Manifest
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

    def _manifest_fields(self, mode: str, **fields: Any) -> dict[str, Any]:
        """The manifest as a run starts: what every run records, then `fields`."""
        c = self.config
        now_ns, now = time.monotonic_ns(), datetime.now(UTC)
        return {
            "schema": MANIFEST_SCHEMA,
            "run_id": self.run_id,
            "room": self.room,
            "server_url": c.ws_url,
            "embedded_server": self.embedded,
            "mode": mode,
            "sample_rate": SAMPLE_RATE,
            "channels": CHANNELS,
            "frame_samples": FRAME_SAMPLES,
            **fields,
            "host": {"file": evidence.HOST, "server_sampled": self.server_pid is not None},
            "burst": {"duration_s": c.burst_s, "ramp_s": c.ramp_s, "amplitude": c.amplitude},
            "clock": {"monotonic_ns": now_ns, "wall": evidence.utc_iso(now)},
            "started_at": evidence.utc_iso(now),
            "duration_s": c.duration_s,
            "versions": evidence.versions(),
            "config": c.public(),
        }

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


class Conversation(BoundedRun):
    """Two agents in one room, and the run folder that holds what they heard."""

    def __init__(
        self, config: Config, run_id: str, *, embedded: bool, server_pid: int | None = None
    ) -> None:
        self.config = config
        self.server_pid = server_pid
        self.run_id = run_id
        self.room = room_name(run_id)
        self.run_dir = config.out_dir / run_id
        self.embedded = embedded
        self.identities = {r: f"{IDENTITY_PREFIXES[r]}{uuid.uuid4()}" for r in ROLES}
        self.tones = {"customer": config.customer_hz, "support": config.support_hz}
        self.agents: dict[str, Agent] = {}
        self.view = PairView(run_id, Counters(), Counters())
        self.outcome = Outcome(
            run_id, self.run_dir, "running", None, self.view.customer, self.view.support
        )
        self._stats: dict[str, dict[str, Any]] = {
            r: {"final": {"publisher_stats": [], "subscriber_stats": []}, "samples": []}
            for r in ROLES
        }
        self._closers: list[Any] = []
        self._stats_from_ns = 0  # see STATS_GRACE_S
        self._realtime: realtime.Realtime | None = None  # how the talk was scheduled

    # -- phases --------------------------------------------------------------------------------

    def _open(self) -> None:
        """Create the run folder, every evidence file and the manifest (status running)."""
        self.run_dir.mkdir(parents=True, exist_ok=False)
        d = self.run_dir
        self.events = evidence.EventLog(d / evidence.EVENTS)
        self.wavs = {r: evidence.WavWriter(d / evidence.wav_name(r)) for r in ROLES}
        self.arrivals = {r: evidence.TimingWriter(d / evidence.arrivals_name(r)) for r in ROLES}
        self.sent = {r: evidence.TimingWriter(d / evidence.sent_name(r)) for r in ROLES}
        self.bursts = {r: evidence.BurstsWriter(d / evidence.bursts_name(r)) for r in ROLES}
        self.host = evidence.HostWriter(d / evidence.HOST)
        self._closers = [
            self.events,
            self.host,
            *self.wavs.values(),
            *self.arrivals.values(),
            *self.sent.values(),
            *self.bursts.values(),
        ]
        c = self.config
        self.manifest = evidence.Manifest(
            d / evidence.MANIFEST,
            {
                **self._manifest_fields(
                    c.mode,
                    participants={
                        r: {"identity": self.identities[r], "tone_hz": self.tones[r]} for r in ROLES
                    },
                    directions=evidence.directions(),
                ),
                "probe": None if c.probe is None else probe.manifest_entry(c.probe),
            },
        )
        self._probe_signal: probe.Int16Array | None = None
        if c.probe is not None:  # one probe signal for both senders
            self._probe_signal = probe.prepare(c.probe, (c.customer_hz, c.support_hz))
            probe.write_signal(d, self._probe_signal)
        self._voices = {r: self._voice(r) for r in ROLES}
        for role in ROLES:
            peer = evidence.other(role)
            agent = Agent(
                role,
                self.identities[role],
                tone_hz=self.tones[role],
                peer_identity=self.identities[peer],
                peer_hz=self.tones[peer],
                queue_size_ms=c.queue_size_ms,
                red=c.red,
                events=self.events,
            )
            self.agents[role] = agent
        # The live view and the outcome read the agents' own counters.
        self.view.customer = self.outcome.customer = self.agents["customer"].counters
        self.view.support = self.outcome.support = self.agents["support"].counters
        logger.info("run {}: room {}, evidence in {}", self.run_id, self.room, self.run_dir)

    async def _talk(self, stop: StopSignal, view: Begins, gate: Gate) -> tuple[str, str | None]:
        c, agents = self.config, self.agents
        names = {"customer": "Customer", "support": "Customer Support"}
        tokens = {r: token(c, self.room, self.identities[r], names[r]) for r in ROLES}
        await _all(agents[r].join(c.ws_url, tokens[r], c.connect_timeout_s) for r in ROLES)
        await _all(agents[r].wait_for_peer(c.connect_timeout_s) for r in ROLES)
        for r in ROLES:
            agents[r].start_recording(self.wavs[r], self.arrivals[r])

        voices = self._voices
        n_frames = total_frames(c.duration_s)
        self._gated = True
        start_ns = await _unless_stopped(gate.ready(), stop)
        if start_ns is None:
            return "interrupted", stop.reason
        if gate.settles:
            self._stats_from_ns = start_ns + int(STATS_GRACE_S * 1e9)
        view.begin(start_ns, c.duration_s)
        self.events.write("run", "conversation_started", start_ns=start_ns, frames=n_frames)
        logger.info(
            "run {}: both agents hear each other; talking for {:g} s", self.run_id, c.duration_s
        )

        def halted() -> bool:
            return stop.is_set() or self._lost() is not None

        stall = c.send_stall
        stalls = {r: agents[r].stalls for r in ROLES}
        sampler = asyncio.create_task(self._sample_stats(), name=f"stats-{self.run_id}")
        self._realtime = realtime.enter()  # SCHED_FIFO and a frozen heap: see pipeline.realtime
        try:
            async with HostMonitor(self.host, stalls, server_pid=self.server_pid):
                async with asyncio.TaskGroup() as tg:
                    for r in ROLES:
                        tg.create_task(
                            agents[r].speak(
                                voices[r],
                                start_ns=start_ns,
                                n_frames=n_frames,
                                sent=self.sent[r],
                                bursts=self.bursts[r],
                                stop=halted,
                                stall=None
                                if stall is None or stall.role != r
                                else (round(stall.at_s * 100), stall.duration_s),
                            ),
                            name=f"{r}-speak-{self.run_id}",
                        )
                if not halted():
                    await self._tail(halted)
        finally:
            realtime.leave()
            await cancel_and_wait(sampler)
        if stop.is_set():
            return "interrupted", stop.reason
        lost = self._lost()
        if lost is not None:
            return "failed", lost
        return "complete", None

    def _voice(self, role: str) -> Voice:
        c = self.config
        waveform = dsp.burst(
            self.tones[role], c.burst_s, SAMPLE_RATE, amplitude=c.amplitude, ramp_s=c.ramp_s
        )
        bursts = schedule(
            role,
            mode=c.mode,
            tone_hz=self.tones[role],
            duration_s=c.duration_s,
            burst_samples=len(waveform),
            period_s=c.period_s,
        )
        if c.probe is None or self._probe_signal is None:
            return Voice(bursts, waveform)
        pieces = probe.plan(bursts, c.probe.share, len(self._probe_signal))
        probe.write_pieces(self.run_dir, role, pieces)
        fault = c.probe.rate_fault
        played = probe.ProbeVoice(
            pieces, self._probe_signal, fault if fault is not None and fault.role == role else None
        )
        return Voice(bursts, waveform, played)

    async def _tail(self, halted: Any) -> None:
        """Let the last frames arrive: at least TAIL_MIN_S, until both received what was sent."""
        cu, su = self.agents["customer"].counters, self.agents["support"].counters
        t0 = time.monotonic()
        while not halted():
            waited = time.monotonic() - t0
            caught_up = (
                su.frames_received >= cu.frames_sent and cu.frames_received >= su.frames_sent
            )
            if waited >= tail_max_s(self.config) or (waited >= TAIL_MIN_S and caught_up):
                return
            await asyncio.sleep(0.02)

    def _lost(self) -> str | None:
        for agent in self.agents.values():
            reason = agent.lost(self.config.connect_timeout_s)
            if reason is not None:
                return reason
        return None

    async def _sample_stats(self) -> None:
        while True:
            # the first sample once the grace after a settled start is over (STATS_GRACE_S)
            wait_ns = max(STATS_EVERY_S * 1e9, self._stats_from_ns - time.monotonic_ns())
            await asyncio.sleep(wait_ns / 1e9)
            for role, agent in self.agents.items():
                t_ns = time.monotonic_ns()
                stats = await agent.rtc_stats()
                if stats is not None:
                    self._stats[role]["samples"].append({"t_ns": t_ns, **stats})

    async def _close(self, status: str, reason: str | None) -> None:
        """Stop recording, take the final statistics, leave, close every file, finish the manifest.

        Runs even when the conversation is cancelled; each step is safe if an earlier one failed.
        """
        try:
            for agent in self.agents.values():
                await agent.stop_receiving()
            for role, agent in self.agents.items():
                if time.monotonic_ns() < self._stats_from_ns:
                    logger.info("run {}: no final RTC statistics this early", self.run_id)
                    break
                stats = await agent.rtc_stats()
                if stats is not None:
                    self._stats[role]["final"] = stats
            if self._closers:
                evidence.write_json_atomic(self.run_dir / evidence.RTC_STATS, self._stats)
            for agent in self.agents.values():
                await agent.aclose()
        finally:
            self._finish(status, reason)


async def _unless_stopped(waiting: Awaitable[T], stop: StopSignal) -> T | None:
    """What `waiting` gives, or None once `stop` is set first."""
    wait = asyncio.ensure_future(waiting)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((wait, stopped), return_when=asyncio.FIRST_COMPLETED)
    finally:
        await cancel_and_wait(wait, stopped)
    return wait.result() if wait.done() and not wait.cancelled() else None


async def _all(coros: Any) -> None:
    """Await every coroutine at once; raise the first PipelineError after all have finished."""
    results = await asyncio.gather(*coros, return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException) and not isinstance(r, PipelineError):
            raise r
    for r in results:
        if isinstance(r, PipelineError):
            raise r
