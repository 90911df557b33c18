"""A conversation with an agent under test: the Customer talks to a dispatched LiveKit agent.

`AgentConversation(config, run_id, ...)` is a `pipeline.run.Unit` like the tone conversation, for
a run with `config.agent`. It opens the run folder (manifest `mode: "agent"`), has the Customer
(a `pipeline.speaker.Speaker`) join, dispatches the agent by name (`pipeline.agent.dispatch`)
and waits, bounded, for it to join and publish audio. From the start instant the Customer says
its turns (`pipeline.agent.utterances`, placed by `pipeline.agent.live`), listening one answer
window after each, and records everything it hears, as in a tone run, and every transcription
the agent publishes in the room (`pipeline.agent.transcripts`). At the end it leaves, deletes
the dispatch and its room (which ends the agent's job there) and writes the manifest's `agent`
block: name, identity, kind, dispatch id, when it dispatched and when the agent joined, and the
worker's record.

The agent's worker, when the run starts it (`agent.cmd`), is the run's, one for every
conversation (`pipeline.agent.worker`): a conversation knows it by its `WorkerRef`, samples its
processes in `host.csv` while it talks, and notes their scheduling in `agent.worker`; the run
completes that record and adds the worker's log once it has stopped the worker.

A worker that dies mid-run does not stop the run: the turns it leaves unanswered are what the
report shows. A dispatch no worker takes ends the run as failed within `dispatch_timeout_s`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from loguru import logger

import dsp
from echoproof.aiotasks import cancel_and_wait
from echoproof.contract import (
    AGENT_MODE,
    CUSTOMER,
    SAMPLE_RATE,
    TRANSCRIPTION_TOPIC,
    agent_files,
)
from pipeline.agent import script as script_file
from pipeline.agent import utterances as say
from pipeline.agent.dispatch import create_dispatch, delete_dispatch
from pipeline.agent.live import LiveTurns
from pipeline.agent.transcripts import TranscriptRecorder, whose_track
from pipeline.agent.worker import WorkerRef
from pipeline.bounded_run import BoundedRun, Outcome
from pipeline.bounds import TAIL_MIN_S, run_bound_s, tail_max_s
from pipeline.config import Config
from pipeline.console.live import Counters, PairView
from pipeline.errors import ConnectError
from pipeline.gate import Begins, Gate, StopSignal
from pipeline.recording import evidence, realtime
from pipeline.recording.host import HostMonitor
from pipeline.rooms import delete_rooms, room_name, token
from pipeline.script import total_frames
from pipeline.speaker import NAMES, Speaker, new_identity


def utterances_of(config: Config) -> list[say.Utterance]:
    """What the Customer says: the script's lines, the `say` files, else its tone burst
    (ConfigError: a bad script or file)."""
    assert config.agent is not None
    if config.agent.script is not None:
        lines = script_file.load(config.agent.script)
        return [
            say.from_line(line, f"{config.agent.script} turn {i}") for i, line in enumerate(lines)
        ]
    if config.agent.say:
        return [say.load(p) for p in config.agent.say]
    waveform = dsp.burst(
        config.customer_hz,
        config.burst_s,
        SAMPLE_RATE,
        amplitude=config.amplitude,
        ramp_s=config.ramp_s,
    )
    return [say.tone(waveform, config.customer_hz)]


class AgentConversation(BoundedRun):
    """The Customer and a dispatched agent in one room, and the run folder of what it heard."""

    not_joined = "the run ended before the agent joined."

    def __init__(
        self,
        config: Config,
        run_id: str,
        *,
        embedded: bool,
        server_pid: int | None = None,
        worker: WorkerRef | None = None,
    ) -> None:
        assert config.agent is not None, "an agent under test is configured"
        self.config = config
        self.spec = config.agent
        self.run_id = run_id
        self.room = room_name(run_id)
        self.run_dir = config.out_dir / run_id
        self.embedded = embedded
        self.server_pid = server_pid
        self.identity = new_identity(CUSTOMER)
        self.utterances = utterances_of(config)
        self.turns = LiveTurns(
            self.utterances, duration_s=config.duration_s, window_s=self.spec.answer_window_s
        )
        self.view = PairView(run_id, Counters(), Counters(), agent=True)
        self.outcome = Outcome(
            run_id, self.run_dir, "running", None, self.view.customer, self.view.support
        )
        self.customer: Speaker | None = None
        self.worker = worker
        self.dispatch_id: str | None = None
        self.dispatched_ns: int | None = None
        self._agent_scheduling: dict[str, Any] | None = None
        self._recorder: asyncio.Task[None] | None = None
        self._transcribed: TranscriptRecorder | None = None
        self._closers: list[Any] = []
        self._stats = evidence.no_rtc_stats((CUSTOMER,))
        self._realtime: realtime.Realtime | None = None

    def _open(self) -> None:
        """The run folder, every evidence file, the manifest (status running)."""
        self.run_dir.mkdir(parents=True, exist_ok=False)
        d, c = self.run_dir, self.config
        self.events = evidence.EventLog(d / evidence.EVENTS)
        self.wav = evidence.WavWriter(d / evidence.wav_name(CUSTOMER))
        self.arrivals = evidence.TimingWriter(d / evidence.arrivals_name(CUSTOMER))
        self.sent = evidence.ClockedTimingWriter(d / evidence.sent_name(CUSTOMER))
        files = agent_files(worker_log=self.worker is not None)
        self.said = evidence.UtterancesWriter(
            d / str(files["utterances"]), self.utterances, self.sent
        )
        self.transcripts = evidence.TranscriptLog(d / str(files["transcripts"]))
        self.host = evidence.HostWriter(d / evidence.HOST)
        self._closers = [
            self.events, self.host, self.wav, self.arrivals, self.sent, self.said, self.transcripts
        ]  # fmt: skip
        self.manifest = evidence.ManifestFile(
            d / evidence.MANIFEST,
            self._manifest(
                AGENT_MODE,
                participants={CUSTOMER: {"identity": self.identity, "tone_hz": c.customer_hz}},
                directions=[],
                agent=self._agent_block(),
            ),
        )
        self.customer = Speaker(
            CUSTOMER,
            self.identity,
            tone_hz=c.customer_hz,
            peer_identity=None,  # the server names the agent's participant
            peer_hz=c.support_hz,
            queue_size_ms=c.queue_size_ms,
            red=c.red,
            events=self.events,
        )
        self.customer.on_heard = self.turns.heard.feed  # a barge-in waits for the agent's answer
        self.view.customer = self.outcome.customer = self.customer.counters
        self._transcribed = TranscriptRecorder(self.transcripts, whose_track(self.customer))
        self.customer.on_text_stream(TRANSCRIPTION_TOPIC, self._transcribed.handler)
        logger.info("run {}: room {}, evidence in {}", self.run_id, self.room, self.run_dir)

    def _agent_block(self) -> dict[str, Any]:
        """The manifest's `agent`: who was dispatched, when it joined, what its worker did."""
        joined = self._agent_joined()
        worker = None
        if self.worker is not None:
            worker = {**self.worker.record, "scheduling": self._agent_scheduling}
        return {
            "name": self.spec.name,
            "dispatch_id": self.dispatch_id,
            "dispatched_ns": self.dispatched_ns,
            "identity": None if joined is None else joined["identity"],
            "kind": None if joined is None else joined.get("kind"),
            "joined_ns": None if joined is None else joined["t_ns"],
            "answer_window_s": self.spec.answer_window_s,
            "files": agent_files(worker_log=self.worker is not None),
            "worker": worker,
        }

    def _agent_joined(self) -> dict[str, Any] | None:
        """The Customer's `participant_joined` event of the agent it heard (else the first)."""
        if not hasattr(self, "events"):
            return None
        heard = None if self.customer is None else self.customer.peer_identity
        joins = [
            e
            for e in self.events.events
            if e["agent"] == CUSTOMER and e["event"] == "participant_joined"
        ]
        for e in joins:
            if heard is None or e["identity"] == heard:
                return e
        return None

    async def _talk(self, stop: StopSignal, view: Begins, gate: Gate) -> tuple[str, str | None]:
        c, spec, customer = self.config, self.spec, self.customer
        assert customer is not None
        await customer.join(
            c.ws_url, token(c, self.room, self.identity, NAMES[CUSTOMER]), c.connect_timeout_s
        )
        self.dispatched_ns = time.monotonic_ns()
        self.dispatch_id = await create_dispatch(c, self.room, spec.name)
        await self._wait_for_agent(customer)

        n_frames = total_frames(c.duration_s)
        self._gated = True
        start_ns = await gate.ready()
        view.begin(start_ns, c.duration_s)
        self.events.write("run", "conversation_started", start_ns=start_ns, frames=n_frames)
        self.turns.begin(start_ns)
        logger.info(
            "run {}: agent {} is in the room; the Customer talks for {:g} s",
            self.run_id,
            spec.name,
            c.duration_s,
        )

        def halted() -> bool:
            return stop.is_set() or customer.lost(c.connect_timeout_s) is not None

        self._realtime = realtime.enter()
        agent_pid = None if self.worker is None else self.worker.pid
        monitor = HostMonitor(
            self.host, {CUSTOMER: customer.stalls}, server_pid=self.server_pid, agent_pid=agent_pid
        )
        try:
            async with monitor:
                await customer.speak(
                    self.turns,
                    start_ns=start_ns,
                    n_frames=n_frames,
                    sent=self.sent,
                    said=self.said,
                    stop=halted,
                )
                if not halted():
                    await asyncio.sleep(TAIL_MIN_S)  # the last frames on their way
        finally:
            realtime.leave()
            self._agent_scheduling = monitor.agent_scheduling()
        if stop.is_set():
            return "interrupted", stop.reason
        lost = customer.lost(c.connect_timeout_s)
        if lost is not None:
            return "failed", lost
        return "complete", None

    async def _wait_for_agent(self, customer: Speaker) -> None:
        """Until the dispatched agent joined (bounded: a dispatch no worker takes is an error),
        then briefly for its audio track; recording starts whenever that track comes."""
        spec = self.spec
        deadline = time.monotonic() + spec.dispatch_timeout_s
        while self._agent_joined() is None:
            if self.worker is not None and not self.worker.running():
                raise ConnectError(
                    f"the agent worker exited before agent {spec.name!r} joined; see "
                    f"{self.worker.record['log']} in the run folder."
                )
            if time.monotonic() > deadline:
                where = "its worker (--agent-cmd)" if spec.cmd else "a worker registered"
                raise ConnectError(
                    f"no worker took the dispatch of agent {spec.name!r} within "
                    f"{spec.dispatch_timeout_s:g} s: is {where} under that name on "
                    f"{self.config.ws_url}?"
                )
            await asyncio.sleep(0.02)
        joined = self._agent_joined()
        assert joined is not None
        logger.info("agent {} joined as {}", spec.name, joined["identity"])
        self._recorder = asyncio.create_task(self._record(customer), name="customer-record")
        try:
            async with asyncio.timeout(self.config.connect_timeout_s):
                await asyncio.shield(self._recorder)
        except TimeoutError:
            logger.warning(
                "agent {} published no audio within {:g} s; talking anyway",
                spec.name,
                self.config.connect_timeout_s,
            )

    async def _record(self, customer: Speaker) -> None:
        """Record the agent's audio from the moment its track is subscribed."""
        await customer.wait_for_peer(run_bound_s(self.config))
        customer.start_recording(self.wav, self.arrivals)

    async def _close(self, status: str, reason: str | None) -> None:
        """Leave, end the agent's job, close the files, finish the manifest; safe after any
        fault."""
        try:
            if self._recorder is not None:
                await cancel_and_wait(self._recorder)
            customer = self.customer
            if customer is not None:
                # let the agent's last words in before the recording ends
                if status == "complete":
                    await asyncio.sleep(max(0.0, tail_max_s(self.config) - TAIL_MIN_S))
                await customer.stop_receiving()
                stats = await customer.rtc_stats()
                if stats is not None:
                    self._stats[CUSTOMER]["final"] = stats
                if self._closers:
                    evidence.write_json_atomic(self.run_dir / evidence.RTC_STATS, self._stats)
                if self._transcribed is not None:  # the streams that ended in the tail are in
                    await self._transcribed.aclose()
                await customer.aclose()
            if self.dispatch_id is not None:
                await delete_dispatch(self.config, self.room, self.dispatch_id)
                # the room's end ends the agent's job, so its worker need not drain it
                await delete_rooms(self.config, [self.room])
        finally:
            self._finish(status, reason, agent=self._agent_block())
