"""Video through the server: forwarded as it arrived, to subscribers and late joiners alike."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Self

import numpy as np
import pytest
from livekit import rtc
from livekit.protocol import models

from echoproof import sfu
from echoproof.aiotasks import cancel_and_wait
from tests.echoproof.sfu._clients import Subscriber, ToneSender, joined, until

WIDTH, HEIGHT = 320, 240
RED = bytes([230, 20, 20, 255])


class VideoSender:
    """Publishes a solid colour at 30 frames per second."""

    def __init__(self, room: rtc.Room, codec: rtc.VideoCodec.ValueType = rtc.VideoCodec.VP8):
        self.room = room
        self.codec = codec
        self.source = rtc.VideoSource(WIDTH, HEIGHT)
        self.sid = ""
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        track = rtc.LocalVideoTrack.create_video_track("camera", self.source)
        options = rtc.TrackPublishOptions(
            source=rtc.TrackSource.SOURCE_CAMERA, simulcast=False, video_codec=self.codec
        )
        publication = await self.room.local_participant.publish_track(track, options)
        self.sid = publication.sid
        self._task = asyncio.create_task(self._feed(), name="video sender")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await cancel_and_wait(self._task)
        await self.source.aclose()

    async def _feed(self) -> None:
        frame = rtc.VideoFrame(WIDTH, HEIGHT, rtc.VideoBufferType.RGBA, RED * WIDTH * HEIGHT)
        while True:
            self.source.capture_frame(frame)
            await asyncio.sleep(1 / 30)


def video_packets(server: sfu.Server, room: str, identity: str, track_sid: str) -> int:
    """How many packets of ``identity``'s video track the server has taken in."""
    connection = server.connection(room, identity)
    fanout = connection.fanouts.get(track_sid) if connection else None
    return fanout.packets if fanout else 0


@dataclass
class VideoWatcher(Subscriber):
    """Records the size and mean colour of every video frame received from ``sender``."""

    frames: list[tuple[int, int, np.ndarray]] = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=dict)  # track sid -> kind subscribed as

    def _on_track(
        self, track: rtc.Track, pub: rtc.RemoteTrackPublication, who: rtc.RemoteParticipant
    ) -> None:
        if who.identity != self.sender:
            return
        self.kinds[pub.sid] = track.kind
        if track.kind == rtc.TrackKind.KIND_VIDEO:
            self._tasks.append(asyncio.create_task(self._read(track), name="watch"))

    async def _read(self, track: rtc.Track) -> None:
        stream = rtc.VideoStream(track)
        try:
            async for event in stream:
                rgba = event.frame.convert(rtc.VideoBufferType.RGBA)
                pixels = np.frombuffer(rgba.data, dtype=np.uint8).reshape(-1, 4)
                self.frames.append((rgba.width, rgba.height, pixels[:, :3].mean(axis=0)))
        finally:
            await stream.aclose()

    def check(self, count: int) -> None:
        """The last ``count`` frames have the sent size and colour."""
        assert len(self.frames) >= count
        for width, height, colour in self.frames[-count:]:
            assert (width, height) == (WIDTH, HEIGHT)
            assert np.abs(colour - np.array(list(RED[:3]))).max() < 40, colour


@pytest.mark.parametrize(
    ("codec", "mime"), [(rtc.VideoCodec.VP8, "video/VP8"), (rtc.VideoCodec.H264, "video/H264")]
)
async def test_video_reaches_the_subscriber_as_video(
    server: sfu.Server, codec: rtc.VideoCodec.ValueType, mime: str
) -> None:
    """A 320x240 solid colour published in VP8 or H.264 arrives as video frames of that size."""
    async with (
        joined(server.url, "viewer", "video") as viewer,
        joined(server.url, "camera", "video") as camera,
        VideoWatcher(viewer, "camera") as watches,
        VideoSender(camera, codec) as sender,
    ):
        await until(lambda: len(watches.frames) >= 30, 15)
        publication = viewer.remote_participants["camera"].track_publications[sender.sid]
        assert publication.kind == rtc.TrackKind.KIND_VIDEO
        assert publication.mime_type == mime
        assert watches.kinds == {sender.sid: rtc.TrackKind.KIND_VIDEO}
        track = server.rooms["video"].participants["camera"].tracks[sender.sid]
        assert track.info().type == models.TrackType.VIDEO
        watches.check(20)


async def test_late_joiner_gets_video_as_video_and_a_keyframe(server: sfu.Server) -> None:
    """A late joiner is subscribed to video as video (never as audio) and, once its keyframe
    request reaches the publisher, decodes frames of the right size."""
    async with (
        joined(server.url, "camera", "late-video") as camera,
        VideoSender(camera) as video,
        ToneSender(camera, 440.0),
    ):
        # A second of video past the publisher's first keyframe: a late joiner must ask.
        await until(lambda: video_packets(server, "late-video", "camera", video.sid) >= 30, 10)
        async with (
            joined(server.url, "late", "late-video") as late,
            VideoWatcher(late, "camera") as watches,
        ):
            await until(lambda: len(watches.frames) >= 30, 15)
            await until(lambda: len(watches.kinds) == 2, 5)
            audio_sid = next(s for s in watches.kinds if s != video.sid)
            assert watches.kinds == {
                video.sid: rtc.TrackKind.KIND_VIDEO,
                audio_sid: rtc.TrackKind.KIND_AUDIO,
            }
            watches.check(20)
            publisher = server.connection("late-video", "camera")
            assert publisher is not None
            assert publisher.fanouts[video.sid].keyframe_requests >= 1


async def test_video_goes_on_after_the_audio_next_to_it_is_unpublished(server: sfu.Server) -> None:
    """Unpublishing the audio beside a forwarded video renegotiates; the video goes on."""
    async with (
        joined(server.url, "viewer", "mixed") as viewer,
        joined(server.url, "camera", "mixed") as camera,
        VideoWatcher(viewer, "camera") as watches,
        VideoSender(camera),
        ToneSender(camera, 440.0),
    ):
        await until(lambda: len(watches.frames) >= 30 and len(watches.kinds) == 2, 15)
        unsubscribed = asyncio.Event()
        viewer.on("track_unsubscribed", lambda *args: unsubscribed.set())
        (audio,) = [
            p
            for p in camera.local_participant.track_publications.values()
            if p.kind == rtc.TrackKind.KIND_AUDIO
        ]
        await camera.local_participant.unpublish_track(audio.sid)
        async with asyncio.timeout(10):
            await unsubscribed.wait()
        seen = len(watches.frames)
        await until(lambda: len(watches.frames) >= seen + 30, 10)
        watches.check(20)
        assert viewer.connection_state == rtc.ConnectionState.CONN_CONNECTED
