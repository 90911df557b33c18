"""The Twirp RoomService through livekit.api.LiveKitAPI, and the plain HTTP answers."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from livekit import api, rtc

from echoproof import sfu
from tests.conftest import scaled
from tests.echoproof.sfu._clients import (
    API_KEY,
    API_SECRET,
    Listener,
    ToneSender,
    joined,
    token,
    until,
)

# Audio forwarded before a copy stopped is still on its way (network, jitter buffer) for a
# moment, and a copy still forwarded is heard within as long; the listener's stream just goes
# quiet, with no event to wait for, so both are bounded windows.
IN_FLIGHT_S = scaled(0.5)


def http_url(server: sfu.Server) -> str:
    return server.url.replace("ws://", "http://")


def api_token(secret: str = API_SECRET, **grants: object) -> str:
    return api.AccessToken(API_KEY, secret).with_grants(api.VideoGrants(**grants)).to_jwt()  # type: ignore[arg-type]


async def test_create_list_delete_room(server: sfu.Server) -> None:
    """CreateRoom, ListRooms and DeleteRoom answer as livekit-server does."""
    async with api.LiveKitAPI(server.url, API_KEY, API_SECRET) as lk:
        created = await lk.room.create_room(api.CreateRoomRequest(name="made", max_participants=5))
        assert created.name == "made"
        assert created.sid.startswith("RM_")
        assert created.max_participants == 5
        rooms = await lk.room.list_rooms(api.ListRoomsRequest())
        assert [r.name for r in rooms.rooms] == ["made"]
        filtered = await lk.room.list_rooms(api.ListRoomsRequest(names=["other"]))
        assert list(filtered.rooms) == []
        await lk.room.delete_room(api.DeleteRoomRequest(room="made"))
        assert list((await lk.room.list_rooms(api.ListRoomsRequest())).rooms) == []
        with pytest.raises(api.twirp_client.TwirpError) as missing:
            await lk.room.delete_room(api.DeleteRoomRequest(room="made"))
        assert missing.value.status == 404
        assert missing.value.code == "not_found"


async def test_empty_timeout_is_honoured(server: sfu.Server) -> None:
    """A room created with empty_timeout=1 and never joined closes about a second later."""
    async with api.LiveKitAPI(server.url, API_KEY, API_SECRET) as lk:
        await lk.room.create_room(api.CreateRoomRequest(name="brief", empty_timeout=1))
        await lk.room.create_room(api.CreateRoomRequest(name="lasting", empty_timeout=60))
        await until(lambda: "brief" not in server.rooms, 5)
        names = [r.name for r in (await lk.room.list_rooms(api.ListRoomsRequest())).rooms]
        assert names == ["lasting"]


async def test_participants_mute_and_remove(server: sfu.Server) -> None:
    """ListParticipants, MutePublishedTrack and RemoveParticipant act on live participants."""
    async with (
        api.LiveKitAPI(server.url, API_KEY, API_SECRET) as lk,
        joined(server.url, "talker", "admin") as talker,
        joined(server.url, "watcher", "admin") as watcher,
        ToneSender(talker, 440.0),
    ):
        muted = asyncio.Event()
        watcher.on("track_muted", lambda participant, pub: muted.set())
        await until(lambda: bool(server.rooms["admin"].participants["talker"].tracks), 10)
        listed = await lk.room.list_participants(api.ListParticipantsRequest(room="admin"))
        by_identity = {p.identity: p for p in listed.participants}
        assert set(by_identity) == {"talker", "watcher"}
        assert all(p.sid.startswith("PA_") for p in listed.participants)
        (track,) = by_identity["talker"].tracks
        assert track.sid.startswith("TR_")

        answer = await lk.room.mute_published_track(
            api.MuteRoomTrackRequest(
                room="admin", identity="talker", track_sid=track.sid, muted=True
            )
        )
        assert answer.track.muted
        async with asyncio.timeout(scaled(10)):
            await muted.wait()

        removed = asyncio.Event()
        reasons: list[int] = []

        @talker.on("disconnected")
        def on_disconnected(reason: int) -> None:
            reasons.append(reason)
            removed.set()

        await lk.room.remove_participant(
            api.RoomParticipantIdentity(room="admin", identity="talker")
        )
        async with asyncio.timeout(scaled(10)):
            await removed.wait()
        assert reasons == [rtc.DisconnectReason.PARTICIPANT_REMOVED]
        listed = await lk.room.list_participants(api.ListParticipantsRequest(room="admin"))
        assert [p.identity for p in listed.participants] == ["watcher"]
        with pytest.raises(api.twirp_client.TwirpError) as gone:
            await lk.room.remove_participant(
                api.RoomParticipantIdentity(room="admin", identity="talker")
            )
        assert gone.value.code == "not_found"


@pytest.mark.parametrize(
    ("auth", "status", "code"),
    [
        (
            lambda: api_token("another-secret-of-sufficient-length-x", room_create=True),
            401,
            "unauthenticated",
        ),
        (lambda: api_token(room_list=True), 403, "permission_denied"),
        (lambda: "not-a-jwt", 401, "unauthenticated"),
    ],
    ids=["wrong-secret", "no-roomCreate", "garbage"],
)
async def test_refused_api_calls(server: sfu.Server, auth: object, status: int, code: str) -> None:
    """A wrong secret, a missing grant or garbage gets a Twirp error with the right status."""
    headers = {"Authorization": f"Bearer {auth()}", "Content-Type": "application/json"}  # type: ignore[operator]
    async with aiohttp.ClientSession() as http:
        url = f"{http_url(server)}/twirp/livekit.RoomService/CreateRoom"
        async with http.post(url, data=b'{"name": "x"}', headers=headers) as resp:
            assert resp.status == status
            body = await resp.json()
    assert body["code"] == code
    assert body["msg"]
    assert "x" not in server.rooms


async def test_json_body_and_unknown_method(server: sfu.Server) -> None:
    """JSON bodies get JSON answers; an unknown method is a Twirp bad_route."""
    headers = {
        "Authorization": f"Bearer {api_token(room_create=True, room_list=True)}",
        "Content-Type": "application/json",
    }
    base = f"{http_url(server)}/twirp/livekit.RoomService"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/CreateRoom", data=b'{"name":"j"}', headers=headers) as r:
            assert r.status == 200
            assert (await r.json())["name"] == "j"
        async with http.post(f"{base}/ListRooms", data=b"{}", headers=headers) as r:
            assert [room["name"] for room in (await r.json())["rooms"]] == ["j"]
        async with http.post(f"{base}/Nope", data=b"{}", headers=headers) as r:
            assert r.status == 404
            assert (await r.json())["code"] == "bad_route"
        async with http.post(f"{base}/CreateRoom", data=b"{not json", headers=headers) as r:
            assert r.status == 400
            assert (await r.json())["code"] == "malformed"


async def test_http_endpoints_and_cors(server: sfu.Server) -> None:
    """404 on the v1 paths, validate says why, CORS on every answer and on preflight."""
    origin = {"Origin": "http://localhost:3000"}
    base = http_url(server)
    async with aiohttp.ClientSession() as http:
        for path in ("/rtc/v1", "/rtc/v1/validate"):
            async with http.get(base + path, headers=origin) as r:
                assert r.status == 404
                assert "requested room does not exist" not in await r.text()
                assert r.headers["Access-Control-Allow-Origin"] == origin["Origin"]
        good = {"access_token": token("v", "room")}
        async with http.get(f"{base}/rtc/validate", params=good, headers=origin) as r:
            assert r.status == 200
            assert r.headers["Access-Control-Allow-Origin"] == origin["Origin"]
        bad = {"access_token": token("v", "room", secret="not-the-servers-secret-0123456789")}
        async with http.get(f"{base}/rtc/validate", params=bad, headers=origin) as r:
            assert r.status == 401
            assert "signature" in await r.text()
            assert r.headers["Access-Control-Allow-Origin"] == origin["Origin"]
        preflight = {
            **origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        }
        url = f"{base}/twirp/livekit.RoomService/ListRooms"
        async with http.options(url, headers=preflight) as r:
            assert r.status == 204
            assert r.headers["Access-Control-Allow-Origin"] == origin["Origin"]
            assert "POST" in r.headers["Access-Control-Allow-Methods"]
            assert "authorization" in r.headers["Access-Control-Allow-Headers"].lower()


async def test_update_room_metadata_reaches_every_participant(server: sfu.Server) -> None:
    """UpdateRoomMetadata changes the room and every participant gets room_metadata_changed."""
    async with (
        api.LiveKitAPI(server.url, API_KEY, API_SECRET) as lk,
        joined(server.url, "a", "roommeta") as a,
        joined(server.url, "b", "roommeta") as b,
    ):
        seen: dict[str, str] = {}
        for r, who in ((a, "a"), (b, "b")):
            r.on("room_metadata_changed", lambda old, new, who=who: seen.__setitem__(who, new))
        room = await lk.room.update_room_metadata(
            api.UpdateRoomMetadataRequest(room="roommeta", metadata="topic: billing")
        )
        assert room.metadata == "topic: billing"
        await until(lambda: len(seen) == 2, 10)
        assert seen == {"a": "topic: billing", "b": "topic: billing"}
        assert a.metadata == "topic: billing"
        with pytest.raises(api.twirp_client.TwirpError) as missing:
            await lk.room.update_room_metadata(
                api.UpdateRoomMetadataRequest(room="nowhere", metadata="x")
            )
        assert missing.value.code == "not_found"


async def test_update_participant_metadata_and_permission(server: sfu.Server) -> None:
    """UpdateParticipant changes name, metadata and attributes; a revoked canSubscribe stops
    the audio, restored it comes back."""
    async with (
        api.LiveKitAPI(server.url, API_KEY, API_SECRET) as lk,
        joined(server.url, "talker", "upd") as talker,
        joined(server.url, "listener", "upd") as listener,
        Listener(listener, "talker") as hears,
        ToneSender(talker, 440.0),
    ):
        await until(lambda: hears.first_tone_frame(440.0) is not None, 10)
        seen: dict[str, object] = {}
        talker.on("participant_attributes_changed", lambda ch, p: seen.update(attrs=p.attributes))
        info = await lk.room.update_participant(
            api.UpdateParticipantRequest(
                room="upd",
                identity="listener",
                name="Listener",
                metadata="m",
                attributes={"seat": "3"},
            )
        )
        assert (info.name, info.metadata, dict(info.attributes)) == ("Listener", "m", {"seat": "3"})
        await until(lambda: "attrs" in seen, 10)
        remote = talker.remote_participants["listener"]
        assert (remote.name, remote.metadata, seen["attrs"]) == ("Listener", "m", {"seat": "3"})

        def permission(can_subscribe: bool) -> api.ParticipantPermission:
            return api.ParticipantPermission(
                can_subscribe=can_subscribe, can_publish=True, can_publish_data=True
            )

        await lk.room.update_participant(
            api.UpdateParticipantRequest(
                room="upd", identity="listener", permission=permission(False)
            )
        )
        conn = server.connection("upd", "listener")
        assert conn is not None
        assert not conn.subscriptions
        hears.subscribed.clear()
        hears.frames.clear()
        await lk.room.update_participant(
            api.UpdateParticipantRequest(
                room="upd", identity="listener", permission=permission(True)
            )
        )
        async with asyncio.timeout(scaled(10)):
            await hears.subscribed.wait()
        await until(lambda: hears.first_tone_frame(440.0) is not None, 10)
        with pytest.raises(api.twirp_client.TwirpError) as too_long:
            await lk.room.update_participant(
                api.UpdateParticipantRequest(room="upd", identity="listener", name="x" * 300)
            )
        assert too_long.value.code == "invalid_argument"


async def test_update_subscriptions_from_the_api(server: sfu.Server) -> None:
    """UpdateSubscriptions stops a participant's copy of a track, and brings it back."""
    async with (
        api.LiveKitAPI(server.url, API_KEY, API_SECRET) as lk,
        joined(server.url, "talker", "subs") as talker,
        joined(server.url, "listener", "subs") as listener,
        Listener(listener, "talker") as hears,
        ToneSender(talker, 440.0),
    ):
        await until(lambda: hears.first_tone_frame(440.0) is not None, 10)
        (track_sid,) = server.rooms["subs"].participants["talker"].tracks
        request = api.UpdateSubscriptionsRequest(
            room="subs", identity="listener", track_sids=[track_sid], subscribe=False
        )
        await lk.room.update_subscriptions(request)
        conn = server.connection("subs", "listener")
        assert conn is not None
        assert not conn.subscriptions
        await asyncio.sleep(IN_FLIGHT_S)
        hears.subscribed.clear()
        hears.frames.clear()
        await asyncio.sleep(IN_FLIGHT_S)
        assert hears.first_tone_frame(440.0) is None  # the tone has stopped
        request.subscribe = True
        await lk.room.update_subscriptions(request)
        async with asyncio.timeout(scaled(10)):
            await hears.subscribed.wait()
        await until(lambda: hears.first_tone_frame(440.0) is not None, 10)


