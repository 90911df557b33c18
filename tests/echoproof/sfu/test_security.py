"""Security: a token only opens its own room, forged tokens are refused, nothing secret is logged.

Wrong secret, expired and grant-less tokens against a real SDK client are in test_bad_input.py;
their reasons in test_auth.py. Here: crossing rooms, forgery, and the server's logs.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator

import aiohttp
import jwt
import pytest
import pytest_asyncio
from livekit import api, rtc
from livekit.protocol import rtc as proto
from loguru import logger

from echoproof import sfu
from tests.conftest import scaled
from tests.echoproof.sfu._clients import API_KEY, API_SECRET, Listener, ToneSender, joined, token


@pytest_asyncio.fixture
async def server() -> AsyncIterator[sfu.Server]:
    """A running server on a free port."""
    async with sfu.serve(port=0, api_key=API_KEY, api_secret=API_SECRET) as s:
        yield s


def b64(data: bytes) -> str:
    """JWT base64url, without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def moved_to(good: str, room: str) -> str:
    """``good`` with its payload edited to name ``room``, the original signature kept."""
    header, payload, signature = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["video"]["room"] = room
    return f"{header}.{b64(json.dumps(claims).encode())}.{signature}"


def unsigned(identity: str, room: str) -> str:
    """A token with ``alg: none`` and no signature."""
    claims = {
        "iss": API_KEY,
        "sub": identity,
        "exp": int(time.time()) + 600,
        "video": {"roomJoin": True, "room": room},
    }
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64(json.dumps(claims).encode())}."


def not_yet_valid(identity: str, room: str) -> str:
    """A well-signed token whose ``nbf`` lies an hour ahead."""
    now = int(time.time())
    claims = {
        "iss": API_KEY,
        "sub": identity,
        "nbf": now + 3600,
        "exp": now + 7200,
        "video": {"roomJoin": True, "room": room},
    }
    return jwt.encode(claims, API_SECRET, algorithm="HS256")


async def validate(server: sfu.Server, bearer: str) -> tuple[int, str]:
    """Status and text of ``/rtc/validate`` for ``bearer``."""
    url = server.url.replace("ws://", "http://") + "/rtc/validate"
    async with (
        aiohttp.ClientSession() as http,
        http.get(url, headers={"Authorization": f"Bearer {bearer}"}) as r,
    ):
        return r.status, await r.text()


async def twirp(server: sfu.Server, method: str, bearer: str, body: dict[str, str]) -> int:
    """HTTP status of one RoomService call."""
    url = server.url.replace("ws://", "http://") + f"/twirp/livekit.RoomService/{method}"
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, json=body, headers={"Authorization": f"Bearer {bearer}"}) as r,
    ):
        return r.status


async def test_token_for_room_a_never_reaches_room_b(server: sfu.Server) -> None:
    """A room-a token lands in room-a whatever the URL says; edited to room-b, it is refused."""
    async with joined(server.url, "b-member", "room-b") as b_member:
        good = token("intruder", "room-a")
        async with aiohttp.ClientSession() as http:
            # livekit-server takes the room from the token only: a room in the URL changes nothing.
            params = {"access_token": good, "room": "room-b"}
            ws = await http.ws_connect(server.url + "/rtc", params=params)
            join = proto.SignalResponse.FromString(await ws.receive_bytes(timeout=scaled(5)))
            assert join.join.room.name == "room-a"
            assert list(server.rooms["room-b"].participants) == ["b-member"]
            await ws.close()
        forged = moved_to(good, "room-b")
        status, text = await validate(server, forged)
        assert (status, text) == (
            401,
            "invalid token: the signature does not match this server's API secret",
        )
        room = rtc.Room()
        with pytest.raises(rtc.ConnectError, match="signature"):
            async with asyncio.timeout(scaled(15)):
                await room.connect(server.url, forged)
        assert list(server.rooms["room-b"].participants) == ["b-member"]
        assert not b_member.remote_participants


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (unsigned, "invalid token: it is not signed with HS256"),
        (not_yet_valid, "invalid token: it is not valid yet"),
        (lambda i, r: token(i, r, secret=API_SECRET + "x"), "invalid token: the signature"),
    ],
    ids=["alg-none", "not-yet-valid", "secret-plus-one-char"],
)
async def test_forged_tokens_are_refused(server: sfu.Server, make: object, reason: str) -> None:
    """Unsigned, not-yet-valid and near-miss-secret tokens are refused, on validate and join."""
    bad = make("mallory", "room-a")  # type: ignore[operator]
    status, text = await validate(server, bad)
    assert status == 401
    assert text.startswith(reason)
    assert bad not in text
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await http.ws_connect(server.url + "/rtc", params={"access_token": bad})
    assert info.value.status == 401
    assert "room-a" not in server.rooms


