"""Data tracks through the server: announced, subscribed, relayed frame by frame, unpublished."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from livekit import api, rtc
from livekit.protocol import rtc as proto

from echoproof import sfu
from echoproof.sfu import _signal as sig
from echoproof.sfu import datatrack
from echoproof.sfu.media import DATA_TRACK
from echoproof.sfu.room import Participant, Room
from tests.conftest import scaled
from tests.echoproof.sfu._clients import joined, token, until


class Announced:
    """The data tracks a room has been told of, and the sids it was told are gone."""

    def __init__(self, room: rtc.Room) -> None:
        self.tracks: dict[str, rtc.RemoteDataTrack] = {}
        self.gone: list[str] = []
        room.on("data_track_published", lambda t: self.tracks.__setitem__(t.info.name, t))
        room.on("data_track_unpublished", self.gone.append)


async def receive(
    track: rtc.LocalDataTrack, stream: rtc.DataTrackStream, payload: bytes
) -> rtc.DataTrackFrame:
    """Push ``payload`` until ``stream`` yields a frame (the first pushes may precede the
    subscriber's handle), and return that frame."""
    reading = asyncio.ensure_future(stream.read())
    try:
        async with asyncio.timeout(scaled(15)):
            while not reading.done():
                stamp = int(time.time() * 1000)
                track.try_push(rtc.DataTrackFrame(payload=payload, user_timestamp=stamp))
                await asyncio.wait({reading}, timeout=0.1)
        frame = reading.result()
    finally:
        reading.cancel()
    assert frame is not None
    return frame


async def test_data_track_is_announced_subscribed_relayed_and_unpublished(
    server: sfu.Server,
) -> None:
    """A published data track reaches the other participant, which receives its frames intact
    (one of 20 kB too, cut into many packets) and sees it unpublished."""
    async with (
        joined(server.url, "viewer", "dt") as viewer,
        joined(server.url, "robot", "dt") as robot,
    ):
        seen = Announced(viewer)
        # Not subscribed: the publisher's handle for "pose" (2) then differs from the
        # subscriber's (1), which the relay must write into every packet.
        decoy = await robot.local_participant.publish_data_track(name="decoy")
        track = await robot.local_participant.publish_data_track(name="pose")
        assert track.info.sid.startswith("DTR_")
        await until(lambda: "pose" in seen.tracks, 10)
        remote = seen.tracks["pose"]
        assert remote.publisher_identity == "robot"
        assert remote.info.sid == track.info.sid
        stream = remote.subscribe()

        small = await receive(track, stream, b"\x01" * 64)
        assert small.payload == b"\x01" * 64
        assert small.user_timestamp is not None
        assert abs(time.time() * 1000 - small.user_timestamp) < scaled(5000)
        big = bytes(range(256)) * 80
        frame = await receive(track, stream, big)
        while frame.payload != big:  # frames of the first payload still on their way
            frame = await receive(track, stream, big)

        await track.unpublish()
        await until(lambda: track.info.sid in seen.gone, 10)
        assert decoy.info.sid not in seen.gone
        async with asyncio.timeout(scaled(10)):
            while await stream.read() is not None:
                pass  # the stream ends once the track is gone


async def test_malformed_data_track_packets_are_dropped(server: sfu.Server) -> None:
    """Bytes too short for a header, another format version or an unpublished handle, arriving
    on a publisher's _data_track channel, reach nobody; the track's frames still do."""
    async with (
        joined(server.url, "viewer", "junk") as viewer,
        joined(server.url, "robot", "junk") as robot,
    ):
        seen = Announced(viewer)
        track = await robot.local_participant.publish_data_track(name="pose")
        await until(lambda: "pose" in seen.tracks, 10)
        stream = seen.tracks["pose"].subscribe()
        assert (await receive(track, stream, b"first")).payload == b"first"
        publisher, subscriber = (
            server.connection("junk", "robot"),
            server.connection("junk", "viewer"),
        )
        assert publisher is not None and subscriber is not None
        relayed: list[bytes] = []
        send = subscriber.subscriber.send_data
        subscriber.subscriber.send_data = lambda label, data: bool(relayed.append(data))  # type: ignore[method-assign]
        header = bytes([0b000_11_000, 0, 0, 1, 0, 9, 0, 9, 0, 0, 0, 0])
        short, version_2, unknown_handle = (
            b"\x00\x01",
            b"\x58" + header[1:],
            header[:3] + b"\x63" + header[4:],
        )
        for junk in (short, version_2, unknown_handle):
            publisher._on_data(DATA_TRACK, junk + b"junk")  # as the data channel hands it over
        publisher._on_data(DATA_TRACK, header + b"ok")
        assert relayed == [header + b"ok"]  # only the well-formed packet went on
        subscriber.subscriber.send_data = send  # type: ignore[method-assign]
        frame = await receive(track, stream, b"after")
        while frame.payload == b"first":
            frame = await receive(track, stream, b"after")
        assert frame.payload == b"after"


async def test_late_joiner_sees_a_published_data_track(server: sfu.Server) -> None:
    """A participant joining after the publish learns of the track from its join."""
    async with joined(server.url, "robot", "late") as robot:
        track = await robot.local_participant.publish_data_track(name="lidar")
        viewer = rtc.Room()
        seen = Announced(viewer)
        try:
            await viewer.connect(server.url, token("viewer", "late"))
            await until(lambda: "lidar" in seen.tracks, 10)
            assert seen.tracks["lidar"].info.sid == track.info.sid
        finally:
            await viewer.disconnect()


async def test_publisher_leaving_ends_its_data_tracks(server: sfu.Server) -> None:
    """When the publisher disconnects, the others see its data track unpublished."""
    async with joined(server.url, "viewer", "leave-dt") as viewer:
        seen = Announced(viewer)
        async with joined(server.url, "robot", "leave-dt") as robot:
            track = await robot.local_participant.publish_data_track(name="pose")
            await until(lambda: "pose" in seen.tracks, 10)
        await until(lambda: track.info.sid in seen.gone, 10)


@contextlib.asynccontextmanager
async def without_data_grant(url: str, identity: str, room: str) -> AsyncIterator[rtc.Room]:
    """A connected room whose token withholds canPublishData."""
    r = rtc.Room()
    grants = api.VideoGrants(room_join=True, room=room, can_publish_data=False)
    try:
        await r.connect(url, token(identity, room, grants=grants))
        yield r
    finally:
        await r.disconnect()


async def test_bad_publishes_are_refused(server: sfu.Server) -> None:
    """A duplicate name, a name over 256 characters and a publisher without canPublishData
    are each refused with an error, and the server keeps serving."""
    async with joined(server.url, "robot", "bad-dt") as robot:
        # Kept: a LocalDataTrack the program drops is unpublished by the SDK.
        kept = await robot.local_participant.publish_data_track(name="pose")
        with pytest.raises(rtc.participant.PublishDataTrackError):
            await robot.local_participant.publish_data_track(name="pose")
        with pytest.raises(rtc.participant.PublishDataTrackError):
            await robot.local_participant.publish_data_track(name="x" * 257)
        async with without_data_grant(server.url, "mute", "bad-dt") as mute:
            with pytest.raises(rtc.participant.PublishDataTrackError):
                await mute.local_participant.publish_data_track(name="pose2")
        published = server.rooms["bad-dt"].participants["robot"].data_tracks.values()
        assert [t.sid for t in published] == [kept.info.sid]
        other = await robot.local_participant.publish_data_track(name="other")
        assert other.is_published()


def session() -> sig.Session:
    room = Room(name="r")
    me = Participant(identity="me")
    room.add(me)
    return sig.Session(room, me)


def refusal_of(actions: list[sig.Action]) -> proto.RequestResponse:
    assert len(actions) == 1 and isinstance(actions[0], sig.Send)
    return actions[0].response.request_response


@pytest.mark.parametrize(
    ("handle", "name", "reason"),
    [
        (0, "a", proto.RequestResponse.Reason.INVALID_HANDLE),
        (65536, "a", proto.RequestResponse.Reason.INVALID_HANDLE),
        (1, "", proto.RequestResponse.Reason.INVALID_NAME),
        (7, "b", proto.RequestResponse.Reason.DUPLICATE_HANDLE),
    ],
)
def test_publish_requests_the_sdk_never_sends_are_refused(
    handle: int, name: str, reason: int
) -> None:
    """Handles outside 1-65535, an empty name, a handle in use: a request_response each."""
    s = session()
    first = proto.PublishDataTrackRequest(pub_handle=7, name="taken")
    assert s.handle(proto.SignalRequest(publish_data_track_request=first))[1] == sig.Announce()
    req = proto.PublishDataTrackRequest(pub_handle=handle, name=name)
    refused = refusal_of(s.handle(proto.SignalRequest(publish_data_track_request=req)))
    assert refused.reason == reason
    assert refused.publish_data_track == req
    assert list(s.participant.data_tracks) == [7]


def test_unpublishing_an_unknown_handle_is_not_found() -> None:
    """An unpublish for a handle never published: NOT_FOUND, nothing else happens."""
    req = proto.UnpublishDataTrackRequest(pub_handle=3)
    refused = refusal_of(session().handle(proto.SignalRequest(unpublish_data_track_request=req)))
    assert refused.reason == proto.RequestResponse.Reason.NOT_FOUND


def test_packet_header_and_handle_rewrite() -> None:
    """The relay reads a v0 header and changes only its handle; short input is no packet."""
    packet = bytes([0b000_1_1_0_00, 0, 0x12, 0x34, 0, 1, 0, 2, 0, 0, 0, 9]) + b"payload"
    header = datatrack.parse_header(packet)
    assert header == datatrack.PacketHeader(version=0, handle=0x1234)
    assert datatrack.parse_header(bytes([0b001_00000]) + packet[1:]) == datatrack.PacketHeader(
        version=1, handle=0x1234
    )
    moved = datatrack.with_handle(packet, 5)
    assert moved[2:4] == b"\x00\x05"
    assert moved[:2] + moved[4:] == packet[:2] + packet[4:]
    assert datatrack.parse_header(packet[:11]) is None


def test_subscriber_handles_count_from_one_and_list_every_track() -> None:
    """Each subscribed track gets its own handle (never 0); the message carries them all."""
    subs = datatrack.Subscriptions()
    assert subs.add("robot", "PA_r", "DTR_a") == 1
    assert subs.add("robot", "PA_r", "DTR_b") == 2
    assert subs.add("robot", "PA_r", "DTR_a") == 1
    handles = subs.handles().data_track_subscriber_handles.sub_handles
    assert {h: v.track_sid for h, v in handles.items()} == {1: "DTR_a", 2: "DTR_b"}
    assert subs.remove("DTR_a")
    assert not subs.remove("DTR_a")
    assert subs.add("robot", "PA_r", "DTR_c") == 3
