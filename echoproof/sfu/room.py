"""Rooms, participants and tracks as the protocol describes them, with no I/O.

Identifiers follow livekit-server: participants ``PA_``, tracks ``TR_``, data tracks ``DTR_``,
rooms ``RM_`` (the SDK rejects participant and track sids with any other prefix).
"""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from livekit.protocol import models, rtc

_ALPHABET = string.ascii_letters + string.digits

# livekit-server's default limits on what a participant may carry (config.LimitConfig).
MAX_NAME_LENGTH = 256
MAX_METADATA_SIZE = 512 * 1024
MAX_ATTRIBUTES_SIZE = 64 * 1024
# Participants that do not keep a room open or count towards its limit (livekit-server's
# "dependent" participants).
DEPENDENT_KINDS = (models.ParticipantInfo.Kind.AGENT, models.ParticipantInfo.Kind.EGRESS)


def new_sid(prefix: str) -> str:
    """A fresh identifier such as ``PA_x1Y2z3...``: ``prefix`` then 12 random alphanumerics."""
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(12))


@dataclass
class Track:
    """One published track: its sid, the client's cid for it, and its description."""

    cid: str
    name: str
    type: int = models.TrackType.AUDIO
    source: int = models.TrackSource.MICROPHONE
    muted: bool = False
    stream: str = ""
    disable_dtx: bool = False
    stereo: bool = False
    disable_red: bool = False
    mime_type: str = "audio/opus"
    # what the publisher puts in its frames' packet trailer (e.g. user timestamps, frame ids):
    # echoed back so that the SDK's publication and its subscribers know (livekit-server does)
    packet_trailer_features: tuple[int, ...] = ()
    sid: str = field(default_factory=lambda: new_sid("TR_"))

    def info(self) -> models.TrackInfo:
        """The track as a ``TrackInfo`` message."""
        return models.TrackInfo(
            sid=self.sid,
            type=self.type,  # type: ignore[arg-type]
            name=self.name,
            source=self.source,  # type: ignore[arg-type]
            muted=self.muted,
            mime_type=self.mime_type,
            stream=self.stream,
            disable_dtx=self.disable_dtx,
            stereo=self.stereo,
            disable_red=self.disable_red,
            packet_trailer_features=list(self.packet_trailer_features),  # type: ignore[arg-type]
        )


@dataclass
class DataTrack:
    """One published data track (see :mod:`sfu.datatrack`): the publisher's handle for it, its
    sid and its description."""

    pub_handle: int
    name: str
    encryption: int = models.Encryption.Type.NONE
    frame_encoding: models.DataTrackFrameEncoding | None = None
    schema: models.DataTrackSchemaId | None = None
    sid: str = field(default_factory=lambda: new_sid("DTR_"))

    def info(self) -> models.DataTrackInfo:
        """The track as a ``DataTrackInfo`` message."""
        return models.DataTrackInfo(
            pub_handle=self.pub_handle,
            sid=self.sid,
            name=self.name,
            encryption=self.encryption,  # type: ignore[arg-type]
            frame_encoding=self.frame_encoding,
            schema=self.schema,
        )


