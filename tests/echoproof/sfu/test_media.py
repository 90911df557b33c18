"""The forwarding path's parts: ForwardTrack, TrackFanout, RED, codecs, SDP, host check."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from aiortc import RTCRtpCodecParameters
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket

from echoproof import sfu
from echoproof.sfu.media import (
    AudioOptions,
    ForwardTrack,
    Passthrough,
    SubscriberPeer,
    TrackFanout,
    _audio_answer,
    _local_only,
    _video_answer,
    red_primary,
    red_wrap,
)
from tests.conftest import scaled
from tests.echoproof.sfu._clients import holds_tone

# What the SDK (libwebrtc) offers for a published audio track, as far as the answer reads it.
_OFFER_CODECS = [
    RTCRtpCodecParameters(
        "audio/opus", 48000, 2, 111, parameters={"minptime": 10, "useinbandfec": 1}
    ),
    RTCRtpCodecParameters("audio/red", 48000, 2, 63, parameters={"111/111": None}),
    RTCRtpCodecParameters("audio/PCMU", 8000, 1, 0),
]


async def test_forward_track_returns_payloads_in_order() -> None:
    """Payloads come out unchanged, in order, one per frame, with the RTP timestamp."""
    fanout = TrackFanout("TR_x")
    sink = fanout.subscribe()
    assert sink.id == "TR_x"
    assert sink.kind == "audio"
    fanout.feed(b"before the sender pulls", 0)  # dropped: would only add latency
    first = asyncio.create_task(sink.recv())
    await asyncio.sleep(0)
    for i in range(3):
        fanout.feed(bytes([i]) * 10, 960 * i)
    frames = [await first, await sink.recv(), await sink.recv()]
    assert [f.payloads for f in frames] == [[bytes([i]) * 10] for i in range(3)]
    assert [f.timestamp for f in frames] == [0, 960, 1920]
    assert Passthrough().pack(frames[1]) == ([bytes([1]) * 10], 960)
    assert sink.forwarded == 3


def test_red_primary_and_wrap() -> None:
    """The primary block comes out of a RED payload; Opus wraps into RED without redundancy."""
    older, newer = b"older-opus", b"newer-opus"
    offset_and_length = (960 << 10) | len(older)
    red = bytes([0x80 | 111]) + offset_and_length.to_bytes(3, "big") + bytes([111])
    red += older + newer
    assert red_primary(red) == newer
    assert red_primary(red_wrap(newer, 111)) == newer
    assert red_wrap(newer, 111) == bytes([111]) + newer
    assert red_primary(bytes([0x80 | 111, 0, 0])) is None  # a header cut short
    assert red_primary(bytes([0x80 | 111, 0, 0, 50, 111])) is None  # a block past the end


async def test_red_goes_as_red_or_as_opus_as_each_subscriber_took_it() -> None:
    """RED reaches a RED subscriber as it is and another as its primary Opus block."""
    fanout = TrackFanout("TR_r")
    fanout.codecs = _audio_answer(_OFFER_CODECS, AudioOptions())
    takes_red, opus_only = fanout.subscribe(), fanout.subscribe()
    takes_red.red_out = True
    waiting = [asyncio.create_task(s.recv()) for s in (takes_red, opus_only)]
    await asyncio.sleep(0)
    red = bytes([111]) + b"primary"
    fanout.tap(RtpPacket(payload_type=63, timestamp=960, payload=red))
    fanout.tap(RtpPacket(payload_type=111, timestamp=1920, payload=b"plain"))
    fanout.tap(RtpPacket(payload_type=0, timestamp=2880, payload=b"not negotiated"))
    assert bytes(await waiting[0]) == red
    assert bytes(await waiting[1]) == b"primary"
    assert bytes(await takes_red.recv()) == bytes([111]) + b"plain"
    assert bytes(await opus_only.recv()) == b"plain"
    assert fanout.packets == 2


async def test_video_frames_gather_up_to_the_marker_and_skip_rtx() -> None:
    """A video frame's packets go out together; RTX and a frame without a marker are handled."""
    fanout = TrackFanout("TR_v", "video")
    fanout.codecs = _video_answer(
        [
            RTCRtpCodecParameters("video/VP8", 90000, payloadType=96),
            RTCRtpCodecParameters("video/rtx", 90000, payloadType=97, parameters={"apt": 96}),
        ]
    )
    sink = fanout.subscribe()
    assert sink.kind == "video"
    assert sink.request_keyframe is not None
    waiting = asyncio.create_task(sink.recv())
    await asyncio.sleep(0)

    def packet(pt: int, ts: int, payload: bytes, marker: int = 0) -> RtpPacket:
        p = RtpPacket(payload_type=pt, timestamp=ts, payload=payload, marker=marker)
        p.ssrc = 1234
        return p

    fanout.tap(packet(96, 3000, b"a1"))
    fanout.tap(packet(97, 3000, b"retransmission"))
    fanout.tap(packet(96, 3000, b"a2", marker=1))
    fanout.tap(packet(96, 6000, b"b1"))  # its last packet never comes
    fanout.tap(packet(96, 9000, b"c1", marker=1))
    frames = [await waiting, await sink.recv(), await sink.recv()]
    assert [(f.payloads, f.timestamp) for f in frames] == [
        ([b"a1", b"a2"], 3000),
        ([b"b1"], 6000),
        ([b"c1"], 9000),
    ]
    assert fanout.packets == 4


