"""Opus and RED as livekit-server negotiates them, checked with the real SDK."""

from __future__ import annotations

from aiortc.sdp import MediaDescription, SessionDescription
from livekit import rtc

from echoproof import sfu
from tests.echoproof.sfu._clients import (
    HostWatch,
    Listener,
    ToneSender,
    joined,
    steady_share,
    until,
)


def _audio_sections(sdp: str, direction: str) -> list[MediaDescription]:
    return [
        m
        for m in SessionDescription.parse(sdp).media
        if m.kind == "audio" and m.direction == direction
    ]


def _publisher_sdps(server: sfu.Server, room: str, identity: str) -> tuple[str, str]:
    connection = server.connection(room, identity)
    assert connection is not None
    pc = connection.publisher.pc
    return pc.remoteDescription.sdp, pc.localDescription.sdp


async def test_publisher_answer_carries_opus_parameters(server: sfu.Server) -> None:
    """The SDK offers RED over Opus; the answer takes RED first and Opus with FEC and DTX."""
    async with joined(server.url, "talker", "fmtp") as talker, ToneSender(talker, 440.0):
        await until(lambda: bool(server.rooms["fmtp"].participants["talker"].tracks), 10)
        offer, answer = _publisher_sdps(server, "fmtp", "talker")
    print("publisher offer from the SDK:\n" + offer)
    (offered,) = _audio_sections(offer, "sendonly")
    assert [c.name for c in offered.rtp.codecs][:2] == ["opus", "red"]
    assert offered.rtp.codecs[1].parameters == {"111/111": None}
    (answered,) = _audio_sections(answer, "recvonly")
    assert [(c.name, c.payloadType) for c in answered.rtp.codecs] == [("red", 63), ("opus", 111)]
    assert "a=fmtp:111 minptime=10;useinbandfec=1;usedtx=1\r\n" in answer
    assert "a=fmtp:63 111/111\r\n" in answer


async def test_disabled_dtx_and_red_leave_them_out(server: sfu.Server) -> None:
    """A track published with dtx=False and red=False is answered with plain Opus."""
    options = rtc.TrackPublishOptions(
        source=rtc.TrackSource.SOURCE_MICROPHONE, dtx=False, red=False
    )
    async with (
        joined(server.url, "talker", "plain") as talker,
        ToneSender(talker, 440.0, options=options),
    ):
        await until(lambda: bool(server.rooms["plain"].participants["talker"].tracks), 10)
        (track,) = server.rooms["plain"].participants["talker"].tracks.values()
        assert track.disable_dtx and track.disable_red
        _, answer = _publisher_sdps(server, "plain", "talker")
    (answered,) = _audio_sections(answer, "recvonly")
    assert [c.name for c in answered.rtp.codecs] == ["opus"]
    assert "a=fmtp:111 minptime=10;useinbandfec=1\r\n" in answer


async def test_tone_is_heard_through_red(server: sfu.Server) -> None:
    """With RED on both legs the listener hears the tone steadily; without RED, too."""
    for red in (True, False):
        room = f"red-{red}"
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE, red=red)
        async with (
            HostWatch() as watch,
            joined(server.url, "listener", room) as listener,
            joined(server.url, "talker", room) as talker,
            Listener(listener, "talker") as hears,
            ToneSender(talker, 440.0, options=options),
        ):
            await until(lambda: len(watch.judged(hears, 440.0, 50)) >= 200, 20)
            connection = server.connection(room, "listener")
            assert connection is not None
            ((fanout, sink),) = connection.subscriptions.values()
            assert sink.red_out is red
            assert bool(fanout.payload_types("red")) is red
        assert steady_share(hears, 440.0, 50, 200, watch) >= 0.99