async def test_room_admin_of_a_cannot_manage_room_b(server: sfu.Server) -> None:
    """A roomAdmin token for room-a may list room-a but neither list nor remove in room-b."""
    admin_a = (
        api.AccessToken(API_KEY, API_SECRET)
        .with_grants(api.VideoGrants(room_admin=True, room="room-a"))
        .to_jwt()
    )
    async with joined(server.url, "a-member", "room-a"), joined(server.url, "b-member", "room-b"):
        assert await twirp(server, "ListParticipants", admin_a, {"room": "room-a"}) == 200
        assert await twirp(server, "ListParticipants", admin_a, {"room": "room-b"}) == 403
        body = {"room": "room-b", "identity": "b-member"}
        assert await twirp(server, "RemoveParticipant", admin_a, body) == 403
        forged = moved_to(admin_a, "room-b")
        assert await twirp(server, "RemoveParticipant", forged, body) == 401
        assert "b-member" in server.rooms["room-b"].participants


async def test_no_secret_or_token_reaches_the_logs() -> None:
    """A whole session at TRACE level, good and bad tokens alike: no secret, no token logged."""
    secret = "SuPeR-DiStInCtIvE-sEcReT-" + "7f3a9c" * 8
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="TRACE", format="{message}")
    tokens: list[str] = []

    def mint(identity: str, room: str, **kwargs: object) -> str:
        t = token(identity, room, secret=kwargs.pop("secret", secret), **kwargs)  # type: ignore[arg-type]
        tokens.append(t)
        return t

    try:
        async with sfu.serve(port=0, api_key=API_KEY, api_secret=secret) as server:
            url = server.url
            talker, listener = rtc.Room(), rtc.Room()
            try:
                async with asyncio.timeout(scaled(15)):
                    await talker.connect(url, mint("talker", "logs"))
                    await listener.connect(url, mint("listener", "logs"))
                async with Listener(listener, "talker") as hears, ToneSender(talker, 440.0):
                    await hears.wait_frames(50, 15)
            finally:
                await talker.disconnect()
                await listener.disconnect()
            bad = [
                mint("x", "logs", secret="the-wrong-secret-0123456789abcdef"),
                mint("x", "logs", ttl_s=-60),
                mint("x", "logs", grants=api.VideoGrants(room_list=True)),
                moved_to(mint("x", "logs"), "other"),
            ]
            tokens += bad
            http_url = url.replace("ws://", "http://")
            async with aiohttp.ClientSession() as http:
                for t in bad:
                    async with http.get(f"{http_url}/rtc/validate", params={"access_token": t}):
                        pass
                    with pytest.raises(aiohttp.WSServerHandshakeError):
                        await http.ws_connect(url + "/rtc", params={"access_token": t})
                # A malformed frame from a joined client, and a refused API call.
                ws = await http.ws_connect(url + "/rtc", params={"access_token": mint("y", "logs")})
                await ws.send_bytes(b"\xff\xff\xff\xff")
                async for _ in ws:
                    pass
                assert await twirp(server, "ListRooms", bad[0], {}) == 401
    finally:
        logger.remove(sink)
    text = "\n".join(lines)
    # The capture worked: the session and the refusals were logged.
    assert "joined room logs" in text and "refused a join" in text and "ListRooms refused" in text
    assert secret not in text
    assert secret[:16] not in text
    for t in tokens:
        assert t not in text
        assert t.split(".")[2] not in text  # not even the signature alone
