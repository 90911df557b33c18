"""Real LiveKit agent workers for the tests: the example agent in the agents' own venv.

livekit-agents pins an older ``livekit`` SDK than echoproof's, so agents run in their own venv
(``nox -s agent-env``); ``nox -s tests`` passes its python as ``ECHOPROOF_AGENT_PYTHON`` and
sets ``ECHOPROOF_AGENT_REQUIRED`` so that these tests fail there rather than skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from livekit import rtc

from echoproof import sfu
from echoproof.aiotasks import cancel_and_wait
from tests.conftest import scaled
from tests.echoproof.sfu._clients import API_KEY, API_SECRET, FRAME, RATE

REPO = Path(__file__).resolve().parents[3]
REPLY_AGENT = REPO / "examples" / "reply_agent.py"
AGENT_NAME = "echoproof-reply"
DEFAULT_VENV_PYTHON = REPO / ".nox" / "agent-env" / "bin" / "python"


def agent_python() -> str:
    """The python of the agents' venv; the test skips (fails under nox) when there is none."""
    configured = os.environ.get("ECHOPROOF_AGENT_PYTHON", "")
    python = Path(configured) if configured else DEFAULT_VENV_PYTHON
    if python.is_file() and os.access(python, os.X_OK):
        return str(python)
    why = (
        f"no Python with livekit-agents at {python}: run `nox -s agent-env` (or set"
        " ECHOPROOF_AGENT_PYTHON to one) to run the agent tests."
    )
    if os.environ.get("ECHOPROOF_AGENT_REQUIRED"):
        pytest.fail(why)
    pytest.skip(why)


class Worker:
    """A running ``examples/reply_agent.py start``; its output goes to ``log``."""

    def __init__(self, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.proc = proc
        self.log = log

    def output(self) -> str:
        """What the worker has printed so far."""
        return self.log.read_text(errors="replace")

    def replies(self) -> list[dict[str, int]]:
        """The replies the agent logged: last_voice_ns, detected_ns, reply_ns each."""
        found = re.findall(
            r"reply: speaker=\S+ last_voice_ns=(\d+) detected_ns=(\d+) reply_ns=(\d+)",
            self.output(),
        )
        return [
            {"last_voice_ns": int(a), "detected_ns": int(b), "reply_ns": int(c)}
            for a, b, c in found
        ]


@contextlib.asynccontextmanager
async def reply_worker(
    server: sfu.Server, log: Path, agent_name: str = AGENT_NAME, **env: str
) -> AsyncIterator[Worker]:
    """The example agent registered with ``server`` as ``agent_name``, with extra ``env``;
    stopped (its whole process group) on exit."""
    python = agent_python()
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LIVEKIT_URL": server.url,
        "LIVEKIT_API_KEY": API_KEY,
        "LIVEKIT_API_SECRET": API_SECRET,
        "LIVEKIT_AGENT_NAME": agent_name,
        **env,
    }
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            python,
            str(REPLY_AGENT),
            "start",
            env=environment,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # its job processes too are ended with it
        )
    worker = Worker(proc, log)
    try:
        try:
            await server.agents.wait_for_worker(agent_name, within_s=scaled(60))
        except TimeoutError:
            raise AssertionError(
                f"the agent worker did not register within 60 s; it printed:\n{worker.output()}"
            ) from None
        yield worker
    finally:
        await _stop(proc)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM (livekit-agents drains), then SIGKILL to the process group if it lingers."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            async with asyncio.timeout(scaled(5)):
                await proc.wait()
        except TimeoutError:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # the job processes of a drained worker, if any
    await proc.wait()


def agents_in(room: rtc.Room) -> list[rtc.RemoteParticipant]:
    """The remote participants of ``room`` whose kind is AGENT."""
    return [
        p
        for p in room.remote_participants.values()
        if p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
    ]


class Utterance:
    """Publishes one microphone track of 10 ms frames sent on time (silence, and tone bursts
    when :meth:`say` asks); ``spoken`` holds each burst's (first, last) frame's send time."""

    def __init__(self, room: rtc.Room, freq_hz: float = 440.0) -> None:
        self.room = room
        self.freq_hz = freq_hz
        self.source = rtc.AudioSource(RATE, 1, queue_size_ms=0)
        self.spoken: list[tuple[float, float]] = []
        self._queue: asyncio.Queue[float] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Utterance:
        track = rtc.LocalAudioTrack.create_audio_track("voice", self.source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        await self.room.local_participant.publish_track(track, options)
        self._task = asyncio.create_task(self._feed(), name="utterance")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await cancel_and_wait(self._task)
        await self.source.aclose()

    def say(self, seconds: float) -> None:
        """Speak (a tone burst) for ``seconds`` from the next frame on."""
        self._queue.put_nowait(seconds)

    async def _feed(self) -> None:
        silence = np.zeros(FRAME, dtype=np.int16)
        n = np.arange(FRAME)
        t0 = time.monotonic()
        sent = 0
        left = 0  # frames of the current burst still to send
        first = 0.0
        while True:
            delay = t0 + sent * FRAME / RATE - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if left == 0 and not self._queue.empty():
                left = round(self._queue.get_nowait() * RATE / FRAME)
                first = time.monotonic()
            if left:
                phase = 2 * np.pi * self.freq_hz * (sent * FRAME + n) / RATE
                pcm = (0.5 * 32767 * np.sin(phase)).astype(np.int16)
            else:
                pcm = silence
            await self.source.capture_frame(rtc.AudioFrame(pcm.tobytes(), RATE, 1, FRAME))
            if left:
                left -= 1
                if left == 0:
                    self.spoken.append((first, time.monotonic()))
            sent += 1
