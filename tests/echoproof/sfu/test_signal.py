"""The signalling session without sockets: requests in, responses and actions out."""

from __future__ import annotations

import json

import pytest
from livekit.protocol import models, rtc

from echoproof.sfu import ProtocolError
from echoproof.sfu import _signal as sig
from echoproof.sfu.room import Participant, Room, Track


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def session(clock: FakeClock | None = None, *, can_publish: bool = True) -> sig.Session:
    room = Room(name="r")
    me = Participant(identity="me", can_publish=can_publish)
    room.add(me)
    return sig.Session(room, me, ping_interval=5, ping_timeout=15, clock=clock or FakeClock())


def only_send(actions: list[sig.Action]) -> rtc.SignalResponse:
    assert len(actions) == 1
    assert isinstance(actions[0], sig.Send)
    return actions[0].response


def test_join_response_carries_what_the_sdk_needs() -> None:
    """join: own sid PA_, room RM_, others with tracks, subscriber primary, ping settings."""
    s = session()
    other = Participant(identity="other")
    track = Track(cid="c1", name="mic")
    other.tracks[track.sid] = track
    s.room.add(other)
    join = s.join_response().join
    assert join.participant.sid.startswith("PA_")
    assert join.participant.identity == "me"
    assert join.room.sid.startswith("RM_")
    assert join.room.name == "r"
    assert join.subscriber_primary
    assert (join.ping_interval, join.ping_timeout) == (5, 15)
    assert not join.fast_publish
    assert join.participant.permission.can_publish
    (o,) = join.other_participants
    assert o.identity == "other"
    assert [t.sid for t in o.tracks] == [track.sid]
    assert o.tracks[0].sid.startswith("TR_")


def test_ping_req_gets_pong_resp_echoing_the_timestamp() -> None:
    """ping_req -> pong_resp with the request's timestamp; legacy ping -> pong."""
    s = session()
    pong = only_send(s.handle(rtc.SignalRequest(ping_req=rtc.Ping(timestamp=1234, rtt=5))))
    assert pong.pong_resp.last_ping_timestamp == 1234
    assert pong.pong_resp.timestamp > 1_600_000_000_000
    legacy = only_send(s.handle(rtc.SignalRequest(ping=99)))
    assert legacy.WhichOneof("message") == "pong"


def test_add_track_answers_track_published_once_per_cid() -> None:
    """add_track -> track_published with a TR_ sid; the same cid keeps its sid."""
    s = session()
    req = rtc.SignalRequest(
        add_track=rtc.AddTrackRequest(
            cid="cid-1",
            name="mic",
            type=models.TrackType.AUDIO,
            source=models.TrackSource.MICROPHONE,
        )
    )
    first = only_send(s.handle(req)).track_published
    again = only_send(s.handle(req)).track_published
    assert first.cid == "cid-1"
    assert first.track.sid.startswith("TR_")
    assert first.track.name == "mic"
    assert first.track.mime_type == "audio/opus"
    assert again.track.sid == first.track.sid
    assert s.participant.tracks == {}
    (published,) = s.negotiated(["cid-1", "unknown"])
    assert s.participant.tracks == {published.sid: published}
    assert s.pending == {}


def test_packet_trailer_features_are_echoed() -> None:
    """What the publisher says its frames' trailers carry comes back in the TrackInfo (the SDK's
    `publication.frame_metadata_features`, and what subscribers see)."""
    s = session()
    features = list(models.PacketTrailerFeature.values())
    req = rtc.AddTrackRequest(
        cid="cam", name="camera", type=models.TrackType.VIDEO, packet_trailer_features=features
    )
    published = only_send(s.handle(rtc.SignalRequest(add_track=req))).track_published
    assert list(published.track.packet_trailer_features) == features
    (track,) = s.negotiated(["cam"])
    assert list(track.info().packet_trailer_features) == features


def test_add_track_without_publish_grant_is_refused() -> None:
    """A participant without canPublish cannot announce a track."""
    s = session(can_publish=False)
    with pytest.raises(ProtocolError, match="canPublish"):
        s.handle(rtc.SignalRequest(add_track=rtc.AddTrackRequest(cid="c", name="mic")))


