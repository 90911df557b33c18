"""Data tracks: named streams of frames a participant publishes, relayed without decoding.

A client publishes a data track by signalling (``PublishDataTrackRequest`` with a handle of its
choosing, 1-65535, and a name); the server answers with a ``DataTrackInfo`` (sid ``DTR_...``) and
lists the track in the participant's ``ParticipantInfo.data_tracks``, which is how the others
learn of it and, when it is missing from a later update, of its end. A subscriber asks for a
track by sid (``UpdateDataSubscription``) and is told the handle its packets will carry
(``DataTrackSubscriberHandles``, the whole map every time).

Frames travel on the ``_data_track`` data channel (unordered, no retransmission) of each peer
connection, cut by the SDK into packets of livekit's data-track format v0: a 12-byte header (version
and start/final/extension flags in the first byte, then the track handle, a sequence number, a
frame number and a 90 kHz timestamp, big-endian), optional extensions, then the payload. The
server forwards each packet as it came, its handle rewritten from the publisher's to the
subscriber's (as livekit-server's DataDownTrack does).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from livekit.protocol import rtc

from .room import DataTrack

HEADER_SIZE = 12
VERSION = 0
# livekit-server's limits on a PublishDataTrackRequest.
MAX_HANDLE = 65535
MAX_NAME_LENGTH = 256
# livekit-server's default limit on a custom frame encoding or schema name (LimitConfig).
MAX_ENCODING_LENGTH = 32

_HANDLE = struct.Struct(">H")


@dataclass(frozen=True)
class PacketHeader:
    """The fields of a data-track packet header the relay reads."""

    version: int
    handle: int


def parse_header(packet: bytes) -> PacketHeader | None:
    """The header of ``packet``, or None when it is too short to be a data-track packet."""
    if len(packet) < HEADER_SIZE:
        return None
    return PacketHeader(version=packet[0] >> 5, handle=_HANDLE.unpack_from(packet, 2)[0])


def with_handle(packet: bytes, handle: int) -> bytes:
    """``packet`` with its track handle replaced by ``handle``; the rest is unchanged."""
    return packet[:2] + _HANDLE.pack(handle) + packet[4:]


def refusal(
    req: rtc.PublishDataTrackRequest, published: dict[int, DataTrack]
) -> tuple[int, str] | None:
    """Why livekit-server refuses ``req`` given the tracks already ``published`` (reason,
    message), or None when it may be published. The grant is checked by the caller."""
    reason = rtc.RequestResponse.Reason
    if not 0 < req.pub_handle <= MAX_HANDLE:
        return reason.INVALID_HANDLE, f"handle should be > 0 AND < 65536, got {req.pub_handle}"
    if not req.name or len(req.name) > MAX_NAME_LENGTH:
        return (
            reason.INVALID_NAME,
            f"name should not be empty and should not exceed {MAX_NAME_LENGTH} characters",
        )
    customs = [
        encoding.custom
        for encoding in (req.frame_encoding, req.schema.encoding)
        if encoding.WhichOneof("value") == "custom"
    ]
    for custom in customs:
        if not 0 < len(custom) <= MAX_ENCODING_LENGTH:
            return (
                reason.INVALID_REQUEST,
                "encoding identifier is empty or exceeds the maximum length "
                f"({MAX_ENCODING_LENGTH})",
            )
    for track in published.values():
        if track.pub_handle == req.pub_handle:
            return reason.DUPLICATE_HANDLE, "a data track with same handle already exists"
        if track.name == req.name:
            return reason.DUPLICATE_NAME, "a data track with same name already exists"
    return None


def from_request(req: rtc.PublishDataTrackRequest) -> DataTrack:
    """The track a (valid) ``PublishDataTrackRequest`` publishes, with a fresh sid."""
    return DataTrack(
        pub_handle=req.pub_handle,
        name=req.name,
        encryption=req.encryption,
        frame_encoding=req.frame_encoding if req.HasField("frame_encoding") else None,
        schema=req.schema if req.HasField("schema") else None,
    )


class Subscriptions:
    """The data tracks one participant receives, by the handle the server gave each.

    Handles count up from 1 per subscriber (0 is not a valid handle), as livekit-server's do.
    """

    def __init__(self) -> None:
        # handle -> (publisher identity, publisher sid, track sid), and track sid -> handle
        self.by_handle: dict[int, tuple[str, str, str]] = {}
        self.by_sid: dict[str, int] = {}
        self._next = 0

    def add(self, publisher_identity: str, publisher_sid: str, track_sid: str) -> int:
        """Subscribe to ``track_sid`` (once); returns its handle."""
        handle = self.by_sid.get(track_sid)
        if handle is not None:
            return handle
        while True:
            self._next = self._next % MAX_HANDLE + 1
            if self._next not in self.by_handle:
                break
        self.by_handle[self._next] = (publisher_identity, publisher_sid, track_sid)
        self.by_sid[track_sid] = self._next
        return self._next

    def remove(self, track_sid: str) -> bool:
        """Unsubscribe from ``track_sid``; returns whether it was subscribed."""
        handle = self.by_sid.pop(track_sid, None)
        if handle is None:
            return False
        del self.by_handle[handle]
        return True

    def handles(self) -> rtc.SignalResponse:
        """A ``data_track_subscriber_handles`` message carrying every current handle."""
        published = rtc.DataTrackSubscriberHandles.PublishedDataTrack
        message = rtc.DataTrackSubscriberHandles()
        for handle, (identity, sid, track_sid) in self.by_handle.items():
            message.sub_handles[handle].CopyFrom(
                published(publisher_identity=identity, publisher_sid=sid, track_sid=track_sid)
            )
        return rtc.SignalResponse(data_track_subscriber_handles=message)
