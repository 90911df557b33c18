"""One tone conversation: our two speakers in one room, and the run folder of what they heard.

`Conversation(config, run_id, ...).run(stop, view, gate)` opens the run folder and its evidence
(manifest status `running`), has both speakers join and wait for each other, starts talking at
the instant the `gate` gives, lets the last frames arrive, then closes the evidence. It never
raises for a run-time fault: it ends with status `complete`, `interrupted` (the `StopSignal` was
set) or `failed` (lost the server, was removed from the room by it, could not join, ran past its
time bound), and its `Outcome` and manifest say so.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from loguru import logger

import dsp
from echoproof.aiotasks import cancel_and_wait
from echoproof.contract import CUSTOMER, ROLES, SAMPLE_RATE, SUPPORT, other
from pipeline.bounded_run import BoundedRun, Outcome
from pipeline.bounds import TAIL_MIN_S, tail_max_s
from pipeline.config import Config
from pipeline.console.live import Counters, PairView
from pipeline.errors import PipelineError
from pipeline.gate import Begins, Gate, StopSignal
from pipeline.recording import evidence, realtime
from pipeline.recording.host import HostMonitor
from pipeline.rooms import room_name, token
from pipeline.script import FRAMES_PER_S, Int16Array, Script, total_frames
from pipeline.speaker import NAMES, Speaker, new_identity
from pipeline.tones import probe
from pipeline.tones.schedule import Burst, burst_script, schedule

T = TypeVar("T")
# RTC statistics are sampled this often during a conversation (and once at the end).
STATS_EVERY_S = 5.0
# After a settled start, no RTC statistics for this long: the SDK (1.2.1) can abort the process
# in get_rtc_stats soon after a track's first audio when the track sat silent for over ~0.5 s
# (2 of 3 tries after 1 s, 3 of 3 after 2 s; never with 0.3 s). Sampling every 5 s from the
# start has never hit it.
STATS_GRACE_S = 5.0


class Conversation(BoundedRun):
    """Our two speakers in one room, and the run folder that holds what they heard."""

    def __init__(
        self, config: Config, run_id: str, *, embedded: bool, server_pid: int | None = None
    ) -> None:
        self.config = config
        self.server_pid = server_pid
        self.run_id = run_id
        self.room = room_name(run_id)
        self.run_dir = config.out_dir / run_id
        self.embedded = embedded
        self.identities = {r: new_identity(r) for r in ROLES}
        self.tones = {CUSTOMER: config.customer_hz, SUPPORT: config.support_hz}
        self.speakers: dict[str, Speaker] = {}
        self.view = PairView(run_id, Counters(), Counters())
        self.outcome = Outcome(
            run_id, self.run_dir, "running", None, self.view.customer, self.view.support
        )
        self._stats = evidence.no_rtc_stats(ROLES)
        self._closers: list[Any] = []
        self._stats_from_ns = 0  # see STATS_GRACE_S
        self._realtime: realtime.Realtime | None = None  # how the talk was scheduled

    # -- phases --------------------------------------------------------------------------------

    def _open(self) -> None:
        """Create the run folder, every evidence file and the manifest (status running), then
        what each speaker will say, and the speakers."""
        self.run_dir.mkdir(parents=True, exist_ok=False)
        d, c = self.run_dir, self.config
        self.events = evidence.EventLog(d / evidence.EVENTS)
        self.wavs = {r: evidence.WavWriter(d / evidence.wav_name(r)) for r in ROLES}
        self.arrivals = {r: evidence.TimingWriter(d / evidence.arrivals_name(r)) for r in ROLES}
        self.sent = {r: evidence.TimingWriter(d / evidence.sent_name(r)) for r in ROLES}
        self.bursts = {r: evidence.BurstsWriter(d / evidence.bursts_name(r)) for r in ROLES}
        self.host = evidence.HostWriter(d / evidence.HOST)
        self.samples = evidence.StatsSamples(d / evidence.RTC_SAMPLES)
        self._closers = [
            self.events,
            self.samples,
            self.host,
            *self.wavs.values(),
            *self.arrivals.values(),
            *self.sent.values(),
            *self.bursts.values(),
        ]
        participants = {
            r: {"identity": self.identities[r], "tone_hz": self.tones[r]} for r in ROLES
        }
        self.manifest = evidence.ManifestFile(
            d / evidence.MANIFEST,
            self._manifest(
                c.mode,
                participants=participants,
                directions=evidence.directions(),
                probe=None if c.probe is None else probe.manifest_entry(c.probe),
                rtc_samples=evidence.RTC_SAMPLES,
            ),
        )
        self._scripts = self._write_scripts()
        for role in ROLES:
            self.speakers[role] = Speaker(
                role,
                self.identities[role],
                tone_hz=self.tones[role],
                peer_identity=self.identities[other(role)],
                peer_hz=self.tones[other(role)],
                queue_size_ms=c.queue_size_ms,
                red=c.red,
                events=self.events,
            )
        # The live view and the outcome read the speakers' own counters.
        self.view.customer = self.outcome.customer = self.speakers[CUSTOMER].counters
        self.view.support = self.outcome.support = self.speakers[SUPPORT].counters
        logger.info("run {}: room {}, evidence in {}", self.run_id, self.room, self.run_dir)

    async def _talk(self, stop: StopSignal, view: Begins, gate: Gate) -> tuple[str, str | None]:
        c = self.config
        await self._join()
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

        stalls = {r: self.speakers[r].stalls for r in ROLES}
        sampler = asyncio.create_task(self._sample_stats(), name=f"stats-{self.run_id}")
        # SCHED_FIFO and a frozen heap: see pipeline.recording.realtime
        self._realtime = realtime.enter()
        try:
            async with HostMonitor(self.host, stalls, server_pid=self.server_pid):
                await self._speak(start_ns, n_frames, halted)
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

    async def _join(self) -> None:
        """Both speakers join, hear each other and record what they hear."""
        c, speakers = self.config, self.speakers
        tokens = {r: token(c, self.room, self.identities[r], NAMES[r]) for r in ROLES}
        await _all(speakers[r].join(c.ws_url, tokens[r], c.connect_timeout_s) for r in ROLES)
        await _all(speakers[r].wait_for_peer(c.connect_timeout_s) for r in ROLES)
        for r in ROLES:
            speakers[r].start_recording(self.wavs[r], self.arrivals[r])

    async def _speak(self, start_ns: int, n_frames: int, halted: Callable[[], bool]) -> None:
        """Both speakers say their scripts at once, frame 0 at `start_ns`, until `halted()`."""
        stall = self.config.send_stall
        async with asyncio.TaskGroup() as tg:
            for r in ROLES:
                tg.create_task(
                    self.speakers[r].speak(
                        self._scripts[r],
                        start_ns=start_ns,
                        n_frames=n_frames,
                        sent=self.sent[r],
                        said=self.bursts[r],
                        stop=halted,
                        stall=None
                        if stall is None or stall.role != r
                        else (round(stall.at_s * FRAMES_PER_S), stall.duration_s),
                    ),
                    name=f"{r}-speak-{self.run_id}",
                )

    def _write_scripts(self) -> dict[str, Script[Burst]]:
        """Each speaker's script; with a probe, its signal (one for both senders) and each
        sender's pieces written to the run folder."""
        c = self.config
        signal = None
        if c.probe is not None:
            signal = probe.prepare(c.probe, (c.customer_hz, c.support_hz))
            probe.write_signal(self.run_dir, signal)
        return {r: self._script(r, signal) for r in ROLES}

    def _script(self, role: str, probe_signal: Int16Array | None) -> Script[Burst]:
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
        if c.probe is None or probe_signal is None:
            return burst_script(bursts, waveform)
        pieces = probe.plan(bursts, c.probe.share, len(probe_signal))
        probe.write_pieces(self.run_dir, role, pieces)
        fault = c.probe.rate_fault
        played = probe.probe_script(
            pieces, probe_signal, fault if fault is not None and fault.role == role else None
        )
        return burst_script(bursts, waveform, played)

    async def _tail(self, halted: Callable[[], bool]) -> None:
        """Let the last frames arrive: at least TAIL_MIN_S, until both received what was sent."""
        cu, su = self.speakers[CUSTOMER].counters, self.speakers[SUPPORT].counters
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
        for speaker in self.speakers.values():
            reason = speaker.lost(self.config.connect_timeout_s)
            if reason is not None:
                return reason
        return None

    async def _sample_stats(self) -> None:
        while True:
            # the first sample once the grace after a settled start is over (STATS_GRACE_S)
            wait_ns = max(STATS_EVERY_S * 1e9, self._stats_from_ns - time.monotonic_ns())
            await asyncio.sleep(wait_ns / 1e9)
            for role, speaker in self.speakers.items():
                t_ns = time.monotonic_ns()
                stats = await speaker.rtc_stats()
                if stats is not None:
                    self.samples.write(role, t_ns, stats)

    async def _close(self, status: str, reason: str | None) -> None:
        """Stop recording, take the final statistics, leave, close every file, finish the manifest.

        Runs even when the conversation is cancelled; each step is safe if an earlier one failed.
        """
        try:
            for speaker in self.speakers.values():
                await speaker.stop_receiving()
            for role, speaker in self.speakers.items():
                if time.monotonic_ns() < self._stats_from_ns:
                    logger.info("run {}: no final RTC statistics this early", self.run_id)
                    break
                stats = await speaker.rtc_stats()
                if stats is not None:
                    self._stats[role]["final"] = stats
            if self._closers:
                evidence.write_json_atomic(self.run_dir / evidence.RTC_STATS, self._stats)
            for speaker in self.speakers.values():
                await speaker.aclose()
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
