"""How a departure is announced: a leave, a dropped socket, a killed client."""

from __future__ import annotations

import asyncio
import sys
import time

import aiohttp
from livekit import rtc
from livekit.protocol import models
from livekit.protocol import rtc as proto

from echoproof import sfu
from echoproof.sfu._signal import RESUME_WINDOW_S
from tests.conftest import scaled
from tests.echoproof.sfu._clients import API_KEY, API_SECRET, joined, token, until

# A client in its own process, so that the test can kill it as a crash would.
_CLIENT = """
import asyncio, sys
from livekit import rtc

async def main() -> None:
    room = rtc.Room()
    await room.connect(sys.argv[1], sys.argv[2])
    print("joined", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def is_active(server: sfu.Server, room: str, identity: str) -> bool:
    """Whether ``identity`` is in ``room`` on the server with its media connected."""
    participant = server.rooms[room].participants.get(identity)
    return participant is not None and participant.state == models.ParticipantInfo.State.ACTIVE


def reasons_of(room: rtc.Room) -> dict[str, int]:
    """Who left ``room``, and the disconnect reason the SDK reports for each."""
    gone: dict[str, int] = {}
    room.on(
        "participant_disconnected",
        lambda p: gone.__setitem__(p.identity, p.disconnect_reason),
    )
    return gone


async def test_leave_is_announced_as_client_initiated(server: sfu.Server) -> None:
    """A participant that calls disconnect() is announced as CLIENT_INITIATED."""
    async with joined(server.url, "watcher", "leave") as watcher:
        gone = reasons_of(watcher)
        async with joined(server.url, "leaver", "leave"):
            await until(lambda: "leaver" in watcher.remote_participants, 10)
            # An SDK still connecting when told to disconnect may drop its socket unannounced.
            await until(lambda: is_active(server, "leave", "leaver"), 10)
        await until(lambda: "leaver" in gone, 10)
        assert gone["leaver"] == rtc.DisconnectReason.CLIENT_INITIATED


async def test_socket_dropped_before_media_is_announced_as_signal_close(
    server: sfu.Server,
) -> None:
    """A client whose socket drops before its media connects is announced as SIGNAL_CLOSE."""
    async with joined(server.url, "watcher", "drop") as watcher, aiohttp.ClientSession() as http:
        gone = reasons_of(watcher)
        url = f"{server.url}/rtc?access_token={token('dropper', 'drop')}"
        ws = await http.ws_connect(url)
        first = proto.SignalResponse()
        first.ParseFromString((await ws.receive()).data)
        assert first.WhichOneof("message") == "join"
        await until(lambda: "dropper" in watcher.remote_participants, 10)
        # No leave, no close frame: the TCP connection just goes away.
        assert ws._response.connection is not None
        ws._response.connection.transport.abort()  # type: ignore[union-attr]
        await until(lambda: "dropper" in gone, 10)
        assert gone["dropper"] == rtc.DisconnectReason.SIGNAL_CLOSE


async def test_killed_client_is_announced_as_connection_timeout(server: sfu.Server) -> None:
    """A client process killed after its media connected is kept for a resume that never
    comes, then announced as CONNECTION_TIMEOUT."""
    async with joined(server.url, "watcher", "kill") as watcher:
        gone = reasons_of(watcher)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _CLIENT,
            server.url,
            token("victim", "kill"),
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            assert proc.stdout is not None
            async with asyncio.timeout(scaled(30)):
                assert await proc.stdout.readline() == b"joined\n"
            await until(lambda: "victim" in watcher.remote_participants, 10)
            await until(
                lambda: (
                    server.rooms["kill"].participants["victim"].state
                    == models.ParticipantInfo.State.ACTIVE
                ),
                10,
            )
        finally:
            proc.kill()
            await proc.wait()
            killed_at = time.monotonic()
        await until(lambda: "victim" in gone, 10 + RESUME_WINDOW_S)
        assert time.monotonic() - killed_at >= RESUME_WINDOW_S * 0.9
        assert gone["victim"] == rtc.DisconnectReason.CONNECTION_TIMEOUT


async def test_silent_client_is_dropped_as_signal_close() -> None:
    """A client that sends nothing for ping_timeout is removed and announced as SIGNAL_CLOSE."""
    async with (
        sfu.serve(
            port=0, api_key=API_KEY, api_secret=API_SECRET, ping_interval=1, ping_timeout=3
        ) as server,
        joined(server.url, "watcher", "quiet") as watcher,
        aiohttp.ClientSession() as http,
    ):
        gone = reasons_of(watcher)
        url = f"{server.url}/rtc?access_token={token('mute', 'quiet')}"
        async with http.ws_connect(url):
            await until(lambda: "mute" in watcher.remote_participants, 10)
            await until(lambda: "mute" in gone, 10)
        assert gone["mute"] == rtc.DisconnectReason.SIGNAL_CLOSE
