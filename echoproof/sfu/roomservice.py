"""The Twirp ``livekit.RoomService`` at ``/twirp/livekit.RoomService/<Method>`` (encodings and
errors: :mod:`echoproof.sfu._twirp`).

Each call needs the grant livekit-server asks for: ``roomCreate`` (CreateRoom, DeleteRoom),
``roomList`` (ListRooms), ``roomAdmin`` for the named room (participants, tracks, subscriptions,
data, room metadata). ForwardParticipant and MoveParticipant answer ``unimplemented``, as
livekit-server does outside LiveKit Cloud.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import Message
from livekit.protocol import models, rtc
from livekit.protocol import room as room_pb

from . import _signal as sig
from . import _twirp
from ._connection import Connection
from .auth import Authenticator
from .errors import TwirpError
from .hub import Hub
from .media import LOSSY, RELIABLE
from .room import check_limits


def _check_limits(**fields: Any) -> None:
    """livekit-server's limits on names, metadata and attributes, checked before the grant."""
    reason = check_limits(**fields)
    if reason is not None:
        raise TwirpError("invalid_argument", reason, 400)


class RoomService:
    """The RoomService's calls on one server's rooms."""

    def __init__(self, hub: Hub[Connection], auth: Authenticator) -> None:
        self._hub = hub
        self._auth = auth

    def handler(self) -> _twirp.Handler:
        """The aiohttp handler for ``POST /twirp/livekit.RoomService/{method}``."""
        return _twirp.handler(
            "RoomService",
            {
                "CreateRoom": (room_pb.CreateRoomRequest, self._create_room),
                "ListRooms": (room_pb.ListRoomsRequest, self._list_rooms),
                "DeleteRoom": (room_pb.DeleteRoomRequest, self._delete_room),
                "ListParticipants": (room_pb.ListParticipantsRequest, self._list_participants),
                "GetParticipant": (room_pb.RoomParticipantIdentity, self._get_participant),
                "RemoveParticipant": (room_pb.RoomParticipantIdentity, self._remove_participant),
                "MutePublishedTrack": (room_pb.MuteRoomTrackRequest, self._mute_published_track),
                "UpdateRoomMetadata": (
                    room_pb.UpdateRoomMetadataRequest,
                    self._update_room_metadata,
                ),
                "UpdateParticipant": (room_pb.UpdateParticipantRequest, self._update_participant),
                "UpdateSubscriptions": (
                    room_pb.UpdateSubscriptionsRequest,
                    self._update_subscriptions,
                ),
                "SendData": (room_pb.SendDataRequest, self._send_data),
                "ForwardParticipant": (room_pb.ForwardParticipantRequest, _unimplemented),
                "MoveParticipant": (room_pb.MoveParticipantRequest, _unimplemented),
            },
        )

    def _connected(self, room: str, identity: str) -> Connection:
        """The live connection of `identity` in `room`; Twirp not_found when there is none."""
        conn = self._hub.connection(room, identity)
        if conn is None:
            raise _twirp.not_found(f"participant {identity!r} in room {room!r}")
        return conn

    async def _create_room(self, req: room_pb.CreateRoomRequest, token: str) -> Message:
        self._auth.api_grant(token, create=True)
        if not req.name:
            raise TwirpError("invalid_argument", "CreateRoom needs a room name", 400)
        room = self._hub.create_room(
            req.name,
            tuple(req.agents),
            empty_timeout=req.empty_timeout,
            departure_timeout=req.departure_timeout,
            max_participants=req.max_participants,
            metadata=req.metadata,
        )
        return room.info()

    async def _list_rooms(self, req: room_pb.ListRoomsRequest, token: str) -> Message:
        self._auth.api_grant(token, list_rooms=True)
        names = set(req.names)
        rooms = [r.info() for r in self._hub.rooms.values() if not names or r.name in names]
        return room_pb.ListRoomsResponse(rooms=rooms)

    async def _delete_room(self, req: room_pb.DeleteRoomRequest, token: str) -> Message:
        self._auth.api_grant(token, create=True)
        if not await self._hub.delete_room(req.room):
            raise _twirp.not_found(f"room {req.room!r}")
        return room_pb.DeleteRoomResponse()

    async def _list_participants(self, req: room_pb.ListParticipantsRequest, token: str) -> Message:
        self._auth.api_grant(token, admin_room=req.room)
        room = self._hub.rooms.get(req.room)
        if room is None:
            raise _twirp.not_found(f"room {req.room!r}")
        return room_pb.ListParticipantsResponse(
            participants=[p.info() for p in room.participants.values()]
        )

    async def _get_participant(self, req: room_pb.RoomParticipantIdentity, token: str) -> Message:
        self._auth.api_grant(token, admin_room=req.room)
        room = self._hub.rooms.get(req.room)
        participant = room.participants.get(req.identity) if room else None
        if participant is None:
            raise _twirp.not_found(f"participant {req.identity!r} in room {req.room!r}")
        return participant.info()

    async def _remove_participant(
        self, req: room_pb.RoomParticipantIdentity, token: str
    ) -> Message:
        self._auth.api_grant(token, admin_room=req.room)
        conn = self._connected(req.room, req.identity)
        await conn.disconnect(models.DisconnectReason.PARTICIPANT_REMOVED)
        return room_pb.RemoveParticipantResponse()

    async def _mute_published_track(self, req: room_pb.MuteRoomTrackRequest, token: str) -> Message:
        self._auth.api_grant(token, admin_room=req.room)
        conn = self._hub.connection(req.room, req.identity)
        track = conn.participant.tracks.get(req.track_sid) if conn else None
        if conn is None or track is None:
            raise _twirp.not_found(
                f"track {req.track_sid!r} of {req.identity!r} in room {req.room!r}"
            )
        track.muted = req.muted
        # The publisher mutes its own track when told so; the others learn it from the update.
        mute = rtc.MuteTrackRequest(sid=track.sid, muted=req.muted)
        await conn.send(rtc.SignalResponse(mute=mute))
        await self._hub.broadcast(conn.room, sig.participant_update([conn.participant.info()]))
        return room_pb.MuteRoomTrackResponse(track=track.info())

    async def _update_room_metadata(
        self, req: room_pb.UpdateRoomMetadataRequest, token: str
    ) -> Message:
        _check_limits(metadata=req.metadata)
        self._auth.api_grant(token, admin_room=req.room)
        room = self._hub.rooms.get(req.room)
        if room is None:
            raise _twirp.not_found(f"room {req.room!r}")
        if room.set_metadata(req.metadata):
            await self._hub.broadcast(room, sig.room_update(room))
        return room.info()

    async def _update_participant(
        self, req: room_pb.UpdateParticipantRequest, token: str
    ) -> Message:
        attributes = dict(req.attributes)
        _check_limits(name=req.name, metadata=req.metadata, attributes=attributes)
        self._auth.api_grant(token, admin_room=req.room)
        conn = self._connected(req.room, req.identity)
        participant = conn.participant
        changed = participant.update(name=req.name, metadata=req.metadata, attributes=attributes)
        if req.HasField("permission") and participant.set_permission(req.permission):
            changed = True
            # As livekit-server: a revoked canPublish unpublishes, canSubscribe is reconciled.
            if not participant.can_publish:
                for track in list(participant.tracks.values()):
                    await conn.unpublish(track)
            if await conn.resubscribe():
                await conn.negotiate()
        if changed:
            await self._hub.broadcast(conn.room, sig.participant_update([participant.info()]))
            await conn.refresh_token()  # its claims changed
        return participant.info()

    async def _update_subscriptions(
        self, req: room_pb.UpdateSubscriptionsRequest, token: str
    ) -> Message:
        self._auth.api_grant(token, admin_room=req.room)
        conn = self._connected(req.room, req.identity)
        chosen = [*req.track_sids, *(s for p in req.participant_tracks for s in p.track_sids)]
        conn.session.choose(chosen, req.subscribe)
        if await conn.resubscribe():
            await conn.negotiate()
        return room_pb.UpdateSubscriptionsResponse()

    async def _send_data(self, req: room_pb.SendDataRequest, token: str) -> Message:
        self._auth.api_grant(token, admin_room=req.room)
        if req.nonce and len(req.nonce) != 16:
            raise TwirpError(
                "invalid_argument",
                f"nonce should be 16-bytes or not present, got: {len(req.nonce)} bytes",
                400,
            )
        room = self._hub.rooms.get(req.room)
        if room is None:
            raise _twirp.not_found(f"room {req.room!r}")
        user = models.UserPacket(
            payload=req.data,
            destination_sids=req.destination_sids,
            destination_identities=req.destination_identities,
            topic=req.topic or None,
            nonce=req.nonce,
        )
        packet = models.DataPacket(
            kind=req.kind, destination_identities=req.destination_identities, user=user
        )
        payload = packet.SerializeToString()
        label = RELIABLE if req.kind == models.DataPacket.Kind.RELIABLE else LOSSY
        identities, sids = set(req.destination_identities), set(req.destination_sids)
        for conn in self._hub.connections_in(room):
            who = conn.participant
            if (identities or sids) and who.identity not in identities and who.sid not in sids:
                continue
            conn.subscriber.send_data(label, payload)
        return room_pb.SendDataResponse()


async def _unimplemented(req: Message, token: str) -> Message:
    # livekit-server answers "not implemented" too: moving participants is a Cloud feature.
    raise TwirpError("unimplemented", "moving participants between rooms is not supported", 501)
