"""The signalling logic of one participant, with no I/O.

A :class:`Session` turns one ``SignalRequest`` into a list of actions: responses to send back to
the client (:class:`Send`) and work for the media and room layers (:class:`AnswerOffer`,
:class:`AcceptAnswer`, :class:`AddCandidate`, :class:`TrackMuted`, :class:`Announce`,
:class:`Resubscribe`, :class:`SubscribeData`, :class:`DataUnpublished`, :class:`Leave`). The
front end executes them; tests feed requests and read actions without sockets.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from google.protobuf.message import DecodeError
from livekit.protocol import models, rtc

from . import datatrack
from .errors import ProtocolError
from .room import DataTrack, Participant, Room, Track, check_limits

PROTOCOL_VERSION = 16
SERVER_VERSION = "1.9.0"

# How long a participant whose signal connection was lost after its media connected is kept,
# media flowing, for the client to resume (``/rtc?reconnect=1&sid=...``). The SDK's first attempt
# comes at once; livekit-server waits as long after a peer connection fails.
RESUME_WINDOW_S = 5.0

PUBLISHER = rtc.SignalTarget.PUBLISHER
SUBSCRIBER = rtc.SignalTarget.SUBSCRIBER


@dataclass(frozen=True)
class Send:
    """Send ``response`` to this participant."""

    response: rtc.SignalResponse


@dataclass(frozen=True)
class AnswerOffer:
    """Answer the client's offer on the publisher connection, echoing ``offer_id``."""

    sdp: str
    offer_id: int


@dataclass(frozen=True)
class AcceptAnswer:
    """Apply the client's answer on the subscriber connection."""

    sdp: str


@dataclass(frozen=True)
class AddCandidate:
    """Add a remote ICE candidate to the connection named by ``target``."""

    target: int
    candidate: str
    sdp_mid: str | None
    sdp_mline_index: int | None


@dataclass(frozen=True)
class TrackMuted:
    """A published track was muted or unmuted: tell the others."""

    track: Track


@dataclass(frozen=True)
class Announce:
    """The participant changed (name, metadata, attributes): send its update to everyone."""


@dataclass(frozen=True)
class Resubscribe:
    """Subscriptions may have changed: of this participant, or (``room``) of everyone else."""

    room: bool = False


@dataclass(frozen=True)
class SubscribeData:
    """The client asks to receive (or no longer) the data track ``track_sid``."""

    track_sid: str
    subscribe: bool


@dataclass(frozen=True)
class DataUnpublished:
    """This participant unpublished ``track``: its subscribers lose it."""

    track: DataTrack


@dataclass(frozen=True)
class Leave:
    """The client left: tear its connection down and announce ``reason`` (DisconnectReason)."""

    reason: int


Action = (
    Send
    | AnswerOffer
    | AcceptAnswer
    | AddCandidate
    | TrackMuted
    | Announce
    | Resubscribe
    | SubscribeData
    | DataUnpublished
    | Leave
)


def server_info() -> models.ServerInfo:
    """Who this server is, as the join and reconnect answers say."""
    return models.ServerInfo(
        edition=models.ServerInfo.Edition.Standard,
        version=SERVER_VERSION,
        protocol=PROTOCOL_VERSION,
        node_id="echoproof-sfu",
    )


def now_ms() -> int:
    """Wall-clock time in milliseconds, as ping and pong carry it."""
    return int(time.time() * 1000)


