"""Webhooks: livekit-server's events, signed, POSTed in order to the configured URLs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from livekit import api, rtc
from livekit.protocol import webhook

from echoproof import sfu
from echoproof.sfu.server import QUALITY_INTERVAL_S
from echoproof.sfu.webhook import encode, sign
from tests.conftest import scaled
from tests.echoproof.sfu._clients import API_KEY, API_SECRET, ToneSender, joined, token, until

# The server rates quality once per interval and says nothing when nothing changed: a second
# rating would come at the next tick, so the check waits one interval (its slack scaled).
NEXT_QUALITY_TICK_S = QUALITY_INTERVAL_S + scaled(0.5)


@dataclass
class Receiver:
    """An HTTP endpoint on port 0 that keeps every POST it gets: (body, headers)."""

    posts: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    url: str = ""

    def events(self) -> list[webhook.WebhookEvent]:
        """Every post checked as the SDK's WebhookReceiver checks it, in arrival order."""
        receiver = api.WebhookReceiver(api.TokenVerifier(API_KEY, API_SECRET))
        return [receiver.receive(body, headers["Authorization"]) for body, headers in self.posts]

    def names(self) -> list[str]:
        return [e.event for e in self.events()]

    async def _handle(self, request: web.Request) -> web.Response:
        self.posts.append(((await request.read()).decode(), dict(request.headers)))
        return web.Response(text="ok")


@contextlib.asynccontextmanager
async def receiving() -> AsyncIterator[Receiver]:
    """A running :class:`Receiver`, stopped on exit."""
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hook", receiver._handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    receiver.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        yield receiver
    finally:
        await runner.cleanup()


def free_port() -> int:
    """A port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_signed_body_is_accepted_by_the_sdk() -> None:
    """encode and sign give a body and header that WebhookReceiver accepts, in camelCase JSON."""
    event = webhook.WebhookEvent(event="room_started", id="EV_x", created_at=1700000000)
    event.room.name = "r"
    event.room.creation_time_ms = 1700000000123
    body = encode(event)
    assert b'"createdAt":"1700000000"' in body and b'"creationTimeMs"' in body
    receiver = api.WebhookReceiver(api.TokenVerifier(API_KEY, API_SECRET))
    assert receiver.receive(body.decode(), sign(body, API_KEY, API_SECRET)) == event
    with pytest.raises(Exception, match="hash mismatch"):
        receiver.receive(body.decode() + " ", sign(body, API_KEY, API_SECRET))


async def test_join_publish_leave_sends_every_event_in_order() -> None:
    """A participant's join, publish, unpublish and leave reach the URL signed and in order."""
    async with receiving() as receiver:
        async with (
            sfu.serve(
                port=0, api_key=API_KEY, api_secret=API_SECRET, webhook_urls=[receiver.url]
            ) as server,
            joined(server.url, "alice", "hooks") as alice,
        ):
            async with ToneSender(alice, 440):
                await until(lambda: len(receiver.posts) >= 3, 10)
                [pub] = alice.local_participant.track_publications.values()
                await alice.local_participant.unpublish_track(pub.sid)
            await until(lambda: len(receiver.posts) >= 4, 10)
            await alice.disconnect()
            await until(lambda: len(receiver.posts) >= 6, 10)
        events = receiver.events()
        assert [e.event for e in events] == [
            "room_started",
            "participant_joined",
            "track_published",
            "track_unpublished",
            "participant_left",
            "room_finished",
        ]
        assert all(e.room.name == "hooks" for e in events)
        assert len({e.room.sid for e in events}) == 1
        assert len({e.id for e in events}) == 6 and all(e.id.startswith("EV_") for e in events)
        assert all(abs(e.created_at - time.time()) < 120 for e in events)
        joined_, published, unpublished, left = events[1:5]
        assert joined_.participant.identity == "alice"
        assert joined_.participant.state == joined_.participant.State.ACTIVE
        assert published.participant.identity == "alice"
        assert published.participant.sid == joined_.participant.sid
        assert published.track.sid == pub.sid == unpublished.track.sid
        assert left.participant.state == left.participant.State.DISCONNECTED
        for _, headers in receiver.posts:
            assert headers["Content-Type"] == "application/webhook+json"


async def test_a_receiver_that_is_down_or_stuck_does_not_disturb_the_room() -> None:
    """With one URL refusing connections and one never answering, joins still work at once and
    a third URL gets its events; the server still stops promptly."""
    stuck = asyncio.Event()

    async def never_answer(request: web.Request) -> web.Response:
        await stuck.wait()
        return web.Response()

    app = web.Application()
    app.router.add_post("/", never_answer)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    stuck_url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
    down_url = f"http://127.0.0.1:{free_port()}/"
    try:
        async with receiving() as receiver:
            urls = [down_url, stuck_url, receiver.url]
            server = sfu.serve(port=0, api_key=API_KEY, api_secret=API_SECRET, webhook_urls=urls)
            async with server:
                async with (
                    joined(server.url, "a", "down") as a,
                    joined(server.url, "b", "down"),
                ):
                    await until(lambda: "b" in a.remote_participants, 10)
                started = time.monotonic()
            assert time.monotonic() - started < scaled(8)
            assert receiver.names()[:2] == ["room_started", "participant_joined"]
    finally:
        stuck.set()
        await runner.cleanup()