def test_offer_answer_trickle_and_leave_become_actions() -> None:
    """offer, answer, trickle and leave turn into work for the media layer."""
    s = session()
    offer = s.handle(rtc.SignalRequest(offer=rtc.SessionDescription(type="offer", sdp="v=0", id=3)))
    assert offer == [sig.AnswerOffer("v=0", 3)]
    answer = s.handle(rtc.SignalRequest(answer=rtc.SessionDescription(type="answer", sdp="v=1")))
    assert answer == [sig.AcceptAnswer("v=1")]
    init = json.dumps({"candidate": "candidate:1 1 udp 1 192.0.2.2 5000 typ host", "sdpMid": "0",
                       "sdpMLineIndex": 0})  # fmt: skip
    trickle = s.handle(
        rtc.SignalRequest(trickle=rtc.TrickleRequest(candidateInit=init, target=sig.SUBSCRIBER))
    )
    assert trickle == [
        sig.AddCandidate(sig.SUBSCRIBER, "candidate:1 1 udp 1 192.0.2.2 5000 typ host", "0", 0)
    ]
    assert s.handle(rtc.SignalRequest(leave=rtc.LeaveRequest())) == [
        sig.Leave(models.DisconnectReason.CLIENT_INITIATED)
    ]


def test_mute_of_a_published_track_is_announced_once() -> None:
    """mute flips the track and asks for an update; repeating it changes nothing."""
    s = session()
    track = Track(cid="c", name="mic")
    s.participant.tracks[track.sid] = track
    req = rtc.SignalRequest(mute=rtc.MuteTrackRequest(sid=track.sid, muted=True))
    assert s.handle(req) == [sig.TrackMuted(track)]
    assert track.muted
    assert s.handle(req) == []
    assert s.handle(rtc.SignalRequest(mute=rtc.MuteTrackRequest(sid="TR_nope", muted=True))) == []


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"\xff\xff\xff\xff", "malformed frame: 4 bytes"),
        ("text", "text frame"),
        (
            rtc.SignalRequest(
                trickle=rtc.TrickleRequest(candidateInit="{oops")
            ).SerializeToString(),
            "not JSON",
        ),
    ],
    ids=["garbage", "text", "bad-trickle"],
)
def test_malformed_frames_raise_protocol_error(frame: bytes | str, reason: str) -> None:
    """A frame that is not a valid SignalRequest raises ProtocolError saying what was wrong."""
    with pytest.raises(ProtocolError, match=reason):
        session().receive(frame)


def test_ignored_requests_produce_nothing() -> None:
    """Requests the server does not need (sync_state...) are accepted silently."""
    s = session()
    assert s.handle(rtc.SignalRequest(sync_state=rtc.SyncState())) == []
    assert s.receive(b"") == []


def test_silence_longer_than_ping_timeout_times_out() -> None:
    """Any request resets the silence; ping_timeout seconds without one times out."""
    clock = FakeClock()
    s = session(clock)
    clock.now += 14
    assert not s.timed_out()
    s.handle(rtc.SignalRequest(ping_req=rtc.Ping(timestamp=1)))
    clock.now += 15
    assert not s.timed_out()
    clock.now += 1
    assert s.timed_out()


def test_server_messages() -> None:
    """Offers are numbered; leave carries reason and action; answer echoes the offer id."""
    s = session()
    assert s.subscriber_offer("a").offer.id == 1
    assert s.subscriber_offer("b").offer.id == 2
    leave = sig.leave(models.DisconnectReason.DUPLICATE_IDENTITY).leave
    assert leave.reason == models.DisconnectReason.DUPLICATE_IDENTITY
    assert leave.action == rtc.LeaveRequest.Action.DISCONNECT
    assert sig.answer("x", 7).answer.id == 7
    assert sig.track_subscribed("TR_a").track_subscribed.track_sid == "TR_a"


def metadata_request(**fields: object) -> rtc.SignalRequest:
    return rtc.SignalRequest(update_metadata=rtc.UpdateParticipantMetadata(**fields))  # type: ignore[arg-type]


def test_update_metadata_needs_the_can_update_own_metadata_grant() -> None:
    """Without canUpdateOwnMetadata the update is refused with NOT_ALLOWED and nothing changes."""
    s = session()
    (send,) = s.handle(metadata_request(metadata="m", request_id=7))
    assert isinstance(send, sig.Send)
    answer = send.response.request_response
    assert (answer.request_id, answer.reason) == (7, rtc.RequestResponse.Reason.NOT_ALLOWED)
    assert answer.update_metadata.metadata == "m"
    assert s.participant.metadata == ""


