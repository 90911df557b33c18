"""The forwarding path's parts: ForwardTrack, TrackFanout, SDP filtering, host check."""

from __future__ import annotations

import asyncio
import fractions

import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError

import sfu
from sfu.media import ForwardTrack, SubscriberPeer, TrackFanout, _local_only
from tests.conftest import scaled
from tests.sfu._clients import holds_tone


async def test_forward_track_returns_payloads_as_packets_in_order() -> None:
    """Payloads come out unchanged, in order, with the RTP timestamp as pts at 1/48000."""
    fanout = TrackFanout("TR_x")
    sink = fanout.subscribe()
    assert sink.id == "TR_x"
    fanout.feed(b"before the sender pulls", 0)  # dropped: would only add latency
    first = asyncio.create_task(sink.recv())
    await asyncio.sleep(0)
    for i in range(3):
        fanout.feed(bytes([i]) * 10, 960 * i)
    packets = [await first, await sink.recv(), await sink.recv()]
    assert [bytes(p) for p in packets] == [bytes([i]) * 10 for i in range(3)]
    assert [p.pts for p in packets] == [0, 960, 1920]
    assert all(p.time_base == fractions.Fraction(1, 48000) for p in packets)
    assert sink.forwarded == 3


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
