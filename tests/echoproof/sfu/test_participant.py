"""Participant metadata, name, attributes and kind as other participants see them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from livekit import api, rtc

from echoproof import sfu
from tests.conftest import scaled
from tests.echoproof.sfu._clients import API_KEY, API_SECRET, joined, until


@contextlib.asynccontextmanager
async def joined_with(url: str, token: api.AccessToken) -> AsyncIterator[rtc.Room]:
    """A connected ``rtc.Room`` joined with ``token``, disconnected on exit."""
    r = rtc.Room()
    try:
        async with asyncio.timeout(scaled(15)):
            await r.connect(url, token.to_jwt())
        yield r
    finally:
        await r.disconnect()


def grants(room: str, **extra: object) -> api.VideoGrants:
    return api.VideoGrants(room_join=True, room=room, **extra)  # type: ignore[arg-type]


async def test_set_metadata_name_and_attributes_are_seen_by_the_other(server: sfu.Server) -> None:
    """set_metadata, set_name and set_attributes reach the other participant as events."""
    me = (
        api.AccessToken(API_KEY, API_SECRET)
        .with_identity("me")
        .with_grants(grants("meta", can_update_own_metadata=True))
    )
    async with joined_with(server.url, me) as mine, joined(server.url, "other", "meta") as other:
        await until(lambda: "me" in other.remote_participants, 10)
        seen: dict[str, object] = {}
        other.on("participant_metadata_changed", lambda p, old, new: seen.update(metadata=new))
        other.on("participant_name_changed", lambda p, old, new: seen.update(name=new))
        other.on(
            "participant_attributes_changed",
            lambda changed, p: seen.update(attributes=dict(p.attributes)),
        )
        async with asyncio.timeout(scaled(10)):
            await mine.local_participant.set_metadata("hello")
            await mine.local_participant.set_name("Me Myself")
            await mine.local_participant.set_attributes({"role": "caller", "lang": "en"})
        await until(lambda: len(seen) == 3, 10)
        assert seen == {
            "metadata": "hello",
            "name": "Me Myself",
            "attributes": {"role": "caller", "lang": "en"},
        }
        remote = other.remote_participants["me"]
        assert (remote.metadata, remote.name) == ("hello", "Me Myself")
        participant = server.rooms["meta"].participants["me"]
        assert participant.attributes == {"role": "caller", "lang": "en"}
        assert mine.local_participant.metadata == "hello"


async def test_metadata_update_without_the_grant_changes_nothing(server: sfu.Server) -> None:
    """Without canUpdateOwnMetadata, set_metadata is answered but the metadata stays."""
    async with (
        joined(server.url, "me", "deny") as mine,
        joined(server.url, "other", "deny") as other,
    ):
        await until(lambda: "me" in other.remote_participants, 10)
        async with asyncio.timeout(scaled(10)):
            await mine.local_participant.set_metadata("nope")
        assert server.rooms["deny"].participants["me"].metadata == ""
        # The other hears of "me" in order: once it has this later update, it has had any
        # update the refused request might have caused.
        async with api.LiveKitAPI(server.url, API_KEY, API_SECRET) as lk:
            await lk.room.update_participant(
                api.UpdateParticipantRequest(room="deny", identity="me", attributes={"later": "1"})
            )
        await until(lambda: other.remote_participants["me"].attributes == {"later": "1"}, 10)
        assert other.remote_participants["me"].metadata == ""


async def test_kind_attributes_and_metadata_from_the_token(server: sfu.Server) -> None:
    """An agent token's kind, attributes and metadata reach the other participant."""
    agent = (
        api.AccessToken(API_KEY, API_SECRET)
        .with_identity("agent")
        .with_kind("agent")
        .with_attributes({"voice": "alto"})
        .with_metadata("from token")
        .with_grants(grants("kind"))
    )
    async with joined(server.url, "user", "kind") as user, joined_with(server.url, agent):
        await until(lambda: "agent" in user.remote_participants, 10)
        remote = user.remote_participants["agent"]
        assert remote.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
        assert remote.attributes == {"voice": "alto"}
        assert remote.metadata == "from token"
