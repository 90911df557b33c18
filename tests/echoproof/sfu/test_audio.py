"""Audio through the server: two tones at once, late joiners, leaving, mute, shutdown."""

from __future__ import annotations

import asyncio

from livekit import rtc

from echoproof import sfu
from tests.conftest import scaled
from tests.echoproof.sfu._clients import (
    API_KEY,
    API_SECRET,
    HostWatch,
    Listener,
    ToneSender,
    joined,
    peak_hz,
    steady_share,
    until,
)

SETTLE = 100  # frames (1 s) after the first tone frame
STRETCH = 300  # frames (3 s) that must hold the tone


async def test_two_participants_hear_each_others_tone(server: sfu.Server) -> None:
    """Customer (440 Hz) and Support (550 Hz) talk at once; each hears the other's tone."""
    async with (
        HostWatch() as watch,
        joined(server.url, "customer", "call") as customer,
        joined(server.url, "support", "call") as support,
        Listener(customer, "support") as customer_hears,
        Listener(support, "customer") as support_hears,
        ToneSender(customer, 440.0),
        ToneSender(support, 550.0),
    ):
        # However late each first tone frame came, and however long the host held the
        # process back, the stretch heard on a running host is complete.
        await until(
            lambda: (
                len(watch.judged(support_hears, 440.0, SETTLE)) >= STRETCH
                and len(watch.judged(customer_hears, 550.0, SETTLE)) >= STRETCH
            ),
            20,
        )

    for listener, freq in ((support_hears, 440.0), (customer_hears, 550.0)):
        stretch = [listener.frames[i] for i in watch.judged(listener, freq, SETTLE)[:STRETCH]]
        assert abs(peak_hz(stretch) - freq) <= 2.0
        assert steady_share(listener, freq, SETTLE, STRETCH, watch) >= 0.99


async def test_late_joiner_hears_the_first_and_departure_is_announced(server: sfu.Server) -> None:
    """A participant who joins after a track is published hears it; leaving is announced."""
    async with (
        joined(server.url, "first", "late") as first,
        ToneSender(first, 440.0),
        joined(server.url, "second", "late") as second,
    ):
        await until(lambda: bool(server.rooms["late"].participants["first"].tracks), 10)
        async with (
            joined(server.url, "third", "late") as third,
            Listener(third, "first") as third_hears,
        ):
            async with asyncio.timeout(scaled(10)):
                await third_hears.subscribed.wait()
            await third_hears.wait_frames(150, 10)
            assert third_hears.first_tone_frame(440.0) is not None
            assert set(third.remote_participants) == {"first", "second"}

            gone = asyncio.Event()
            third.on(
                "participant_disconnected",
                lambda p: gone.set() if p.identity == "second" else None,
            )
            await second.disconnect()
            async with asyncio.timeout(scaled(10)):
                await gone.wait()
            assert set(third.remote_participants) == {"first"}
            assert list(server.rooms["late"].participants) == ["first", "third"]


async def test_unpublished_when_the_publisher_leaves(server: sfu.Server) -> None:
    """When the publisher leaves, the listener sees its track unsubscribed and it gone."""
    async with joined(server.url, "listener", "bye") as listener:
        unsubscribed = asyncio.Event()
        listener.on("track_unsubscribed", lambda *args: unsubscribed.set())
        async with (
            joined(server.url, "talker", "bye") as talker,
            Listener(listener, "talker") as hears,
            ToneSender(talker, 550.0),
        ):
            await hears.wait_frames(50, 10)
        async with asyncio.timeout(scaled(10)):
            await unsubscribed.wait()
        await until(lambda: "talker" not in listener.remote_participants, 10)
        assert list(server.rooms["bye"].participants) == ["listener"]


async def test_mute_and_unpublish_reach_the_listener(server: sfu.Server) -> None:
    """A client mute shows up as track_muted, an unpublish as track_unsubscribed."""
    async with (
        joined(server.url, "listener", "mute") as listener,
        joined(server.url, "talker", "mute") as talker,
        Listener(listener, "talker") as hears,
        ToneSender(talker, 440.0) as sender,
    ):
        await hears.wait_frames(20, 10)
        muted = asyncio.Event()
        unsubscribed = asyncio.Event()
        listener.on("track_muted", lambda participant, pub: muted.set())
        listener.on("track_unsubscribed", lambda track, pub, participant: unsubscribed.set())
        (publication,) = talker.local_participant.track_publications.values()
        publication.track.mute()  # type: ignore[union-attr]
        async with asyncio.timeout(scaled(10)):
            await muted.wait()
        track_sid = publication.sid
        assert server.rooms["mute"].participants["talker"].tracks[track_sid].muted
        await talker.local_participant.unpublish_track(track_sid)
        async with asyncio.timeout(scaled(10)):
            await unsubscribed.wait()
        await until(lambda: not server.rooms["mute"].participants["talker"].tracks, 10)
        assert sender.sent > 0


async def test_closing_the_server_disconnects_everyone() -> None:
    """Leaving the serve() block sends leave SERVER_SHUTDOWN to all; closing twice is safe."""
    server = sfu.serve(port=0, api_key=API_KEY, api_secret=API_SECRET)
    async with server, joined(server.url, "a", "end") as a, joined(server.url, "b", "end") as b:
        reasons: list[int] = []
        for room in (a, b):
            room.on("disconnected", reasons.append)
        await server.close()
        await until(lambda: len(reasons) == 2, 10)
        assert reasons == [rtc.DisconnectReason.SERVER_SHUTDOWN] * 2
        assert server.rooms == {}
    await server.close()
