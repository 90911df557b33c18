"""The Twirp ``livekit.RoomService`` at ``/twirp/livekit.RoomService/<Method>``.

Bodies are protobuf (``application/protobuf``, what ``livekit.api.LiveKitAPI`` sends) or JSON
(``application/json``); the answer uses the request's encoding. Errors are Twirp JSON
``{"code": ..., "msg": ...}`` with the matching HTTP status. Each call needs the grant
livekit-server asks for: ``roomCreate`` (CreateRoom, DeleteRoom), ``roomList`` (ListRooms),
``roomAdmin`` for the named room (participants, tracks, subscriptions, data, room metadata).
ForwardParticipant and MoveParticipant answer ``unimplemented``, as livekit-server does outside
LiveKit Cloud.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from livekit.protocol import models, rtc
from livekit.protocol import room as room_pb
from loguru import logger

from . import _signal as sig
from .auth import token_from
from .errors import AuthError, TwirpError
from .media import LOSSY, RELIABLE
from .room import check_limits

if TYPE_CHECKING:
    from ._connection import Connection
    from .server import Server

# livekit-server's default for rooms created through the API without an empty_timeout.
DEFAULT_EMPTY_TIMEOUT = 300

_Call = Callable[["Server", Any, str], Awaitable[Message]]


def _not_found(what: str) -> TwirpError:
    return TwirpError("not_found", f"{what} does not exist", 404)


def _connected(server: Server, room: str, identity: str) -> Connection:
    """The live connection of `identity` in `room`; Twirp not_found when there is none."""
    conn = server.connection(room, identity)
    if conn is None:
        raise _not_found(f"participant {identity!r} in room {room!r}")
    return conn


def _check_limits(**fields: Any) -> None:
    """livekit-server's limits on names, metadata and attributes, checked before the grant."""
    reason = check_limits(**fields)
    if reason is not None:
        raise TwirpError("invalid_argument", reason, 400)


async def _create_room(server: Server, req: room_pb.CreateRoomRequest, token: str) -> Message:
    server.auth.api_grant(token, create=True)
    if not req.name:
        raise TwirpError("invalid_argument", "CreateRoom needs a room name", 400)
    room = server.create_room(
        req.name,
        empty_timeout=req.empty_timeout or DEFAULT_EMPTY_TIMEOUT,
        departure_timeout=req.departure_timeout,
        max_participants=req.max_participants,
        metadata=req.metadata,
        agents=tuple(req.agents),
    )
    return room.info()


async def _list_rooms(server: Server, req: room_pb.ListRoomsRequest, token: str) -> Message:
    server.auth.api_grant(token, list_rooms=True)
    names = set(req.names)
    rooms = [r.info() for r in server.rooms.values() if not names or r.name in names]
    return room_pb.ListRoomsResponse(rooms=rooms)


async def _delete_room(server: Server, req: room_pb.DeleteRoomRequest, token: str) -> Message:
    server.auth.api_grant(token, create=True)
    if not await server.delete_room(req.room):
        raise _not_found(f"room {req.room!r}")
    return room_pb.DeleteRoomResponse()


async def _list_participants(
    server: Server, req: room_pb.ListParticipantsRequest, token: str
) -> Message:
    server.auth.api_grant(token, admin_room=req.room)
    room = server.rooms.get(req.room)
    if room is None:
        raise _not_found(f"room {req.room!r}")
    return room_pb.ListParticipantsResponse(
        participants=[p.info() for p in room.participants.values()]
    )


async def _get_participant(
    server: Server, req: room_pb.RoomParticipantIdentity, token: str
) -> Message:
    server.auth.api_grant(token, admin_room=req.room)
    room = server.rooms.get(req.room)
    participant = room.participants.get(req.identity) if room else None
    if participant is None:
        raise _not_found(f"participant {req.identity!r} in room {req.room!r}")
    return participant.info()


async def _remove_participant(
    server: Server, req: room_pb.RoomParticipantIdentity, token: str
) -> Message:
    server.auth.api_grant(token, admin_room=req.room)
    conn = _connected(server, req.room, req.identity)
    await conn.disconnect(models.DisconnectReason.PARTICIPANT_REMOVED)
    return room_pb.RemoveParticipantResponse()


async def _mute_published_track(
    server: Server, req: room_pb.MuteRoomTrackRequest, token: str
) -> Message:
    server.auth.api_grant(token, admin_room=req.room)
    conn = server.connection(req.room, req.identity)
    track = conn.participant.tracks.get(req.track_sid) if conn else None
    if conn is None or track is None:
        raise _not_found(f"track {req.track_sid!r} of {req.identity!r} in room {req.room!r}")
    track.muted = req.muted
    # The publisher mutes its own track when told so; the others learn it from the update.
    await conn.send(rtc.SignalResponse(mute=rtc.MuteTrackRequest(sid=track.sid, muted=req.muted)))
    await server.broadcast(conn.room, sig.participant_update([conn.participant.info()]))
    return room_pb.MuteRoomTrackResponse(track=track.info())


async def _update_room_metadata(
    server: Server, req: room_pb.UpdateRoomMetadataRequest, token: str
) -> Message:
    _check_limits(metadata=req.metadata)
    server.auth.api_grant(token, admin_room=req.room)
    room = server.rooms.get(req.room)
    if room is None:
        raise _not_found(f"room {req.room!r}")
    if room.set_metadata(req.metadata):
        await server.broadcast(room, sig.room_update(room))
    return room.info()


