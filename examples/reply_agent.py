"""A LiveKit agent with no AI service: it answers each utterance it hears with a tone burst.

Run it as any livekit-agents worker, in a Python that has ``livekit-agents`` (``nox -s agent-env``
makes one: ``.nox/agent-env/bin/python``)::

    LIVEKIT_URL=ws://127.0.0.1:7880 LIVEKIT_API_KEY=devkey LIVEKIT_API_SECRET=secret \\
        .nox/agent-env/bin/python examples/reply_agent.py start     # or `dev`

It registers as ``echoproof-reply`` (``LIVEKIT_AGENT_NAME``; set it empty for a worker that gets
every new room by default dispatch) and waits to be dispatched. In a room it subscribes to the
audio of every participant that is not an agent, publishes one microphone track and sends
10 ms frames on it without a break: silence, and a reply after each utterance.

**End of utterance** (per speaker): a received 10 ms frame is *voiced* when its RMS is at least
``ECHOPROOF_VOICE_DBFS`` (-40 dBFS). An utterance begins with a voiced frame and needs at least
``ECHOPROOF_MIN_VOICE_MS`` (60 ms) of voiced frames in all; it ends when
``ECHOPROOF_EOU_SILENCE_MS`` (300 ms) of consecutive unvoiced frames have been received after its
last voiced frame. The end is *detected* when the frame completing that silence arrives, so it
lies one silence window (plus the frame's transport) after the speaker's last voiced sound.

**The reply** is a ``ECHOPROOF_REPLY_HZ`` (550 Hz) sine burst, ``ECHOPROOF_REPLY_MS`` (300 ms)
long, amplitude 0.5 with 5 ms raised-cosine ramps. Frame ``n`` of the track is handed to the SDK
(``rtc.AudioSource.capture_frame``, ``queue_size_ms=0``: sent at once) at ``t0 + n x 10 ms`` on
the monotonic clock, and the reply's first sample is the sample of ``detected +
ECHOPROOF_REPLY_DELAY_MS`` (200 ms) in the frame that holds that instant (frame send time plus
the sample's offset in it; at once if that frame is already past). So the reply starts at
``detected + delay`` to a sample (21 us), plus the event loop's lateness, and
the response a listener measures from the end of its speech is about
``silence window + delay + the two transports``. Another utterance heard while a reply plays
is answered after that reply. A list such as ``ECHOPROOF_REPLY_DELAY_MS=200,500`` is taken in
turn: the first utterance of a speaker gets 200 ms, the second 500 ms, the third 200 ms again
(two delays in one conversation share its transport: a harness can compare them to the ms).

Each utterance and reply is logged (logger ``echoproof.reply_agent``, INFO) as
``reply: speaker=... last_voice_ns=... detected_ns=... reply_ns=...`` (``time.monotonic_ns()``,
the host's CLOCK_MONOTONIC, comparable across processes on Linux).

**Interruptions**: by default a reply plays to its end whatever the agent hears meanwhile. With
``ECHOPROOF_REPLY_INTERRUPT_MS=N`` it stops a playing reply once it has heard N ms of voiced
frames (from any speaker) since that reply began, as livekit-agents does after its minimum
interruption duration (0.5 s by default), and logs ``reply interrupted: ...``. A long
``ECHOPROOF_REPLY_MS`` gives a harness a reply to barge in on.

Faults, for tests of what a harness does with a bad agent:

- ``ECHOPROOF_REPLY_MODE=silent``: hears and logs utterances, publishes silence, never answers.
- ``ECHOPROOF_REPLY_CRASH_AFTER_S=N``: the job's process exits abruptly (status 70, no goodbye
  to the room) N seconds after joining, as a crashed agent would.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from dataclasses import dataclass

import numpy as np
from livekit import rtc
from livekit.agents import AgentServer, AutoSubscribe, JobContext, cli

SAMPLE_RATE = 48_000
FRAME_SAMPLES = 480  # 10 ms
FRAME_NS = 10_000_000
CRASH_STATUS = 70

log = logging.getLogger("echoproof.reply_agent")


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        return float(raw) if raw.strip() else default
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not a number") from None


def _env_floats(name: str, default: float) -> tuple[float, ...]:
    raw = os.environ.get(name, "")
    try:
        return tuple(float(v) for v in raw.split(",")) if raw.strip() else (default,)
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not a number or a comma-separated list") from None


@dataclass(frozen=True)
class Settings:
    """What the environment asks of the agent (see the module's docstring)."""

    agent_name: str
    delays_ms: tuple[float, ...]
    silent: bool
    crash_after_s: float | None
    voice_dbfs: float
    min_voice_ms: float
    silence_ms: float
    reply_hz: float
    reply_ms: float
    interrupt_ms: float | None

    @classmethod
    def from_env(cls) -> Settings:
        mode = os.environ.get("ECHOPROOF_REPLY_MODE", "tone").strip().lower()
        if mode not in ("tone", "silent"):
            raise SystemExit(f"ECHOPROOF_REPLY_MODE={mode!r}: expected 'tone' or 'silent'")
        crash = _env_float("ECHOPROOF_REPLY_CRASH_AFTER_S", -1.0)
        interrupt = _env_float("ECHOPROOF_REPLY_INTERRUPT_MS", -1.0)
        return cls(
            agent_name=os.environ.get("LIVEKIT_AGENT_NAME", "echoproof-reply"),
            delays_ms=_env_floats("ECHOPROOF_REPLY_DELAY_MS", 200.0),
            silent=mode == "silent",
            crash_after_s=crash if crash >= 0 else None,
            voice_dbfs=_env_float("ECHOPROOF_VOICE_DBFS", -40.0),
            min_voice_ms=_env_float("ECHOPROOF_MIN_VOICE_MS", 60.0),
            silence_ms=_env_float("ECHOPROOF_EOU_SILENCE_MS", 300.0),
            reply_hz=_env_float("ECHOPROOF_REPLY_HZ", 550.0),
            reply_ms=_env_float("ECHOPROOF_REPLY_MS", 300.0),
            interrupt_ms=interrupt if interrupt >= 0 else None,
        )


SETTINGS = Settings.from_env()


class EndOfUtterance:
    """The end-of-utterance rule for one speaker, fed 10 ms frames as they arrive."""

    def __init__(self, s: Settings) -> None:
        self._threshold = 32768.0 * 10 ** (s.voice_dbfs / 20)
        self._min_voice = math.ceil(s.min_voice_ms / 10)
        self._silence = math.ceil(s.silence_ms / 10)
        self._voiced = 0  # voiced frames in the current utterance
        self._quiet = 0  # unvoiced frames since its last voiced one
        self.last_voice_ns = 0
        self.voiced = False  # the last frame fed was voiced

    def feed(self, pcm: np.ndarray, now_ns: int) -> bool:
        """Whether this frame completes an utterance's end."""
        rms = float(np.sqrt(np.mean(np.square(pcm, dtype=np.float64)))) if pcm.size else 0.0
        self.voiced = rms >= self._threshold
        if self.voiced:
            self._voiced += 1
            self._quiet = 0
            self.last_voice_ns = now_ns
            return False
        if self._voiced == 0:
            return False
        self._quiet += 1
        if self._quiet < self._silence:
            return False
        ended = self._voiced >= self._min_voice
        self._voiced = self._quiet = 0
        return ended


def burst(s: Settings) -> np.ndarray:
    """The reply: int16 samples of a sine burst with raised-cosine ramps."""
    n = round(s.reply_ms * SAMPLE_RATE / 1000)
    t = np.arange(n) / SAMPLE_RATE
    wave = 0.5 * np.sin(2 * np.pi * s.reply_hz * t)
    ramp = min(n // 2, round(0.005 * SAMPLE_RATE))
    if ramp:
        edge = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
        wave[:ramp] *= edge
        wave[n - ramp :] *= edge[::-1]
    return (wave * 32767).astype(np.int16)


def _ceil_div(ns: int) -> int:
    """Samples at 48 kHz in `ns` nanoseconds, rounded up."""
    return -(-ns * SAMPLE_RATE // 1_000_000_000)


class Speaker:
    """The paced send loop of the agent's track: silence, and replies when they are due."""

    def __init__(
        self, source: rtc.AudioSource, reply: np.ndarray, interrupt_ms: float | None
    ) -> None:
        self._source = source
        self._reply = reply
        # (not before, speaker, last voiced, detected), in ns
        self._due: list[tuple[int, str, int, int]] = []
        self._interrupt_frames = None if interrupt_ms is None else math.ceil(interrupt_ms / 10)
        self._playing = False
        self._heard_while_playing = 0  # voiced frames heard since the reply began
        self._interrupted = False

    def heard(self, voiced: bool, now_ns: int) -> None:
        """A frame heard from a speaker: enough voice during a reply interrupts it."""
        if not (self._playing and voiced) or self._interrupt_frames is None:
            return
        self._heard_while_playing += 1
        if self._heard_while_playing >= self._interrupt_frames and not self._interrupted:
            self._interrupted = True
            log.info("reply interrupted: heard_ns=%d", now_ns)

    def answer(
        self, not_before_ns: int, speaker: str, last_voice_ns: int, detected_ns: int
    ) -> None:
        self._due.append((not_before_ns, speaker, last_voice_ns, detected_ns))

    async def run(self) -> None:
        silence = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        playing: np.ndarray | None = None
        offset = 0
        t0 = time.monotonic_ns()
        n = 0
        while True:
            deadline = t0 + n * FRAME_NS
            wait = deadline - time.monotonic_ns()
            if wait > 0:
                await asyncio.sleep(wait / 1e9)
            # the reply starts inside a frame, at the first sample not before its due time (at
            # once when that is past): its onset is detected + delay to a sample, not to a frame
            lead = 0 if not self._due else max(0, _ceil_div(self._due[0][0] - deadline))
            if playing is None and self._due and lead < FRAME_SAMPLES:
                _, speaker, last_voice_ns, detected_ns = self._due.pop(0)
                body = np.concatenate([np.zeros(lead, dtype=np.int16), self._reply])
                pad = np.zeros(-len(body) % FRAME_SAMPLES, dtype=np.int16)
                playing, offset = np.concatenate([body, pad]), 0
                self._playing, self._heard_while_playing, self._interrupted = True, 0, False
                log.info(
                    "reply: speaker=%s last_voice_ns=%d detected_ns=%d reply_ns=%d",
                    speaker,
                    last_voice_ns,
                    detected_ns,
                    deadline - (-lead * 1_000_000_000 // SAMPLE_RATE),
                )
            if playing is not None and self._interrupted:
                playing = None
            if playing is not None:
                pcm = playing[offset : offset + FRAME_SAMPLES]
                offset += FRAME_SAMPLES
                if offset >= len(playing):
                    playing = None
            else:
                pcm = silence
            self._playing = playing is not None
            frame = rtc.AudioFrame(pcm.tobytes(), SAMPLE_RATE, 1, FRAME_SAMPLES)
            await self._source.capture_frame(frame)
            n += 1


async def listen(track: rtc.Track, who: str, speaker: Speaker, s: Settings) -> None:
    """Detect the ends of ``who``'s utterances and schedule a reply to each."""
    rule = EndOfUtterance(s)
    delays_ns = [round(d * 1e6) for d in s.delays_ms]
    utterances = 0
    stream = rtc.AudioStream(track, sample_rate=SAMPLE_RATE, num_channels=1)
    try:
        async for event in stream:
            now = time.monotonic_ns()
            pcm = np.frombuffer(event.frame.data, dtype=np.int16)
            ended = rule.feed(pcm, now)
            speaker.heard(rule.voiced, now)
            if not ended:
                continue
            if s.silent:
                log.info(
                    "utterance (not answered): speaker=%s last_voice_ns=%d detected_ns=%d",
                    who,
                    rule.last_voice_ns,
                    now,
                )
            else:
                delay_ns = delays_ns[utterances % len(delays_ns)]
                speaker.answer(now + delay_ns, who, rule.last_voice_ns, now)
            utterances += 1
    finally:
        await stream.aclose()


server = AgentServer(
    # One tone per room is no load: never refuse a job, nor report a load that makes the server
    # pass this worker over (it weighs workers by 1 - load), because a shared machine is busy.
    load_threshold=math.inf,
    load_fnc=lambda: 0.0,
    # Its health-check HTTP server on a free loopback port (livekit-agents' `start` takes 8081
    # on every interface), so that several of these workers can run on one host.
    host="127.0.0.1",
    port=0,
)


@server.rtc_session(agent_name=SETTINGS.agent_name)
async def entrypoint(ctx: JobContext) -> None:
    """Join the room, publish the reply track, and answer every non-agent speaker."""
    s = SETTINGS
    await ctx.connect(auto_subscribe=AutoSubscribe.AUDIO_ONLY)
    source = rtc.AudioSource(SAMPLE_RATE, 1, queue_size_ms=0)
    track = rtc.LocalAudioTrack.create_audio_track("reply", source)
    options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    await ctx.room.local_participant.publish_track(track, options)
    speaker = Speaker(source, burst(s), s.interrupt_ms)
    tasks = {asyncio.create_task(speaker.run(), name="reply track")}

    def on_subscribed(
        track: rtc.Track, _pub: rtc.RemoteTrackPublication, who: rtc.RemoteParticipant
    ) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO and (
            who.kind != rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
        ):
            tasks.add(asyncio.create_task(listen(track, who.identity, speaker, s)))

    ctx.room.on("track_subscribed", on_subscribed)
    for who in ctx.room.remote_participants.values():
        for pub in who.track_publications.values():
            if pub.track is not None:
                on_subscribed(pub.track, pub, who)  # type: ignore[arg-type]

    async def stop(_reason: str = "") -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    ctx.add_shutdown_callback(stop)
    log.info(
        "in room %s as %s: mode=%s delay_ms=%s",
        ctx.room.name,
        ctx.room.local_participant.identity,
        "silent" if s.silent else "tone",
        ",".join(f"{d:g}" for d in s.delays_ms),
    )
    if s.crash_after_s is not None:
        await asyncio.sleep(s.crash_after_s)
        log.warning("crashing on purpose (ECHOPROOF_REPLY_CRASH_AFTER_S=%g)", s.crash_after_s)
        os._exit(CRASH_STATUS)


if __name__ == "__main__":
    cli.run_app(server)