async def test_rooms_made_and_deleted_through_the_api_send_room_events() -> None:
    """CreateRoom sends room_started and DeleteRoom room_finished, each once."""
    async with (
        receiving() as receiver,
        sfu.serve(
            port=0, api_key=API_KEY, api_secret=API_SECRET, webhook_urls=[receiver.url]
        ) as server,
    ):
        http_url = server.url.replace("ws://", "http://")
        async with api.LiveKitAPI(http_url, API_KEY, API_SECRET) as lk:
            await lk.room.create_room(api.CreateRoomRequest(name="made"))
            await lk.room.create_room(api.CreateRoomRequest(name="made"))
            await lk.room.delete_room(api.DeleteRoomRequest(room="made"))
            # Events reach the URL in order: once this later room's arrives, all before it have.
            await lk.room.create_room(api.CreateRoomRequest(name="later"))
        await until(lambda: any(e.room.name == "later" for e in receiver.events()), 10)
        assert [(e.event, e.room.name) for e in receiver.events()] == [
            ("room_started", "made"),
            ("room_finished", "made"),
            ("room_started", "later"),
        ]


def test_a_webhook_url_that_is_not_http_is_refused() -> None:
    """A URL without an http(s) scheme is one SfuError naming it."""
    with pytest.raises(sfu.SfuError, match="webhook URL 'ftp://x/'"):
        sfu.Server(webhook_urls=["ftp://x/"])


async def test_cli_webhook_sends_events() -> None:
    """``python -m echoproof.sfu --webhook URL`` POSTs a room's events to URL."""
    async with receiving() as receiver:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "echoproof.sfu", "--port", "0", "--webhook", receiver.url,
            env={**os.environ, "LIVEKIT_API_KEY": API_KEY, "LIVEKIT_API_SECRET": API_SECRET},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            async with asyncio.timeout(scaled(20)):
                line = (await proc.stdout.readline()).decode()
            match = re.search(r"ws://127\.0\.0\.1:(\d+)", line)
            assert match, f"no URL in {line!r}"
            async with api.LiveKitAPI(
                f"http://127.0.0.1:{match.group(1)}", API_KEY, API_SECRET
            ) as lk:
                await lk.room.create_room(api.CreateRoomRequest(name="cli"))
            await until(lambda: len(receiver.posts) >= 1, 10)
            assert receiver.names() == ["room_started"]
            assert receiver.events()[0].room.name == "cli"
        finally:
            proc.terminate()
            async with asyncio.timeout(scaled(20)):
                await proc.communicate()
        assert proc.returncode == 0
        # The room still open at shutdown is finished on the way out.
        assert receiver.names() == ["room_started", "room_finished"]


async def test_cli_refuses_a_bad_webhook_url() -> None:
    """--webhook with a URL that is not http(s) is one sentence and exit code 1."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "echoproof.sfu", "--port", "0", "--webhook", "localhost:9",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(scaled(20)):
        _, stderr = await proc.communicate()
    assert proc.returncode == 1
    assert "webhook URL 'localhost:9'" in stderr.decode()
    assert b"Traceback" not in stderr


async def test_connection_quality_is_excellent_once(server: sfu.Server) -> None:
    """Each participant hears once that its own and the other's connection are EXCELLENT."""
    heard: list[tuple[str, str]] = []
    rooms = {name: rtc.Room() for name in ("q1", "q2")}
    for me, room in rooms.items():
        room.on(
            "connection_quality_changed",
            lambda p, quality, me=me: heard.append((me, p.identity)),
        )
    try:
        for me, room in rooms.items():
            async with asyncio.timeout(scaled(15)):
                await room.connect(server.url, token(me, "quality"))
        await until(lambda: len(heard) >= 4, QUALITY_INTERVAL_S * 2 + 5)
        await asyncio.sleep(NEXT_QUALITY_TICK_S)  # and nothing more at the next tick
        assert sorted(heard) == [("q1", "q1"), ("q1", "q2"), ("q2", "q1"), ("q2", "q2")]
        excellent = rtc.ConnectionQuality.QUALITY_EXCELLENT
        q1, q2 = rooms["q1"], rooms["q2"]
        assert q1.local_participant.connection_quality == excellent
        assert q1.remote_participants["q2"].connection_quality == excellent
        assert q2.remote_participants["q1"].connection_quality == excellent
    finally:
        for room in rooms.values():
            await room.disconnect()


async def test_a_participant_that_never_connects_media_is_aborted() -> None:
    """A join whose media never connects ends with participant_connection_aborted, not left."""
    async with (
        receiving() as receiver,
        sfu.serve(
            port=0, api_key=API_KEY, api_secret=API_SECRET, webhook_urls=[receiver.url]
        ) as server,
        aiohttp.ClientSession() as http,
    ):
        params = {"access_token": token("raw", "abort")}
        async with http.ws_connect(server.url + "/rtc", params=params) as ws:
            await ws.receive_bytes(timeout=scaled(5))  # the join response
        await until(lambda: len(receiver.posts) >= 3, 10)
        assert receiver.names() == [
            "room_started",
            "participant_connection_aborted",
            "room_finished",
        ]
        assert receiver.events()[1].participant.identity == "raw"