def test_publisher_answer_codecs_follow_livekit_server() -> None:
    """RED first if offered, Opus with minptime, FEC, DTX unless disabled, stereo if asked."""
    plain = _audio_answer(_OFFER_CODECS, AudioOptions())
    assert [(c.name, c.payloadType) for c in plain] == [("red", 63), ("opus", 111)]
    assert plain[1].parameters == {"minptime": 10, "useinbandfec": 1, "usedtx": 1}
    (opus,) = _audio_answer(_OFFER_CODECS, AudioOptions(dtx=False, stereo=True, red=False))
    assert opus.parameters == {
        "minptime": 10,
        "useinbandfec": 1,
        "stereo": 1,
        "maxaveragebitrate": 510000,
    }
    assert _audio_answer(_OFFER_CODECS[1:], AudioOptions()) == []  # no Opus: left to aiortc


async def test_forward_track_queue_is_bounded_and_stop_ends_recv() -> None:
    """A stalled subscriber loses the oldest packets; stop() ends a waiting recv()."""
    sink = ForwardTrack("TR_y", max_packets=4)
    waiting = asyncio.create_task(sink.recv())
    await asyncio.sleep(0)
    for i in range(10):
        sink.push(bytes([i]), i)
    assert sink.dropped == 6
    assert bytes(await waiting) == bytes([6])
    sink.stop()
    with pytest.raises(MediaStreamError):
        async with asyncio.timeout(scaled(1)):
            while True:
                await sink.recv()


async def test_fanout_close_ends_every_subscriber() -> None:
    """When the publisher goes, every copy of its track ends."""
    fanout = TrackFanout("TR_z")
    sinks = [fanout.subscribe() for _ in range(3)]
    fanout.close()
    assert fanout.sinks == set()
    assert all(s.readyState == "ended" for s in sinks)


def test_local_only_drops_ipv6_candidates() -> None:
    """IPv6 candidates leave the SDP; IPv4 ones and other lines stay."""
    sdp = (
        "v=0\r\na=candidate:1 1 udp 1 192.0.2.2 5000 typ host\r\n"
        "a=candidate:2 1 udp 1 fd00::2 5001 typ host\r\na=end-of-candidates\r\n"
    )
    assert _local_only(sdp) == (
        "v=0\r\na=candidate:1 1 udp 1 192.0.2.2 5000 typ host\r\na=end-of-candidates\r\n"
    )


def test_host_addresses_exclude_loopback() -> None:
    """The host check lists non-loopback IPv4 addresses only (this machine has one)."""
    addresses = sfu.host_addresses()
    assert "127.0.0.1" not in addresses
    assert addresses, "the tests need a non-loopback interface (see sfu.HostNetworkError)"
    sfu.check_host_network()
    with pytest.raises(sfu.HostNetworkError, match="no non-loopback network interface"):
        sfu.check_host_network([])


def test_holds_tone_tells_the_tone_from_others() -> None:
    """The per-frame check used by the audio tests accepts the tone and rejects the rest."""
    t = np.arange(480) / 48000
    tone = (0.5 * 32767 * np.sin(2 * np.pi * 440 * t + 0.3)).astype(np.int16)
    other = (0.5 * 32767 * np.sin(2 * np.pi * 550 * t)).astype(np.int16)
    noise = np.random.default_rng(1).normal(0, 8000, 480).astype(np.int16)
    assert holds_tone(tone, 440.0)
    assert not holds_tone(other, 440.0)
    assert not holds_tone(noise, 440.0)
    assert not holds_tone(np.zeros(480, dtype=np.int16), 440.0)
    assert not holds_tone((tone + other) // 2, 440.0)


async def test_peer_close_twice_at_once_waits_for_the_one_close() -> None:
    """A second close() while the first runs returns only once the connection is closed."""
    peer = SubscriberPeer("twice")
    close_pc = peer.pc.close

    async def slow_close() -> None:  # an unconnected pc closes without ever yielding
        await asyncio.sleep(0.05)
        await close_pc()

    peer.pc.close = slow_close  # type: ignore[method-assign]
    states: list[str] = []

    async def close() -> None:
        await peer.close()
        states.append(peer.pc.connectionState)

    await asyncio.gather(close(), close())
    await peer.close()
    assert states == ["closed", "closed"]


async def test_server_close_twice_at_once_waits_for_the_one_shutdown(server: sfu.Server) -> None:
    """A second close() while the first runs returns only once the server has stopped."""
    stopped: list[bool] = []

    async def close() -> None:
        await server.close()
        stopped.append(server._runner is None)

    await asyncio.gather(close(), close())
    await server.close()
    assert stopped == [True, True]
