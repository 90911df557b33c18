"""Data packets through the server, reliable and lossy, with the sender's identity set."""

from __future__ import annotations

import asyncio

import pytest
from livekit import rtc

from echoproof import sfu
from tests.conftest import scaled
from tests.echoproof.sfu._clients import joined, until


@pytest.mark.parametrize("reliable", [True, False], ids=["reliable", "lossy"])
async def test_data_packet_reaches_the_others(server: sfu.Server, reliable: bool) -> None:
    """publish_data from one participant arrives at the other, attributed to the sender."""
    async with (
        joined(server.url, "sender", "data") as sender,
        joined(server.url, "receiver", "data") as receiver,
    ):
        received: asyncio.Queue[rtc.DataPacket] = asyncio.Queue()
        receiver.on("data_received", received.put_nowait)
        payload = b"hello over " + (b"reliable" if reliable else b"lossy")
        # The sender's data channel opens with its first publish; lossy packets sent before
        # the path is up may be dropped by design, so send until one arrives.
        async with asyncio.timeout(scaled(15)):
            while received.empty():
                await sender.local_participant.publish_data(payload, reliable=reliable, topic="t")
                await asyncio.sleep(0.2)
        packet = received.get_nowait()
        assert packet.data == payload
        assert packet.topic == "t"
        assert packet.participant is not None
        assert packet.participant.identity == "sender"
        expected = rtc.DataPacketKind.KIND_RELIABLE if reliable else rtc.DataPacketKind.KIND_LOSSY
        assert packet.kind == expected


async def test_data_packet_respects_destinations(server: sfu.Server) -> None:
    """A packet addressed to one identity reaches only that participant."""
    async with (
        joined(server.url, "a", "dest") as a,
        joined(server.url, "b", "dest") as b,
        joined(server.url, "c", "dest") as c,
    ):
        heard_b: list[bytes] = []
        heard_c: list[bytes] = []
        b.on("data_received", lambda p: heard_b.append(p.data))
        c.on("data_received", lambda p: heard_c.append(p.data))
        async with asyncio.timeout(scaled(15)):
            while not heard_c:
                await a.local_participant.publish_data(b"for c", destination_identities=["c"])
                await asyncio.sleep(0.2)
        await a.local_participant.publish_data(b"for all")
        await until(lambda: b"for all" in heard_b, 10)
        assert b"for c" not in heard_b