@dataclass
class Participant:
    """A participant in a room; ``tracks`` holds only tracks whose media is negotiated."""

    identity: str
    name: str = ""
    metadata: str = ""
    can_publish: bool = True
    can_subscribe: bool = True
    can_publish_data: bool = True
    can_update_metadata: bool = False
    kind: int = models.ParticipantInfo.Kind.STANDARD
    attributes: dict[str, str] = field(default_factory=dict)
    state: int = models.ParticipantInfo.State.JOINING
    sid: str = field(default_factory=lambda: new_sid("PA_"))
    joined_at: float = field(default_factory=time.time)
    tracks: dict[str, Track] = field(default_factory=dict)
    # Published data tracks, by the publisher's handle for each.
    data_tracks: dict[int, DataTrack] = field(default_factory=dict)
    # Who may subscribe to this participant's tracks; None: everyone (the default).
    subscription_permission: rtc.SubscriptionPermission | None = None
    version: int = 0

    def info(self) -> models.ParticipantInfo:
        """The participant as a ``ParticipantInfo`` message; each call bumps its version."""
        # Clients ignore an update whose version is not newer than the last one they saw.
        self.version += 1
        return models.ParticipantInfo(
            sid=self.sid,
            identity=self.identity,
            name=self.name,
            metadata=self.metadata,
            state=self.state,  # type: ignore[arg-type]
            tracks=[t.info() for t in self.tracks.values()],
            joined_at=int(self.joined_at),
            joined_at_ms=int(self.joined_at * 1000),
            version=self.version,
            is_publisher=bool(self.tracks or self.data_tracks),
            permission=self.permission(),
            kind=self.kind,  # type: ignore[arg-type]
            attributes=self.attributes,
            data_tracks=[t.info() for t in self.data_tracks.values()],
        )

    @property
    def dependent(self) -> bool:
        """Whether it is an agent or egress: it does not keep its room open (livekit-server)."""
        return self.kind in DEPENDENT_KINDS

    def allows(self, subscriber: Participant, track_sid: str) -> bool:
        """Whether this publisher lets ``subscriber`` receive its track ``track_sid``."""
        permission = self.subscription_permission
        if permission is None or permission.all_participants:
            return True
        for entry in permission.track_permissions:
            if subscriber.identity == entry.participant_identity or (
                entry.participant_sid and subscriber.sid == entry.participant_sid
            ):
                return entry.all_tracks or track_sid in entry.track_sids
        return False

    def permission(self) -> models.ParticipantPermission:
        """What the participant may do, as a ``ParticipantPermission`` message."""
        return models.ParticipantPermission(
            can_subscribe=self.can_subscribe,
            can_publish=self.can_publish,
            can_publish_data=self.can_publish_data,
            can_update_metadata=self.can_update_metadata,
        )

    def set_permission(self, permission: models.ParticipantPermission) -> bool:
        """Take the grants of ``permission``; returns whether any changed."""
        before = self.permission()
        self.can_subscribe = permission.can_subscribe
        self.can_publish = permission.can_publish
        self.can_publish_data = permission.can_publish_data
        self.can_update_metadata = permission.can_update_metadata
        return self.permission() != before

    def update(
        self, *, name: str = "", metadata: str = "", attributes: Mapping[str, str] | None = None
    ) -> bool:
        """Apply an update as livekit-server does; returns whether anything changed.

        An empty name or metadata leaves it as it is; attributes merge into the existing
        ones, and an attribute set to the empty string is deleted.
        """
        before = (self.name, self.metadata, dict(self.attributes))
        if name:
            self.name = name
        if metadata:
            self.metadata = metadata
        for key, value in (attributes or {}).items():
            if value:
                self.attributes[key] = value
            else:
                self.attributes.pop(key, None)
        return (self.name, self.metadata, self.attributes) != before


@dataclass
class Room:
    """A room and who is in it, keyed by identity."""

    name: str
    empty_timeout: int = 0
    departure_timeout: int = 0
    max_participants: int = 0
    metadata: str = ""
    created_by_api: bool = False
    sid: str = field(default_factory=lambda: new_sid("RM_"))
    created_at: float = field(default_factory=time.time)
    participants: dict[str, Participant] = field(default_factory=dict)
    empty_since: float | None = field(default_factory=time.monotonic)

    def info(self) -> models.Room:
        """The room as a ``Room`` message."""
        return models.Room(
            sid=self.sid,
            name=self.name,
            empty_timeout=self.empty_timeout,
            departure_timeout=self.departure_timeout,
            max_participants=self.max_participants,
            creation_time=int(self.created_at),
            creation_time_ms=int(self.created_at * 1000),
            metadata=self.metadata,
            num_participants=len(self.participants),
            num_publishers=sum(1 for p in self.participants.values() if p.tracks or p.data_tracks),
        )

    def add(self, participant: Participant) -> Participant | None:
        """Seat ``participant``; returns the one it replaces (same identity), if any."""
        previous = self.participants.get(participant.identity)
        self.participants[participant.identity] = participant
        if not participant.dependent:
            self.empty_since = None
        return previous

    def remove(self, participant: Participant) -> bool:
        """Unseat ``participant`` if it is still the one seated under its identity."""
        if self.participants.get(participant.identity) is not participant:
            return False
        del self.participants[participant.identity]
        if self.empty_since is None and all(p.dependent for p in self.participants.values()):
            self.empty_since = time.monotonic()
        return True

    def others(self, participant: Participant) -> list[Participant]:
        """Everyone in the room except ``participant``."""
        return [p for p in self.participants.values() if p is not participant]

    def others_than(self, identity: str) -> list[Participant]:
        """Everyone in the room but the participant called ``identity`` (who would be replaced)."""
        return [p for p in self.participants.values() if p.identity != identity]

    def set_metadata(self, metadata: str) -> bool:
        """Replace the room's metadata; returns whether it changed."""
        changed = metadata != self.metadata
        self.metadata = metadata
        return changed

    def expired(self, now: float) -> bool:
        """Whether a room empty but for agents has outlived its empty timeout (rooms made by a
        join: at once)."""
        if self.empty_since is None:
            return False
        return now - self.empty_since >= self.empty_timeout


def check_limits(
    *, name: str = "", metadata: str = "", attributes: Mapping[str, str] | None = None
) -> str | None:
    """Why an update breaks livekit-server's default limits, or None when it does not."""
    if len(name.encode()) > MAX_NAME_LENGTH:
        return "exceeds name length limit"
    if len(metadata.encode()) > MAX_METADATA_SIZE:
        return "exceeds metadata size limit"
    size = sum(len(k.encode()) + len(v.encode()) for k, v in (attributes or {}).items())
    if size > MAX_ATTRIBUTES_SIZE:
        return "exceeds attributes size limit"
    return None