async def _update_participant(
    server: Server, req: room_pb.UpdateParticipantRequest, token: str
) -> Message:
    attributes = dict(req.attributes)
    _check_limits(name=req.name, metadata=req.metadata, attributes=attributes)
    server.auth.api_grant(token, admin_room=req.room)
    conn = _connected(server, req.room, req.identity)
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
        await server.broadcast(conn.room, sig.participant_update([participant.info()]))
        await conn.refresh_token()  # its claims changed
    return participant.info()


async def _update_subscriptions(
    server: Server, req: room_pb.UpdateSubscriptionsRequest, token: str
) -> Message:
    server.auth.api_grant(token, admin_room=req.room)
    conn = _connected(server, req.room, req.identity)
    chosen = [*req.track_sids, *(s for p in req.participant_tracks for s in p.track_sids)]
    conn.session.choose(chosen, req.subscribe)
    if await conn.resubscribe():
        await conn.negotiate()
    return room_pb.UpdateSubscriptionsResponse()


async def _send_data(server: Server, req: room_pb.SendDataRequest, token: str) -> Message:
    server.auth.api_grant(token, admin_room=req.room)
    if req.nonce and len(req.nonce) != 16:
        raise TwirpError(
            "invalid_argument",
            f"nonce should be 16-bytes or not present, got: {len(req.nonce)} bytes",
            400,
        )
    room = server.rooms.get(req.room)
    if room is None:
        raise _not_found(f"room {req.room!r}")
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
    for conn in server.connections_in(room):
        who = conn.participant
        if (identities or sids) and who.identity not in identities and who.sid not in sids:
            continue
        conn.subscriber.send_data(label, payload)
    return room_pb.SendDataResponse()


async def _unimplemented(server: Server, req: Message, token: str) -> Message:
    # livekit-server answers "not implemented" too: moving participants is a Cloud feature.
    raise TwirpError("unimplemented", "moving participants between rooms is not supported", 501)


_METHODS: dict[str, tuple[type[Message], _Call]] = {
    "CreateRoom": (room_pb.CreateRoomRequest, _create_room),
    "ListRooms": (room_pb.ListRoomsRequest, _list_rooms),
    "DeleteRoom": (room_pb.DeleteRoomRequest, _delete_room),
    "ListParticipants": (room_pb.ListParticipantsRequest, _list_participants),
    "GetParticipant": (room_pb.RoomParticipantIdentity, _get_participant),
    "RemoveParticipant": (room_pb.RoomParticipantIdentity, _remove_participant),
    "MutePublishedTrack": (room_pb.MuteRoomTrackRequest, _mute_published_track),
    "UpdateRoomMetadata": (room_pb.UpdateRoomMetadataRequest, _update_room_metadata),
    "UpdateParticipant": (room_pb.UpdateParticipantRequest, _update_participant),
    "UpdateSubscriptions": (room_pb.UpdateSubscriptionsRequest, _update_subscriptions),
    "SendData": (room_pb.SendDataRequest, _send_data),
    "ForwardParticipant": (room_pb.ForwardParticipantRequest, _unimplemented),
    "MoveParticipant": (room_pb.MoveParticipantRequest, _unimplemented),
}


def _error(exc: TwirpError) -> web.Response:
    return web.Response(
        status=exc.status,
        text=json.dumps({"code": exc.code, "msg": exc.msg}),
        content_type="application/json",
    )


Methods = dict[str, tuple[type[Message], _Call]]


def handler(
    server: Server, methods: Methods = _METHODS, service: str = "RoomService"
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The aiohttp handler for ``POST /twirp/livekit.<service>/{method}``: by default the
    RoomService's, else ``methods`` of another Twirp ``service`` (same encodings and errors)."""

    async def handle(request: web.Request) -> web.Response:
        method = request.match_info["method"]
        try:
            return await _call(server, request, method, methods, service)
        except AuthError as exc:
            code, status = (
                ("permission_denied", 403)
                if str(exc).startswith("permission denied")
                else ("unauthenticated", 401)
            )
            logger.info("{} {} refused: {}", service, method, exc)
            return _error(TwirpError(code, str(exc), status))
        except TwirpError as exc:
            return _error(exc)

    return handle


async def _call(
    server: Server, request: web.Request, method: str, methods: Methods, service: str
) -> web.Response:
    entry = methods.get(method)
    if entry is None:
        raise TwirpError("bad_route", f"no {service} method called {method!r}", 404)
    message_type, call = entry
    token = token_from(request.headers, {})
    body = await request.read()
    as_json = request.content_type == "application/json"
    req = message_type()
    try:
        if as_json:
            json_format.Parse(body.decode() or "{}", req, ignore_unknown_fields=True)
        elif request.content_type == "application/protobuf":
            req.ParseFromString(body)
        else:
            raise TwirpError(
                "bad_route",
                f"unexpected Content-Type {request.content_type!r}: "
                "expected application/protobuf or application/json",
                415,
            )
    except (DecodeError, json_format.ParseError, UnicodeDecodeError) as exc:
        raise TwirpError(
            "malformed", f"the {method} body does not decode as {message_type.__name__}: {exc}", 400
        ) from None
    result = await call(server, req, token)
    if as_json:
        return web.Response(
            text=json_format.MessageToJson(result, preserving_proto_field_name=True),
            content_type="application/json",
        )
    return web.Response(body=result.SerializeToString(), content_type="application/protobuf")
