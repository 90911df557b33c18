"""The embedded server a run starts for itself, in its own process."""

from __future__ import annotations

import socket

import pytest
from livekit import api

from pipeline.errors import ConnectError
from pipeline.server.process import EmbeddedServer
from tests.conftest import scaled


async def test_child_server_serves_the_api_and_stops() -> None:
    """It listens on the port it reports, answers the room API, and stops on close (twice)."""
    secret = "a-secret-long-enough-for-hs256-0123456789"
    server = EmbeddedServer("127.0.0.1", 0, "devkey", secret, start_timeout_s=scaled(30))
    async with server:
        assert server.alive
        assert server.url == f"ws://127.0.0.1:{server.port}" and server.port > 0
        async with api.LiveKitAPI(server.url.replace("ws", "http"), "devkey", secret) as lk:
            await lk.room.create_room(api.CreateRoomRequest(name="r1"))
            rooms = await lk.room.list_rooms(api.ListRoomsRequest())
        assert [r.name for r in rooms.rooms] == ["r1"]
    assert not server.alive
    await server.aclose()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", server.port)) != 0


async def test_busy_port_is_one_sentence() -> None:
    """A port already taken gives ConnectError naming it."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(
            ConnectError, match=f"could not start the embedded server on 127.0.0.1:{port}"
        ):
            async with EmbeddedServer("127.0.0.1", port, "k", "s", start_timeout_s=scaled(30)):
                pass