class Session:
    """One participant's side of the signalling conversation."""

    def __init__(
        self,
        room: Room,
        participant: Participant,
        *,
        ping_interval: int = 5,
        ping_timeout: int = 15,
        auto_subscribe: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ping_interval <= 0 or ping_timeout <= 0:
            raise ValueError("ping_interval and ping_timeout must be positive")
        self.room = room
        self.participant = participant
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self._clock = clock
        self.last_seen = clock()
        # Tracks announced by add_track whose media is not negotiated yet, by cid.
        self.pending: dict[str, Track] = {}
        self._offer_id = 0
        # Whether to receive tracks nobody chose for: the join's auto_subscribe parameter.
        self.auto_subscribe = auto_subscribe
        # Tracks the client subscribed to (True) or unsubscribed from (False), by sid.
        self._chosen: dict[str, bool] = {}

    # -- server to client -------------------------------------------------------------------

    def join_response(self) -> rtc.SignalResponse:
        """The first message: the room, the participant itself and everyone already there."""
        return rtc.SignalResponse(
            join=rtc.JoinResponse(
                room=self.room.info(),
                participant=self.participant.info(),
                other_participants=[p.info() for p in self.room.others(self.participant)],
                server_version=SERVER_VERSION,
                server_info=server_info(),
                subscriber_primary=True,
                ping_interval=self.ping_interval,
                ping_timeout=self.ping_timeout,
                fast_publish=False,
            )
        )

    def resumed(self) -> list[rtc.SignalResponse]:
        """What a resumed client is sent, as livekit-server sends it: the ``reconnect``
        answer, then everyone as they are now (itself included: its metadata may have
        changed meanwhile), then the room."""
        self.last_seen = self._clock()
        return [
            rtc.SignalResponse(
                reconnect=rtc.ReconnectResponse(
                    server_info=server_info(), client_configuration=models.ClientConfiguration()
                )
            ),
            participant_update(p.info() for p in self.room.participants.values()),
            room_update(self.room),
        ]

    def subscriber_offer(self, sdp: str) -> rtc.SignalResponse:
        """An offer on the subscriber connection, numbered."""
        self._offer_id += 1
        return rtc.SignalResponse(
            offer=rtc.SessionDescription(type="offer", sdp=sdp, id=self._offer_id)
        )

    # -- client to server -------------------------------------------------------------------

    def wants(self, track_sid: str) -> bool:
        """Whether the client wants to receive ``track_sid`` (its grants aside)."""
        return self._chosen.get(track_sid, self.auto_subscribe)

    def choose(self, track_sids: Iterable[str], subscribe: bool) -> None:
        """Record the client's (or the RoomService's) choice for these tracks."""
        for track_sid in track_sids:
            self._chosen[track_sid] = subscribe

    def timed_out(self) -> bool:
        """Whether the client has been silent for longer than ``ping_timeout``."""
        return self._clock() - self.last_seen > self.ping_timeout

    def receive(self, frame: bytes | str) -> list[Action]:
        """Parse one WebSocket frame and handle it; :class:`ProtocolError` if malformed."""
        if isinstance(frame, str):
            raise ProtocolError("expected a binary SignalRequest frame, got a text frame")
        request = rtc.SignalRequest()
        try:
            request.ParseFromString(frame)
        except DecodeError:
            raise ProtocolError(
                f"malformed frame: {len(frame)} bytes that do not decode as a SignalRequest"
            ) from None
        return self.handle(request)

    def handle(self, request: rtc.SignalRequest) -> list[Action]:
        """Handle one request; the list says what to send and what to do."""
        self.last_seen = self._clock()
        kind = request.WhichOneof("message")
        if kind == "ping_req":
            pong = rtc.Pong(last_ping_timestamp=request.ping_req.timestamp, timestamp=now_ms())
            return [Send(rtc.SignalResponse(pong_resp=pong))]
        if kind == "ping":
            return [Send(rtc.SignalResponse(pong=now_ms()))]
        if kind == "add_track":
            return self._add_track(request.add_track)
        if kind == "offer":
            return [AnswerOffer(request.offer.sdp, request.offer.id)]
        if kind == "answer":
            return [AcceptAnswer(request.answer.sdp)]
        if kind == "trickle":
            return [self._trickle(request.trickle)]
        if kind == "mute":
            return self._mute(request.mute)
        if kind == "subscription":
            sub = request.subscription
            chosen = [*sub.track_sids, *(s for p in sub.participant_tracks for s in p.track_sids)]
            self.choose(chosen, sub.subscribe)
            return [Resubscribe()]
        if kind == "subscription_permission":
            permission = rtc.SubscriptionPermission()
            permission.CopyFrom(request.subscription_permission)
            self.participant.subscription_permission = permission
            return [Resubscribe(room=True)]
        if kind == "update_metadata":
            return self._update_metadata(request.update_metadata)
        if kind == "publish_data_track_request":
            return self._publish_data(request.publish_data_track_request)
        if kind == "unpublish_data_track_request":
            return self._unpublish_data(request.unpublish_data_track_request)
        if kind == "update_data_subscription":
            updates = request.update_data_subscription.updates
            return [SubscribeData(u.track_sid, u.subscribe) for u in updates]
        if kind == "leave":
            return [Leave(leave_reason(request.leave.reason))]
        # track_setting, update_layers, sync_state and the rest: not needed here.
        return []

    def _add_track(self, req: rtc.AddTrackRequest) -> list[Action]:
        if not self.participant.can_publish:
            raise ProtocolError(
                f"{self.participant.identity} asked to publish a track without the canPublish grant"
            )
        if not req.cid:
            raise ProtocolError("add_track without a cid")
        track = self.pending.get(req.cid)
        if track is None:
            track = Track(
                cid=req.cid,
                name=req.name,
                type=req.type,
                source=req.source,
                muted=req.muted,
                stream=req.stream,
                disable_dtx=req.disable_dtx,
                stereo=req.stereo or models.AudioTrackFeature.TF_STEREO in req.audio_features,
                disable_red=req.disable_red,
                packet_trailer_features=tuple(req.packet_trailer_features),
                # The SDK names a video codec ("vp8") per layer; the answer settles it.
                mime_type=_mime_of(req),
            )
            self.pending[req.cid] = track
        published = rtc.TrackPublishedResponse(cid=req.cid, track=track.info())
        return [Send(rtc.SignalResponse(track_published=published))]

    def _trickle(self, req: rtc.TrickleRequest) -> AddCandidate:
        try:
            init = json.loads(req.candidateInit)
            candidate = init["candidate"]
        except (ValueError, KeyError, TypeError):
            raise ProtocolError(
                "trickle candidateInit is not JSON with a 'candidate' field"
            ) from None
        if not isinstance(candidate, str):
            raise ProtocolError("trickle candidate is not a string")
        mid = init.get("sdpMid")
        index = init.get("sdpMLineIndex")
        return AddCandidate(
            target=req.target,
            candidate=candidate,
            sdp_mid=mid if isinstance(mid, str) else None,
            sdp_mline_index=index if isinstance(index, int) else None,
        )

    def _mute(self, req: rtc.MuteTrackRequest) -> list[Action]:
        track = self.participant.tracks.get(req.sid)
        if track is None:
            pending = [t for t in self.pending.values() if t.sid == req.sid]
            if pending:
                pending[0].muted = req.muted
            return []
        if track.muted == req.muted:
            return []
        track.muted = req.muted
        return [TrackMuted(track)]

    def _update_metadata(self, req: rtc.UpdateParticipantMetadata) -> list[Action]:
        # As livekit-server: the canUpdateOwnMetadata grant, then its limits, then the update;
        # every outcome is answered with a request_response carrying the request back.
        attributes = dict(req.attributes)
        problem: tuple[int, str] | None = None
        if not self.participant.can_update_metadata:
            problem = (
                rtc.RequestResponse.Reason.NOT_ALLOWED,
                "does not have permission to update own metadata",
            )
        else:
            reason = check_limits(name=req.name, metadata=req.metadata, attributes=attributes)
            if reason is not None:
                problem = (rtc.RequestResponse.Reason.LIMIT_EXCEEDED, reason)
        response = rtc.RequestResponse(request_id=req.request_id, update_metadata=req)
        if problem is not None:
            response.reason, response.message = problem  # type: ignore[assignment]
            return [Send(rtc.SignalResponse(request_response=response))]
        changed = self.participant.update(
            name=req.name, metadata=req.metadata, attributes=attributes
        )
        # The update first, so the client's own view has changed when its request returns.
        answer = Send(rtc.SignalResponse(request_response=response))
        return [Announce(), answer] if changed else [answer]

    def _publish_data(self, req: rtc.PublishDataTrackRequest) -> list[Action]:
        # As livekit-server: the canPublishData grant, then the request's own checks; a refusal
        # is a request_response carrying the request back (the SDK matches it by handle).
        published = self.participant.data_tracks
        problem: tuple[int, str] | None
        if not self.participant.can_publish_data:
            problem = (
                rtc.RequestResponse.Reason.NOT_ALLOWED,
                "does not have permission to publish data",
            )
        else:
            problem = datatrack.refusal(req, published)
        if problem is not None:
            response = rtc.RequestResponse(publish_data_track=req)
            response.reason, response.message = problem  # type: ignore[assignment]
            return [Send(rtc.SignalResponse(request_response=response))]
        track = published[req.pub_handle] = datatrack.from_request(req)
        answer = rtc.PublishDataTrackResponse(info=track.info())
        return [Send(rtc.SignalResponse(publish_data_track_response=answer)), Announce()]

    def _unpublish_data(self, req: rtc.UnpublishDataTrackRequest) -> list[Action]:
        track = self.participant.data_tracks.pop(req.pub_handle, None)
        if track is None:
            response = rtc.RequestResponse(
                reason=rtc.RequestResponse.Reason.NOT_FOUND,
                message=f"no data track published with handle {req.pub_handle}",
                unpublish_data_track=req,
            )
            return [Send(rtc.SignalResponse(request_response=response))]
        answer = rtc.UnpublishDataTrackResponse(info=track.info())
        return [
            DataUnpublished(track),
            Send(rtc.SignalResponse(unpublish_data_track_response=answer)),
            Announce(),
        ]

    def negotiated(self, cids: Iterable[str]) -> list[Track]:
        """Move pending tracks whose media is now negotiated into the participant's tracks."""
        published = []
        for cid in cids:
            track = self.pending.pop(cid, None)
            if track is not None:
                self.participant.tracks[track.sid] = track
                published.append(track)
        return published


def _mime_of(req: rtc.AddTrackRequest) -> str:
    """The mime type a new track is announced with, before its media is negotiated."""
    if req.type != models.TrackType.VIDEO:
        return "audio/opus"
    codec = next((c.codec for c in req.simulcast_codecs if c.codec), "")
    return f"video/{codec.upper()}" if codec else ""


# The reasons a client may give in its leave; any other is taken as CLIENT_INITIATED.
_CLIENT_REASONS = frozenset(
    {
        models.DisconnectReason.CLIENT_INITIATED,
        models.DisconnectReason.USER_UNAVAILABLE,
        models.DisconnectReason.USER_REJECTED,
        models.DisconnectReason.AGENT_ERROR,
    }
)


def leave_reason(requested: int) -> int:
    """The reason announced for a client's ``leave`` carrying ``requested``, as livekit-server."""
    return requested if requested in _CLIENT_REASONS else models.DisconnectReason.CLIENT_INITIATED


def lost_reason(media_connected: bool) -> int:
    """The reason announced for a client whose signal connection ended without ``leave``
    (socket dropped, silent past ``ping_timeout``, protocol error).

    livekit-server announces SIGNAL_CLOSE when the media never connected; when it had, it keeps
    the participant for a resume and, once its peer connection is gone, announces
    CONNECTION_TIMEOUT. This server keeps it for :data:`RESUME_WINDOW_S`.
    """
    if media_connected:
        return models.DisconnectReason.CONNECTION_TIMEOUT
    return models.DisconnectReason.SIGNAL_CLOSE


def participant_update(infos: Iterable[models.ParticipantInfo]) -> rtc.SignalResponse:
    """An ``update`` carrying the given participants."""
    return rtc.SignalResponse(update=rtc.ParticipantUpdate(participants=list(infos)))


# What livekit-server reports for a perfect connection: EXCELLENT, at its highest MOS.
EXCELLENT_SCORE = 4.5


def active(participants: Iterable[Participant]) -> set[str]:
    """The sids of the participants whose media has connected (state ACTIVE)."""
    return {p.sid for p in participants if p.state == models.ParticipantInfo.State.ACTIVE}


def connection_quality(participant_sids: Iterable[str]) -> rtc.SignalResponse:
    """A ``connection_quality`` update rating each participant EXCELLENT."""
    infos = [
        rtc.ConnectionQualityInfo(
            participant_sid=sid, quality=models.ConnectionQuality.EXCELLENT, score=EXCELLENT_SCORE
        )
        for sid in sorted(participant_sids)
    ]
    return rtc.SignalResponse(connection_quality=rtc.ConnectionQualityUpdate(updates=infos))


def refresh_token(token: str) -> rtc.SignalResponse:
    """A ``refresh_token``: the join token the client uses for its next reconnect."""
    return rtc.SignalResponse(refresh_token=token)


def room_update(room: Room) -> rtc.SignalResponse:
    """A ``room_update`` carrying the room as it is now (its metadata, its counts)."""
    return rtc.SignalResponse(room_update=rtc.RoomUpdate(room=room.info()))


def leave(reason: int, *, action: int = rtc.LeaveRequest.Action.DISCONNECT) -> rtc.SignalResponse:
    """A server-initiated ``leave`` with a ``DisconnectReason``."""
    return rtc.SignalResponse(
        leave=rtc.LeaveRequest(can_reconnect=False, reason=reason, action=action)  # type: ignore[arg-type]
    )


def answer(sdp: str, offer_id: int) -> rtc.SignalResponse:
    """The answer on the publisher connection, echoing the offer's id."""
    return rtc.SignalResponse(answer=rtc.SessionDescription(type="answer", sdp=sdp, id=offer_id))


def permission_update(publisher_sid: str, track_sid: str, allowed: bool) -> rtc.SignalResponse:
    """Tells a subscriber whether the publisher lets it receive ``track_sid``."""
    update = rtc.SubscriptionPermissionUpdate(
        participant_sid=publisher_sid, track_sid=track_sid, allowed=allowed
    )
    return rtc.SignalResponse(subscription_permission_update=update)


def track_subscribed(track_sid: str) -> rtc.SignalResponse:
    """Tells a publisher that someone now receives its track."""
    return rtc.SignalResponse(track_subscribed=rtc.TrackSubscribed(track_sid=track_sid))
