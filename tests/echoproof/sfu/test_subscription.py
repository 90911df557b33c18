"""Selective subscription: auto_subscribe, set_subscribed, canSubscribe, track permissions."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from livekit import api, rtc

from echoproof import sfu
from tests.conftest import scaled
from tests.echoproof.sfu._clients import Listener, ToneSender, joined, token, until

# A track the server sends although it should not reaches the client's subscription within
# this; nothing marks "it will never come", so the negative checks watch this long.
UNASKED_S = scaled(1.5)


@contextlib.asynccontextmanager
async def joined_manually(url: str, identity: str, room: str) -> AsyncIterator[rtc.Room]:
    """A connected ``rtc.Room`` with auto_subscribe off, disconnected on exit."""
    r = rtc.Room()
    try:
        async with asyncio.timeout(scaled(15)):
            await r.connect(url, token(identity, room), rtc.RoomOptions(auto_subscribe=False))
        yield r
    finally:
        await r.disconnect()


def publication_of(room: rtc.Room, identity: str) -> rtc.RemoteTrackPublication | None:
    participant = room.remote_participants.get(identity)
    if participant is None or not participant.track_publications:
        return None
    return next(iter(participant.track_publications.values()))


def receiving(server: sfu.Server, room: str, identity: str) -> set[str]:
    """The track sids the server forwards to ``identity``."""
    conn = server.connection(room, identity)
    return set(conn.subscriptions) if conn else set()


async def hears_tone(hears: Listener, freq_hz: float) -> None:
    async with asyncio.timeout(scaled(10)):
        await hears.subscribed.wait()
    await until(lambda: hears.first_tone_frame(freq_hz) is not None, 10)


async def test_auto_subscribe_off_then_set_subscribed(server: sfu.Server) -> None:
    """Nothing arrives before set_subscribed(True); unsubscribed, then subscribed, it is heard."""
    async with (
        joined_manually(server.url, "listener", "pick") as listener,
        joined(server.url, "talker", "pick") as talker,
        Listener(listener, "talker") as hears,
        ToneSender(talker, 440.0),
    ):
        await until(lambda: publication_of(listener, "talker") is not None, 10)
        await asyncio.sleep(UNASKED_S)
        assert not hears.subscribed.is_set()
        assert receiving(server, "pick", "listener") == set()
        publication = publication_of(listener, "talker")
        assert publication is not None

        publication.set_subscribed(True)
        await hears_tone(hears, 440.0)
        assert receiving(server, "pick", "listener") == {publication.sid}

        unsubscribed = asyncio.Event()
        listener.on("track_unsubscribed", lambda *args: unsubscribed.set())
        publication.set_subscribed(False)
        async with asyncio.timeout(scaled(10)):
            await unsubscribed.wait()
        await until(lambda: not receiving(server, "pick", "listener"), 10)

        hears.subscribed.clear()
        hears.frames.clear()
        publication.set_subscribed(True)
        await hears_tone(hears, 440.0)


async def test_late_joiner_without_can_subscribe_receives_nothing(server: sfu.Server) -> None:
    """A late joiner whose token lacks canSubscribe sees the track but is not sent it."""
    grants = api.VideoGrants(room_join=True, room="deaf", can_subscribe=False)
    async with (
        joined(server.url, "talker", "deaf") as talker,
        ToneSender(talker, 440.0),
    ):
        await until(lambda: bool(server.rooms["deaf"].participants["talker"].tracks), 10)
        deaf = rtc.Room()
        try:
            async with asyncio.timeout(scaled(15)):
                await deaf.connect(server.url, token("deaf", "deaf", grants=grants))
            async with Listener(deaf, "talker") as hears:
                await until(lambda: publication_of(deaf, "talker") is not None, 10)
                publication = publication_of(deaf, "talker")
                assert publication is not None
                publication.set_subscribed(True)
                await asyncio.sleep(UNASKED_S)
                assert not hears.subscribed.is_set()
                assert receiving(server, "deaf", "deaf") == set()
        finally:
            await deaf.disconnect()


async def test_track_permissions_of_the_publisher(server: sfu.Server) -> None:
    """A publisher that allows only one participant is heard by that one alone."""
    async with (
        joined(server.url, "talker", "perm") as talker,
        joined(server.url, "friend", "perm") as friend,
        joined(server.url, "stranger", "perm") as stranger,
    ):
        talker.local_participant.set_track_subscription_permissions(
            allow_all_participants=False,
            participant_permissions=[
                rtc.ParticipantTrackPermission(participant_identity="friend", allow_all=True)
            ],
        )
        await until(
            lambda: server.rooms["perm"].participants["talker"].subscription_permission is not None,
            10,
        )
        async with (
            Listener(friend, "talker") as friend_hears,
            Listener(stranger, "talker") as stranger_hears,
            ToneSender(talker, 440.0),
        ):
            await hears_tone(friend_hears, 440.0)
            assert not stranger_hears.subscribed.is_set()
            assert receiving(server, "perm", "stranger") == set()
            # Allowing everyone lets the stranger in.
            talker.local_participant.set_track_subscription_permissions(allow_all_participants=True)
            await hears_tone(stranger_hears, 440.0)
