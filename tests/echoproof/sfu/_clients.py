"""Real LiveKit SDK participants for the server tests: tokens, a tone sender, a listener."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Self

import numpy as np
from livekit import api, rtc

from echoproof.aiotasks import cancel_and_wait
from pipeline.recording.host import thread_waits
from tests.conftest import scaled

API_KEY = "devkey"
# At least 32 bytes: PyJWT warns about shorter HMAC keys and warnings are errors here.
API_SECRET = "echoproof-test-secret-0123456789abcdef"
RATE = 48000
FRAME = 480


def token(
    identity: str,
    room: str,
    *,
    secret: str = API_SECRET,
    grants: api.VideoGrants | None = None,
    ttl_s: float | None = None,
) -> str:
    """A join token for ``identity`` in ``room``."""
    t = api.AccessToken(API_KEY, secret).with_identity(identity).with_name(identity)
    t = t.with_grants(grants or api.VideoGrants(room_join=True, room=room))
    if ttl_s is not None:
        import datetime

        t = t.with_ttl(datetime.timedelta(seconds=ttl_s))
    return t.to_jwt()


async def until(condition: Callable[[], bool], within_s: float) -> None:
    """Wait until ``condition()`` holds; TimeoutError after ``within_s`` (scaled) seconds."""
    async with asyncio.timeout(scaled(within_s)):
        # Polling: the state lives in the SDK or the server, which offer no event for it.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def joined(url: str, identity: str, room: str) -> AsyncIterator[rtc.Room]:
    """A connected ``rtc.Room``, disconnected on exit."""
    r = rtc.Room()
    try:
        async with asyncio.timeout(scaled(15)):
            await r.connect(url, token(identity, room))
        yield r
    finally:
        await r.disconnect()


class ToneSender:
    """Publishes a steady tone in 10 ms frames, paced in real time by the SDK's queue.

    The 200 ms queue keeps the tone going through event-loop stalls of a busy test machine
    (these tests are about the server, not about the sender's timing; latency is measured
    by the benchmark with ``queue_size_ms=0``).
    """

    def __init__(
        self,
        room: rtc.Room,
        freq_hz: float,
        amplitude: float = 0.5,
        options: rtc.TrackPublishOptions | None = None,
    ) -> None:
        self.room = room
        self.freq_hz = freq_hz
        self.amplitude = amplitude
        self.options = options or rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        self.source = rtc.AudioSource(RATE, 1, queue_size_ms=200)
        self.sent = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ToneSender:
        track = rtc.LocalAudioTrack.create_audio_track(f"tone-{self.freq_hz:g}", self.source)
        await self.room.local_participant.publish_track(track, self.options)
        self._task = asyncio.create_task(self._feed(), name=f"tone {self.freq_hz}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        await self.source.aclose()

    async def _feed(self) -> None:
        n = np.arange(FRAME)
        while True:
            phase = 2 * np.pi * self.freq_hz * (self.sent * FRAME + n) / RATE
            samples = (self.amplitude * 32767 * np.sin(phase)).astype(np.int16)
            # Returns at once while the queue has room, then once per 10 ms as it drains.
            await self.source.capture_frame(rtc.AudioFrame(samples.tobytes(), RATE, 1, FRAME))
            self.sent += 1


@dataclass
class Subscriber:
    """Calls `_on_track` for every track of `room` subscribed so far and from now on; ends the
    tasks it started (`_tasks`) on exit. Listeners for audio and video build on it."""

    room: rtc.Room
    sender: str
    _tasks: list[asyncio.Task[None]] = field(default_factory=list, kw_only=True)

    async def __aenter__(self) -> Self:
        self.room.on("track_subscribed", self._on_track)
        for participant in self.room.remote_participants.values():
            for pub in participant.track_publications.values():
                if pub.track is not None:
                    self._on_track(pub.track, pub, participant)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.room.off("track_subscribed", self._on_track)
        await cancel_and_wait(*self._tasks)

    def _on_track(
        self, track: rtc.Track, pub: rtc.RemoteTrackPublication, who: rtc.RemoteParticipant
    ) -> None:
        raise NotImplementedError


@dataclass
class Listener(Subscriber):
    """Records every frame heard from the participant called ``sender``, and when (monotonic)."""

    frames: list[np.ndarray] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    track: rtc.Track | None = None
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)

    def _on_track(
        self, track: rtc.Track, pub: rtc.RemoteTrackPublication, who: rtc.RemoteParticipant
    ) -> None:
        if who.identity == self.sender and track.kind == rtc.TrackKind.KIND_AUDIO:
            self.subscribed.set()
            self.track = track
            self._tasks.append(asyncio.create_task(self._read(track), name=f"hear {who}"))

    async def _read(self, track: rtc.Track) -> None:
        stream = rtc.AudioStream(track, sample_rate=RATE, num_channels=1)
        try:
            async for event in stream:
                self.times.append(time.monotonic())
                self.frames.append(np.frombuffer(event.frame.data, dtype=np.int16).copy())
        finally:
            await stream.aclose()

    async def wait_frames(self, count: int, within_s: float) -> None:
        """Wait until ``count`` frames have been heard."""
        await until(lambda: len(self.frames) >= count, within_s)

    def first_tone_frame(self, freq_hz: float) -> int | None:
        """Index of the first frame that carries ``freq_hz``."""
        for i, frame in enumerate(self.frames):
            if holds_tone(frame, freq_hz):
                return i
        return None


def holds_tone(frame: np.ndarray, freq_hz: float, min_amplitude: float = 0.05) -> bool:
    """Whether a sinusoid at ``freq_hz`` explains at least 75% of the frame's energy.

    Silence, another tone or noise fail; a frame the receiver's jitter buffer stretched passes.
    """
    x = frame.astype(np.float64) / 32768
    t = np.arange(len(x)) / RATE
    basis = np.column_stack(
        [np.cos(2 * np.pi * freq_hz * t), np.sin(2 * np.pi * freq_hz * t), np.ones_like(t)]
    )
    coef, *_ = np.linalg.lstsq(basis, x, rcond=None)
    energy = float(np.sum(x**2))
    residual = float(np.sum((x - basis @ coef) ** 2))
    return np.hypot(coef[0], coef[1]) >= min_amplitude and residual <= 0.25 * energy


def peak_hz(frames: list[np.ndarray]) -> float:
    """The frequency of the spectral peak of the frames joined (parabolic interpolation)."""
    x = np.concatenate(frames).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    k = int(np.argmax(spectrum[1:])) + 1
    a, b, c = spectrum[k - 1], spectrum[k], spectrum[k + 1]
    shift = 0.5 * (a - c) / (a - 2 * b + c)
    return (k + shift) * RATE / len(x)


def steady_share(
    listener: Listener, freq_hz: float, settle: int, frames: int, watch: HostWatch
) -> float:
    """Share of the first ``frames`` frames heard on a running host (`HostWatch.judged`),
    ``settle`` frames or more past the first tone, holding it."""
    judged = watch.judged(listener, freq_hz, settle)[:frames]
    assert len(judged) == frames, f"{len(judged)} frames heard on a running host, expected {frames}"
    return sum(holds_tone(listener.frames[i], freq_hz) for i in judged) / frames


class HostWatch:
    """When the host held this process back while a test ran: the event loop (which runs the
    in-process server and the clients' Python side) firing a 10 ms timer late, or one of the
    process's threads (the SDK's WebRTC threads among them) kept off a CPU for a fifth of
    100 ms. A frozen VM or a CPU steal burst shows as both."""

    PROBE_S = 0.01
    THREADS_EVERY = 10  # probes: thread waits are read per 100 ms

    def __init__(self, min_ms: float = 20.0) -> None:
        self.min_ms = min_ms
        self.stalls: list[tuple[float, float]] = []  # (start, end), monotonic s
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._probe(), name="host watch")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    def explains(self, t: float) -> bool:
        """Whether a frame heard at `t` came during a stall or while the receiver recovered
        from it: its jitter buffer conceals the gap, then drains the backlog (measured: a
        0.4 s freeze spoils the frames heard up to 0.45 s after it)."""
        return any(start <= t <= 2 * end - start + 0.5 for start, end in self.stalls)

    def judged(self, listener: Listener, freq_hz: float, settle: int) -> list[int]:
        """The frames heard ``settle`` frames or more past the first tone that no stall
        explains: a frozen VM starves the receiver, which says nothing of the server."""
        first = listener.first_tone_frame(freq_hz)
        if first is None:
            return []
        times = listener.times
        return [i for i in range(first + settle, len(times)) if not self.explains(times[i])]

    async def _probe(self) -> None:
        waits, since, probes = _own_waits(), time.monotonic(), 0
        while True:
            start = time.monotonic()
            await asyncio.sleep(self.PROBE_S)
            end = time.monotonic()
            if (end - start - self.PROBE_S) * 1000 >= self.min_ms:
                self.stalls.append((start, end))
            probes += 1
            if probes % self.THREADS_EVERY == 0:
                now = _own_waits()
                waited = max((now[t] - waits.get(t, 0) for t in now), default=0)
                if waited / 1e6 >= self.min_ms:
                    self.stalls.append((since, end))
                waits, since = now, end


def _own_waits() -> dict[int, int]:
    """ns each thread of this process was runnable but not running (none where /proc lacks it)."""
    return thread_waits(os.getpid()) or {}
