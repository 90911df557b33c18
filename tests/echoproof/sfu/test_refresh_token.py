"""Refreshed join tokens: sent periodically and when a participant's claims change."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import jwt
import pytest_asyncio
from livekit import api, rtc
from livekit.api.access_token import Claims
from livekit.protocol import rtc as proto

from echoproof import sfu
from echoproof.sfu.auth import REFRESHED_TOKEN_TTL_S
from tests.conftest import scaled
from tests.echoproof.sfu._clients import API_KEY, API_SECRET, joined, token, until


@pytest_asyncio.fixture
async def fast_refresh() -> AsyncIterator[sfu.Server]:
    """A server that sends every participant a fresh token each second and accepts no token
    past its expiry."""
    async with sfu.serve(
        port=0,
        api_key=API_KEY,
        api_secret=API_SECRET,
        token_refresh_interval=1.0,
        token_leeway_s=0.0,
    ) as s:
        yield s


async def next_refresh(ws: aiohttp.ClientWebSocketResponse) -> Claims:
    """The claims of the next ``refresh_token`` the server sends on ``ws`` (verified)."""
    return api.TokenVerifier(API_KEY, API_SECRET).verify(await next_token(ws))


async def next_token(ws: aiohttp.ClientWebSocketResponse) -> str:
    """The next ``refresh_token`` the server sends on ``ws``."""
    async with asyncio.timeout(scaled(10)):
        while True:
            message = await ws.receive()
            response = proto.SignalResponse()
            response.ParseFromString(message.data)
            if response.WhichOneof("message") == "refresh_token":
                return response.refresh_token


async def test_an_expired_token_is_replaced_so_the_client_can_resume(
    fast_refresh: sfu.Server,
) -> None:
    """A talker whose 3 s join token has expired still resumes after its signal drops: it
    reconnects with the token the server refreshed, and the listener sees no departure."""
    talker = rtc.Room()
    events: list[str] = []
    for name in ("reconnected", "disconnected"):
        talker.on(name, lambda *_, name=name: events.append(name))
    async with joined(fast_refresh.url, "listener", "refresh") as listener:
        departed: list[str] = []
        listener.on("participant_disconnected", lambda p: departed.append(p.identity))
        first_token = token("talker", "refresh", ttl_s=3)
        expires = jwt.decode(first_token, options={"verify_signature": False})["exp"]
        try:
            await talker.connect(fast_refresh.url, first_token)
            await until(lambda: "talker" in listener.remote_participants, 10)
            await until(lambda: time.time() > expires, 10)
            conn = fast_refresh.connection("refresh", "talker")
            assert conn is not None
            await conn.ws.close()
            await until(lambda: bool(events), 15)
            assert events == ["reconnected"]
            assert departed == []
        finally:
            await talker.disconnect()


async def test_changed_claims_are_sent_in_a_fresh_token(server: sfu.Server) -> None:
    """After the participant's metadata changes (its own request) and then its grants (the
    RoomService), each time the server sends a token carrying the change."""
    grants = api.VideoGrants(room_join=True, room="claims", can_update_own_metadata=True)
    url = f"{server.url}/rtc?access_token={token('me', 'claims', grants=grants)}"
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        update = proto.UpdateParticipantMetadata(metadata="m1", attributes={"a": "1"})
        await ws.send_bytes(proto.SignalRequest(update_metadata=update).SerializeToString())
        claims = await next_refresh(ws)
        assert (claims.identity, claims.metadata, claims.attributes) == ("me", "m1", {"a": "1"})
        assert claims.video is not None
        assert (claims.video.room_join, claims.video.room) == (True, "claims")
        assert claims.video.can_update_own_metadata and claims.video.can_publish

        async with api.LiveKitAPI(server.url, API_KEY, API_SECRET) as lk:
            permission = api.ParticipantPermission(can_subscribe=True, can_publish=False)
            await lk.room.update_participant(
                api.UpdateParticipantRequest(room="claims", identity="me", permission=permission)
            )
        claims = await next_refresh(ws)
        assert claims.video is not None and not claims.video.can_publish
        assert claims.metadata == "m1"


async def test_tokens_are_refreshed_periodically(fast_refresh: sfu.Server) -> None:
    """With nothing changed, a participant is sent a fresh token each interval, valid for
    livekit-server's ten minutes and naming the participant as it joined."""
    caller = (
        api.AccessToken(API_KEY, API_SECRET)
        .with_identity("caller")
        .with_kind("sip")
        .with_grants(api.VideoGrants(room_join=True, room="periodic"))
        .to_jwt()
    )
    url = f"{fast_refresh.url}/rtc?access_token={caller}"
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        first = await next_refresh(ws)
        second = await next_token(ws)
    claims = api.TokenVerifier(API_KEY, API_SECRET).verify(second)
    assert first.identity == claims.identity == "caller"
    assert first.kind == claims.kind == "sip"
    times = jwt.decode(second, options={"verify_signature": False})
    assert times["exp"] - times["nbf"] == REFRESHED_TOKEN_TTL_S == 600
