"""Resume: a client whose signal connection drops carries on in the same session."""

from __future__ import annotations

import asyncio

import pytest
from livekit import api, rtc

from echoproof import sfu
from echoproof.sfu import _signal as sig
from echoproof.sfu.room import Participant, Room
from tests.conftest import scaled
from tests.echoproof.sfu._clients import Listener, ToneSender, holds_tone, joined, token, until


async def cut_by_server(server: sfu.Server, room: rtc.Room, name: str) -> None:
    """The server closes the participant's signal socket (its peer connections live on)."""
    conn = server.connection(name, room.local_participant.identity)
    assert conn is not None
    await conn.ws.close()


async def cut_by_client(server: sfu.Server, room: rtc.Room, name: str) -> None:
    """The SDK drops its own signal socket, as on a network hiccup."""
    await room.simulate_scenario(rtc.SimulateScenarioKind.SIMULATE_SIGNAL_RECONNECT)


@pytest.mark.parametrize("cut", [cut_by_server, cut_by_client], ids=["server-cut", "client-cut"])
async def test_signal_loss_is_resumed_unseen_by_the_others(server: sfu.Server, cut: object) -> None:
    """After its signal socket drops, the talker resumes as the same participant: the listener
    sees no departure and keeps hearing the tone, and the talker can still set its metadata."""
    grants = api.VideoGrants(room_join=True, room="resume", can_update_own_metadata=True)
    talker = rtc.Room()
    events: list[str] = []
    for name in ("reconnecting", "reconnected", "disconnected"):
        talker.on(name, lambda *_, name=name: events.append(name))
    async with joined(server.url, "listener", "resume") as listener:
        departed: list[str] = []
        listener.on("participant_disconnected", lambda p: departed.append(p.identity))
        try:
            await talker.connect(server.url, token("talker", "resume", grants=grants))
            async with Listener(listener, "talker") as hears, ToneSender(talker, 440.0):
                await hears.wait_frames(50, 10)
                sid = server.rooms["resume"].participants["talker"].sid
                await cut(server, talker, "resume")  # type: ignore[operator]
                await until(lambda: "reconnected" in events, 15)
                assert events == ["reconnecting", "reconnected"]
                assert server.rooms["resume"].participants["talker"].sid == sid

                heard = len(hears.frames)
                await hears.wait_frames(heard + 100, 10)
                recent = hears.frames[heard + 50 : heard + 100]
                assert sum(holds_tone(f, 440.0) for f in recent) >= 0.9 * len(recent)

                await talker.local_participant.set_metadata("resumed")
                await until(
                    lambda: listener.remote_participants["talker"].metadata == "resumed", 10
                )
                assert departed == []
        finally:
            await talker.disconnect()
        await until(lambda: departed == ["talker"], 10)


def test_resumed_client_is_sent_reconnect_then_everyone_then_the_room() -> None:
    """What a resumed client is told, in livekit-server's order; its silence is forgiven."""
    room = Room(name="r")
    me, other = Participant(identity="me"), Participant(identity="other")
    room.add(me)
    room.add(other)
    clock = [100.0]
    session = sig.Session(room, me, ping_timeout=15, clock=lambda: clock[0])
    clock[0] += 60
    assert session.timed_out()
    reconnect, update, room_update = session.resumed()
    assert not session.timed_out()
    assert reconnect.reconnect.server_info.protocol == sig.PROTOCOL_VERSION
    assert {p.identity for p in update.update.participants} == {"me", "other"}
    assert room_update.room_update.room.num_participants == 2


async def test_subscription_made_while_the_signal_is_down_arrives_after_the_resume(
    server: sfu.Server,
) -> None:
    """A track the server subscribes a client to while its signal socket is down (its offer
    has nowhere to go) reaches it once it resumes."""
    listener = rtc.Room()
    reconnected = asyncio.Event()
    listener.on("reconnected", lambda: reconnected.set())
    try:
        options = rtc.RoomOptions(auto_subscribe=False)
        await listener.connect(server.url, token("listener", "gap"), options)
        async with (
            joined(server.url, "talker", "gap") as talker,
            Listener(listener, "talker") as hears,
            ToneSender(talker, 550.0),
        ):
            await until(lambda: bool(server.rooms["gap"].participants["talker"].tracks), 10)
            conn = server.connection("gap", "listener")
            assert conn is not None
            await until(lambda: conn.media_connected, 10)
            await conn.ws.close()
            # What RoomService.UpdateSubscriptions does, before the client can resume.
            conn.session.choose(server.rooms["gap"].participants["talker"].tracks, True)
            assert await conn.resubscribe()
            await conn.negotiate()
            async with asyncio.timeout(scaled(15)):
                await reconnected.wait()
            await hears.wait_frames(100, 10)
            assert hears.first_tone_frame(550.0) is not None
    finally:
        await listener.disconnect()