async def test_send_data_from_the_api(server: sfu.Server) -> None:
    """SendData reaches the participants it names, with its topic, from no participant."""
    async with (
        api.LiveKitAPI(server.url, API_KEY, API_SECRET) as lk,
        joined(server.url, "a", "apidata") as a,
        joined(server.url, "b", "apidata") as b,
    ):
        heard_a: list[rtc.DataPacket] = []
        heard_b: list[rtc.DataPacket] = []
        a.on("data_received", heard_a.append)
        b.on("data_received", heard_b.append)
        # The subscriber data channels open shortly after connect(): send until one arrives.
        async with asyncio.timeout(scaled(15)):
            while not heard_b:
                await lk.room.send_data(
                    api.SendDataRequest(
                        room="apidata",
                        data=b"for b",
                        kind=api.DataPacket.Kind.RELIABLE,
                        destination_identities=["b"],
                        topic="news",
                    )
                )
                await asyncio.sleep(0.2)
        assert heard_b[0].data == b"for b"
        assert heard_b[0].topic == "news"
        assert heard_b[0].participant is None
        await lk.room.send_data(
            api.SendDataRequest(room="apidata", data=b"all", kind=api.DataPacket.Kind.RELIABLE)
        )
        await until(lambda: any(p.data == b"all" for p in heard_a), 10)
        assert all(p.data != b"for b" for p in heard_a)
    # livekit.api always sets a 16-byte nonce; another client may not.
    headers = {
        "Authorization": f"Bearer {api_token(room_admin=True, room='apidata')}",
        "Content-Type": "application/json",
    }
    body = b'{"room": "apidata", "data": "eA==", "nonce": "MTIz"}'
    async with aiohttp.ClientSession() as http:
        url = f"{http_url(server)}/twirp/livekit.RoomService/SendData"
        async with http.post(url, data=body, headers=headers) as r:
            assert r.status == 400
            assert (await r.json())["code"] == "invalid_argument"


async def test_move_and_forward_are_unimplemented(server: sfu.Server) -> None:
    """ForwardParticipant and MoveParticipant answer unimplemented, as livekit-server OSS."""
    async with (
        api.LiveKitAPI(server.url, API_KEY, API_SECRET) as lk,
        joined(server.url, "a", "stay"),
    ):
        with pytest.raises(api.twirp_client.TwirpError) as moved:
            await lk.room.move_participant(
                api.MoveParticipantRequest(room="stay", identity="a", destination_room="elsewhere")
            )
        assert moved.value.code == "unimplemented"
