"""One participant of ours in a conversation: joins the room, says its script, records the other.

A `Speaker` is the Customer or the Support side of a tone conversation, or the Customer facing an
agent under test. It is an `async with` object. It owns its `rtc.Room`, its `rtc.AudioSource`
and the task that reads the other side's track; `aclose()` (safe twice) cancels and awaits that
task and leaves the room. Sending is paced against absolute deadlines from one monotonic start
shared by both sides, so frame `n` is due at `start + n x 10 ms` whatever the event loop's jitter.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
from google.protobuf.json_format import MessageToDict
from livekit import rtc
from loguru import logger

from echoproof.aiotasks import AsyncClosing, cancel_and_wait
from echoproof.contract import (
    CHANNELS,
    CUSTOMER,
    FRAME_NS,
    FRAME_SAMPLES,
    IDENTITY_PREFIXES,
    SAMPLE_RATE,
    SAMPLE_WIDTH,
    SUPPORT,
)
from pipeline.console.live import Counters, ToneMeter
from pipeline.errors import ConnectError
from pipeline.recording.evidence import EventLog, TimingWriter
from pipeline.recording.host import Stalls
from pipeline.recording.wav import WavWriter
from pipeline.script import Frames, Int16Array

# What a text stream's handler is given: the stream, and its sender's identity.
TextStreamHandler = Callable[[rtc.TextStreamReader, str], None]

# The name each role joins the room with (what an agent under test is told it talks to).
NAMES = {CUSTOMER: "Customer", SUPPORT: "Customer Support"}


def new_identity(role: str) -> str:
    """A fresh identity for `role`: its prefix (`echoproof.contract.IDENTITY_PREFIXES`), a UUID."""
    return f"{IDENTITY_PREFIXES[role]}{uuid.uuid4()}"


class Said(Protocol):
    """Where each clip (a burst, a turn) goes once every frame of it was sent: its CSV."""

    def record(self, clip: Any) -> None: ...


class Speaker(AsyncClosing):
    """One participant: `role` is "customer" or "support"; it hears `peer_identity` at `peer_hz`.

    A `peer_identity` of None hears whoever publishes audio first (an agent under test, whose
    identity the server chooses); `peer_identity` is then set to it.
    """

    def __init__(
        self,
        role: str,
        identity: str,
        *,
        tone_hz: float,
        peer_identity: str | None,
        peer_hz: float,
        queue_size_ms: int,
        red: bool,
        events: EventLog,
    ) -> None:
        self.role = role
        self.identity = identity
        self.tone_hz = tone_hz
        self.peer_identity = peer_identity
        self._meter = ToneMeter(peer_hz, tone_hz)
        self.counters = Counters(meter=self._meter)
        self.stalls = Stalls()  # read by the run's HostMonitor
        self._queue_size_ms = queue_size_ms
        self._red = red
        self._events = events
        self._room: rtc.Room | None = None
        self._source: rtc.AudioSource | None = None
        self._peer_track: asyncio.Future[rtc.RemoteAudioTrack] | None = None
        self._receiver: asyncio.Task[None] | None = None
        self._stream: rtc.AudioStream | None = None
        self._closing = False
        self._disconnect_logged = False
        self._joined = False
        self._reconnecting_since: int | None = None
        self._text_handlers: dict[str, TextStreamHandler] = {}
        self.lost_reason: str | None = None
        # told every received frame and its arrival (the Customer's live barge-in detector)
        self.on_heard: Callable[[Int16Array, int], None] | None = None

    async def __aenter__(self) -> Speaker:
        return self

    # -- joining -----------------------------------------------------------------------------

    async def join(self, url: str, token: str, timeout_s: float) -> None:
        """Connect to the room and publish the microphone track, within `timeout_s` in all."""
        loop = asyncio.get_running_loop()
        self._peer_track = loop.create_future()
        room = self._room = rtc.Room(loop=loop)
        self._watch(room)
        for topic, handler in self._text_handlers.items():
            room.register_text_stream_handler(topic, handler)
        logger.info("{} {} joins {}/rtc?access_token=<redacted>", self.role, self.identity, url)
        try:
            async with asyncio.timeout(timeout_s):
                await room.connect(url, token, rtc.RoomOptions(auto_subscribe=True))
                self._joined = True
                self._events.write(self.role, "connected", room=room.name)
                self._source = rtc.AudioSource(
                    SAMPLE_RATE, CHANNELS, queue_size_ms=self._queue_size_ms
                )
                track = rtc.LocalAudioTrack.create_audio_track(
                    f"{self.role}-microphone", self._source
                )
                options = rtc.TrackPublishOptions(
                    source=rtc.TrackSource.SOURCE_MICROPHONE, red=self._red
                )
                await room.local_participant.publish_track(track, options)
        except TimeoutError:
            raise ConnectError(
                f"{self.role} could not join {url} within {timeout_s:g} s; check that the server "
                "is running and that this host has a non-loopback network interface (libwebrtc "
                "needs one)."
            ) from None
        except rtc.ConnectError as exc:
            message = str(exc.message).replace(token, "<redacted>")
            raise ConnectError(f"{self.role} could not join {url}: {message}.") from None

    async def wait_for_peer(self, timeout_s: float) -> None:
        """Wait until the peer's audio track is subscribed (then `start_recording` may run)."""
        assert self._peer_track is not None, "join() first"
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.shield(self._peer_track)
        except TimeoutError:
            raise ConnectError(
                f"{self.role} did not receive {self.peer_identity}'s audio track "
                f"within {timeout_s:g} s."
            ) from None

    def on_text_stream(self, topic: str, handler: TextStreamHandler) -> None:
        """Hand every text stream on `topic` to `handler(reader, sender identity)`, from the
        moment this speaker joins (registered before connecting: none is missed)."""
        assert self._room is None, "before join()"
        self._text_handlers[topic] = handler

    def publisher_of(self, track_sid: str) -> str | None:
        """The identity of the participant in the room that published `track_sid` (this
        speaker's own too), None when none did."""
        room = self._room
        if room is None:
            return None
        for who in (room.local_participant, *room.remote_participants.values()):
            if track_sid in who.track_publications:
                return str(who.identity)
        return None

    def start_recording(self, wav: WavWriter, arrivals: TimingWriter) -> None:
        """Record every frame of the peer's track into `wav` and `arrivals` until closed."""
        assert self._peer_track is not None and self._peer_track.done(), "wait_for_peer() first"
        track = self._peer_track.result()
        self._stream = rtc.AudioStream(track, sample_rate=SAMPLE_RATE, num_channels=CHANNELS)
        self._receiver = asyncio.create_task(
            self._receive(self._stream, wav, arrivals), name=f"{self.role}-receive"
        )

    # -- sending and receiving ---------------------------------------------------------------

    async def speak(
        self,
        script: Frames,
        *,
        start_ns: int,
        n_frames: int,
        sent: TimingWriter,
        said: Said,
        stop: Callable[[], bool],
        stall: tuple[int, float] | None = None,
    ) -> None:
        """Send frames 0..n_frames-1 of `script`, frame n at `start_ns + n x 10 ms`, until stop();
        each clip goes to `said` once all of its frames were sent.

        `stall` (frame, seconds) holds the send loop that long before that frame: a fault that
        tests inject (`ECHOPROOF_FAULT_SEND_STALL`) to see a host stall named in the verdict.
        """
        assert self._source is not None, "join() first"
        c = self.counters
        for n in range(n_frames):
            if stop():
                return
            if stall is not None and n == stall[0]:
                logger.warning("{} send loop held for {:g} s (injected fault)", self.role, stall[1])
                await asyncio.sleep(stall[1])
            delay_ns = start_ns + n * FRAME_NS - time.monotonic_ns()
            if delay_ns > 0:
                await asyncio.sleep(delay_ns / 1e9)
            pcm = script.frame(n)
            frame = rtc.AudioFrame(pcm.tobytes(), SAMPLE_RATE, CHANNELS, FRAME_SAMPLES)
            t_ns = time.monotonic_ns()
            await self._source.capture_frame(frame)
            self.stalls.sent(n, t_ns)
            sent.write(n, n * FRAME_SAMPLES, FRAME_SAMPLES, t_ns)
            c.frames_sent += 1
            c.bytes_sent += FRAME_SAMPLES * SAMPLE_WIDTH
            if c.first_sent_ns is None:
                c.first_sent_ns = t_ns
            c.last_sent_ns = t_ns
            for clip in script.finished(n + 1):
                said.record(clip)
                c.bursts_sent += 1

    async def _receive(
        self, stream: rtc.AudioStream, wav: WavWriter, arrivals: TimingWriter
    ) -> None:
        c = self.counters
        async for event in stream:
            t_ns = time.monotonic_ns()
            self.stalls.received(t_ns)
            frame = event.frame
            pcm = np.frombuffer(frame.data, dtype=np.int16)
            if frame.num_channels != 1:  # the SDK remixes to the requested layout; keep one channel
                pcm = pcm[:: frame.num_channels].copy()
            wav.write(pcm)
            arrivals.write(c.frames_received, c.samples_received, len(pcm), t_ns)
            c.frames_received += 1
            c.samples_received += len(pcm)
            c.bytes_received += len(pcm) * SAMPLE_WIDTH
            c.last_received_ns = t_ns
            self._meter.feed(pcm, t_ns)
            if self.on_heard is not None:
                self.on_heard(pcm, t_ns)

    # -- state ---------------------------------------------------------------------------------

    def lost(self, reconnect_bound_s: float) -> str | None:
        """Why this speaker lost the server (disconnected, or reconnecting too long), else None."""
        if self.lost_reason is not None:
            return self.lost_reason
        since = self._reconnecting_since
        if since is not None and time.monotonic_ns() - since > reconnect_bound_s * 1e9:
            return f"{self.role} lost the server: still reconnecting after {reconnect_bound_s:g} s."
        return None

    async def rtc_stats(self) -> dict[str, list[dict[str, Any]]] | None:
        """The SDK's RTC statistics as plain dicts with the raw field names; None if offline."""
        room = self._room
        if room is None or not room.isconnected():
            return None
        try:
            stats = await asyncio.wait_for(room.get_rtc_stats(), 5)
        except (RuntimeError, TimeoutError) as exc:
            logger.debug("{} rtc stats unavailable: {}", self.role, exc)
            return None
        return {
            "publisher_stats": [_to_dict(s) for s in stats.publisher_stats],
            "subscriber_stats": [_to_dict(s) for s in stats.subscriber_stats],
        }

    async def stop_receiving(self) -> None:
        """End the recording: cancel and await the receiving task, close the stream."""
        task, self._receiver = self._receiver, None
        await cancel_and_wait(task)
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(Exception):
                await stream.aclose()
        self._meter.flush()

    async def aclose(self) -> None:
        """Stop receiving and leave the room; safe to call twice."""
        self._closing = True
        await self.stop_receiving()
        room, self._room = self._room, None
        if room is not None:
            try:
                await asyncio.wait_for(room.disconnect(), 5)
            except Exception as exc:  # leaving is best effort: the evidence is what matters
                logger.warning("{} could not leave the room cleanly: {!r}", self.role, exc)
            if self._joined and not self._disconnect_logged:
                self._disconnect_logged = True
                # The SDK may drop its own "disconnected" event when the room's state flips
                # first; we did leave, so the evidence says so.
                self._events.write(self.role, "disconnected", reason="CLIENT_INITIATED")
                logger.info("{} left the room", self.role)
        source, self._source = self._source, None
        if source is not None:
            with contextlib.suppress(Exception):
                await source.aclose()
        if self._peer_track is not None and not self._peer_track.done():
            self._peer_track.cancel()

    # -- room events ---------------------------------------------------------------------------

    def _watch(self, room: rtc.Room) -> None:
        """Every room event into the event log; the peer's track, and losing the server, noted."""
        self._watch_participants(room)
        self._watch_connection(room)

    def _watch_participants(self, room: rtc.Room) -> None:
        role, log = self.role, self._events

        @room.on("participant_connected")
        def _joined(p: rtc.RemoteParticipant) -> None:
            log.write(role, "participant_joined", identity=p.identity, kind=_kind(p))
            logger.info("{} sees {} join", role, p.identity)

        @room.on("participant_disconnected")
        def _left(p: rtc.RemoteParticipant) -> None:
            log.write(role, "participant_left", identity=p.identity)
            logger.info("{} sees {} leave", role, p.identity)

        @room.on("local_track_published")
        def _published(pub: rtc.LocalTrackPublication, track: rtc.Track) -> None:
            log.write(role, "track_published", track_sid=pub.sid, local=True)
            logger.info("{} published its microphone track {}", role, pub.sid)

        # The server's word that another participant subscribed to our track (livekit-server
        # sends it on the first subscription): audio we sent before it reached no one.
        @room.on("local_track_subscribed")
        def _heard_by_peer(track: rtc.Track) -> None:
            log.write(role, "local_track_subscribed", track_sid=track.sid)

        @room.on("track_published")
        def _remote_published(pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant) -> None:
            log.write(role, "track_published", track_sid=pub.sid, identity=p.identity)

        @room.on("track_subscribed")
        def _subscribed(
            track: rtc.Track, pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant
        ) -> None:
            log.write(role, "track_subscribed", track_sid=pub.sid, identity=p.identity)
            logger.info("{} subscribed to {}'s track {}", role, p.identity, pub.sid)
            fut = self._peer_track
            if (
                fut is not None
                and not fut.done()
                and self.peer_identity in (None, p.identity)
                and isinstance(track, rtc.RemoteAudioTrack)
            ):
                self.peer_identity = p.identity
                fut.set_result(track)

        @room.on("track_unsubscribed")
        def _unsubscribed(
            track: rtc.Track, pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant
        ) -> None:
            log.write(role, "track_unsubscribed", track_sid=pub.sid, identity=p.identity)

    def _watch_connection(self, room: rtc.Room) -> None:
        role, log = self.role, self._events

        @room.on("reconnecting")
        def _reconnecting() -> None:
            log.write(role, "reconnecting")
            logger.warning("{} lost the signal connection; reconnecting", role)
            self._reconnecting_since = time.monotonic_ns()

        @room.on("reconnected")
        def _reconnected() -> None:
            log.write(role, "reconnected")
            logger.info("{} reconnected", role)
            self._reconnecting_since = None

        @room.on("disconnected")
        def _disconnected(reason: Any) -> None:
            try:
                name = rtc.DisconnectReason.Name(reason)
            except (ValueError, TypeError):
                name = str(reason)
            if self._disconnect_logged:
                return
            self._disconnect_logged = True
            log.write(role, "disconnected", reason=name)
            if self._closing:
                logger.info("{} left the room", role)
                return
            logger.warning("{} was disconnected by the server ({})", role, name)
            if name == "PARTICIPANT_REMOVED":
                self.lost_reason = f"{self.identity} was removed from the room by the server."
            else:
                self.lost_reason = f"{role} lost the server: disconnected ({name})."


def _kind(p: rtc.RemoteParticipant) -> str:
    """The participant's kind as livekit names it (AGENT for a dispatched agent)."""
    try:
        return str(rtc.ParticipantKind.Name(p.kind)).removeprefix("PARTICIPANT_KIND_")
    except (ValueError, TypeError):
        return str(p.kind)


def _to_dict(stat: Any) -> dict[str, Any]:
    return MessageToDict(stat, preserving_proto_field_name=True)
