"""Real LiveKit SDK participants for the server tests: tokens, a tone sender, a listener."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Self

import numpy as np
from livekit import api, rtc

from echoproof.aiotasks import cancel_and_wait
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

    def heard_after_tone(self, freq_hz: float, frames: int) -> bool:
        """Whether ``frames`` frames have been heard since the first one carrying ``freq_hz``."""
        first = self.first_tone_frame(freq_hz)
        return first is not None and len(self.frames) >= first + frames

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


def steady_share(listener: Listener, freq_hz: float, settle: int, frames: int) -> float:
    """Share of ``frames`` frames, after ``settle`` frames past the first tone, holding it."""
    first = listener.first_tone_frame(freq_hz)
    assert first is not None, f"no frame carried {freq_hz} Hz"
    stretch = listener.frames[first + settle : first + settle + frames]
    return sum(holds_tone(f, freq_hz) for f in stretch) / frames