def test_update_metadata_applies_merges_and_announces() -> None:
    """Name, metadata and attributes change, an empty attribute deletes; answered with OK."""
    s = session()
    s.participant.can_update_metadata = True
    s.participant.attributes = {"keep": "1", "drop": "2"}
    actions = s.handle(
        metadata_request(
            name="New", metadata="m", attributes={"drop": "", "add": "3"}, request_id=9
        )
    )
    assert isinstance(actions[0], sig.Announce)
    assert isinstance(actions[1], sig.Send)
    answer = actions[1].response.request_response
    assert (answer.request_id, answer.reason) == (9, rtc.RequestResponse.Reason.OK)
    p = s.participant
    assert (p.name, p.metadata, p.attributes) == ("New", "m", {"keep": "1", "add": "3"})
    info = p.info()
    assert dict(info.attributes) == {"keep": "1", "add": "3"}
    assert info.permission.can_update_metadata
    # The same update again changes nothing: answered, not announced.
    again = s.handle(metadata_request(name="New", request_id=10))
    assert [type(a) for a in again] == [sig.Send]


def test_update_metadata_over_the_limits_is_refused() -> None:
    """A name over 256 bytes gets LIMIT_EXCEEDED, as livekit-server's default limits."""
    s = session()
    s.participant.can_update_metadata = True
    (send,) = s.handle(metadata_request(name="x" * 257, request_id=1))
    assert isinstance(send, sig.Send)
    answer = send.response.request_response
    assert answer.reason == rtc.RequestResponse.Reason.LIMIT_EXCEEDED
    assert answer.message == "exceeds name length limit"
    assert s.participant.name == ""


def test_leave_and_lost_connection_reasons() -> None:
    """leave keeps the reasons a client may give; a lost connection depends on the media."""
    s = session()
    user_left = rtc.LeaveRequest(reason=models.DisconnectReason.USER_UNAVAILABLE)
    assert s.handle(rtc.SignalRequest(leave=user_left)) == [
        sig.Leave(models.DisconnectReason.USER_UNAVAILABLE)
    ]
    odd = rtc.LeaveRequest(reason=models.DisconnectReason.ROOM_DELETED)
    assert s.handle(rtc.SignalRequest(leave=odd)) == [
        sig.Leave(models.DisconnectReason.CLIENT_INITIATED)
    ]
    assert sig.lost_reason(media_connected=False) == models.DisconnectReason.SIGNAL_CLOSE
    assert sig.lost_reason(media_connected=True) == models.DisconnectReason.CONNECTION_TIMEOUT


def test_subscription_choices_override_auto_subscribe() -> None:
    """auto_subscribe is the default; subscription requests choose per track."""
    room = Room(name="r")
    me = Participant(identity="me")
    s = sig.Session(room, me, auto_subscribe=False, clock=FakeClock())
    assert not s.wants("TR_a")
    sub = rtc.UpdateSubscription(
        track_sids=["TR_a"],
        subscribe=True,
        participant_tracks=[models.ParticipantTracks(participant_sid="PA_x", track_sids=["TR_b"])],
    )
    assert s.handle(rtc.SignalRequest(subscription=sub)) == [sig.Resubscribe()]
    assert s.wants("TR_a") and s.wants("TR_b") and not s.wants("TR_c")
    off = rtc.UpdateSubscription(track_sids=["TR_a"], subscribe=False)
    s.handle(rtc.SignalRequest(subscription=off))
    assert not s.wants("TR_a")


def test_subscription_permission_of_a_publisher() -> None:
    """A publisher's permission lets listed participants in, by identity or sid."""
    s = session()
    friend, stranger = Participant(identity="friend"), Participant(identity="stranger")
    assert s.participant.allows(stranger, "TR_a")
    permission = rtc.SubscriptionPermission(
        all_participants=False,
        track_permissions=[
            rtc.TrackPermission(participant_identity="friend", track_sids=["TR_a"]),
            rtc.TrackPermission(participant_sid=stranger.sid, all_tracks=True),
        ],
    )
    actions = s.handle(rtc.SignalRequest(subscription_permission=permission))
    assert actions == [sig.Resubscribe(room=True)]
    assert s.participant.allows(friend, "TR_a")
    assert not s.participant.allows(friend, "TR_b")
    assert s.participant.allows(stranger, "TR_b")
    assert not s.participant.allows(Participant(identity="other"), "TR_a")
