"""The front end: one aiohttp application serving signalling, validation and the API services.

``/rtc`` upgrades to the signalling WebSocket; ``/rtc/v1`` and ``/rtc/v1/validate`` answer 404 so
that the SDKs fall back to ``/rtc``; ``/rtc/validate`` says why a token is refused; Twirp calls go
to :mod:`echoproof.sfu.roomservice`; agent workers connect to ``/agent`` and dispatches are made
through ``livekit.AgentDispatchService`` (:mod:`echoproof.sfu.agentservice`). Every answer carries
CORS headers for browser clients. Who is in which room is the :class:`~echoproof.sfu.hub.Hub`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from aiohttp import web
from livekit.protocol import models, rtc
from loguru import logger

from echoproof.aiotasks import AsyncClosing, cancel_and_wait

from . import _signal as sig
from ._connection import Connection
from .agents import Agents
from .agentservice import MAX_FRAME_BYTES, AgentService
from .auth import Authenticator, JoinGrant, token_from
from .errors import AuthError, HostNetworkError, SfuError
from .hub import Hub
from .media import check_host_network
from .room import DEPENDENT_KINDS, Participant, Room
from .roomservice import RoomService
from .settings import Settings, taking_fields_of
from .speakers import UPDATE_INTERVAL_S, Speakers, speakers_changed
from .webhook import Webhooks

# How often livekit-server looks at connection quality (connectionquality.UpdateInterval).
QUALITY_INTERVAL_S = 5.0
# How long the participants have to leave once the server stops; the rest are dropped.
SHUTDOWN_LEAVE_S = 10.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _cors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """CORS on every answer, and the preflight answered here."""
    if request.method == "OPTIONS":
        response: web.StreamResponse = web.Response(status=204)
    else:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = exc
    if not response.prepared:
        response.headers["Access-Control-Allow-Origin"] = request.headers.get("Origin", "*")
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = request.headers.get(
            "Access-Control-Request-Headers", "Authorization, Content-Type"
        )
        response.headers["Access-Control-Max-Age"] = "86400"
        response.headers["Vary"] = "Origin"
    return response


class Server(AsyncClosing):
    """The embedded LiveKit-compatible server; use as ``async with``. Its arguments are the
    :class:`~echoproof.sfu.settings.Settings` fields."""

    @taking_fields_of(Settings)
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.host = settings.host
        self.port = settings.port  # the bound port once started (port 0 picks one)
        self.auth = Authenticator(
            settings.api_key, settings.api_secret, leeway_s=settings.token_leeway_s
        )
        self.webhooks = Webhooks(settings.webhook_urls, settings.api_key, settings.api_secret)
        self.agents = Agents(self.auth, evict=self._evict)
        self.hub: Hub[Connection] = Hub(self.webhooks, self.agents)
        self._agent_service = AgentService(self.agents, self.auth, self.hub, lambda: self.closing)
        self._runner: web.AppRunner | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._quality: asyncio.Task[None] | None = None
        self._speakers: asyncio.Task[None] | None = None
        self._closing: asyncio.Future[None] | None = None  # done once the shutdown has ended

    @property
    def rooms(self) -> dict[str, Room]:
        """The open rooms, by name."""
        return self.hub.rooms

    def connection(self, room_name: str, identity: str) -> Connection | None:
        """The live connection of ``identity`` in ``room_name``, if any."""
        return self.hub.connection(room_name, identity)

    @property
    def closing(self) -> bool:
        """Whether the server has begun to shut down (it lets nobody new in)."""
        return self._closing is not None

    @property
    def url(self) -> str:
        """The signalling URL, ``ws://HOST:PORT``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}"

    # -- lifetime ---------------------------------------------------------------------------

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def aclose(self) -> None:
        await self.close()

    async def start(self) -> None:
        """Bind and start accepting connections; ``port`` becomes the real port."""
        try:
            check_host_network()
        except HostNetworkError as exc:
            logger.warning("{}", exc)
        self._runner = web.AppRunner(self._app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise SfuError(f"cannot listen on {self.host}:{self.port}: {exc.strerror}") from None
        addresses = self._runner.addresses
        if addresses:
            self.port = addresses[0][1]
        self._sweeper = asyncio.create_task(self._sweep(), name="sfu room sweeper")
        self._quality = asyncio.create_task(self._rate_quality(), name="sfu connection quality")
        self._speakers = asyncio.create_task(self._report_speakers(), name="sfu active speakers")
        self.webhooks.start()
        logger.info("listening on {}", self.url)

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[_cors])
        app.router.add_get("/", self._health)
        app.router.add_get("/rtc", self._rtc)
        app.router.add_get("/rtc/validate", self._validate)
        app.router.add_get("/rtc/v1", self._not_found)
        app.router.add_get("/rtc/v1/validate", self._not_found)
        rooms = RoomService(self.hub, self.auth)
        app.router.add_post("/twirp/livekit.RoomService/{method}", rooms.handler())
        app.router.add_get("/agent", self._agent_service.socket)
        app.router.add_post(
            "/twirp/livekit.AgentDispatchService/{method}", self._agent_service.twirp()
        )
        app.router.add_route("OPTIONS", "/{tail:.*}", self._not_found)
        return app

    async def close(self) -> None:
        """Disconnect everyone (leave SERVER_SHUTDOWN) and stop serving.

        Safe to call twice, at once too: a second caller returns when the first caller's
        shutdown has ended (however it ended: the first caller sees how).
        """
        if self._closing is not None:
            await asyncio.shield(self._closing)
            return
        self._closing = asyncio.get_running_loop().create_future()
        try:
            await self._shut_down()
        finally:
            self._closing.set_result(None)

    async def _shut_down(self) -> None:
        await cancel_and_wait(self._sweeper, self._quality, self._speakers)
        await self._agent_service.close()
        await self.hub.disconnect_everyone(
            models.DisconnectReason.SERVER_SHUTDOWN, SHUTDOWN_LEAVE_S
        )
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.hub.finish_rooms()
        await self.webhooks.close()
        logger.info("server on {} stopped", self.url)

    async def _sweep(self) -> None:
        """Close empty rooms whose empty timeout has passed."""
        while True:
            await asyncio.sleep(1.0)
            await self.hub.close_expired()

    async def _rate_quality(self) -> None:
        """Rate every active participant's connection EXCELLENT, to each active participant,
        once (a constant quality changes no more): at livekit-server's quality interval."""
        rated: dict[Connection, set[str]] = {}  # whose quality each connection has been told
        while True:
            await asyncio.sleep(QUALITY_INTERVAL_S)
            live = set(self.hub.connections())
            rated = {c: sids for c, sids in rated.items() if c in live}
            for room in list(self.rooms.values()):
                active = sig.active(room.participants.values())
                for conn in self.hub.connections_in(room):
                    told = rated.setdefault(conn, set())
                    new = active - told
                    if conn.participant.sid not in active or not new:
                        continue
                    told |= new
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        await conn.send(sig.connection_quality(new))

    async def _report_speakers(self) -> None:
        """Fold every published audio track's level, and tell each room when the set of its
        active speakers changes (a participant speaks at its loudest unmuted track's level)."""
        rooms: dict[str, tuple[Room, Speakers]] = {}
        while True:
            await asyncio.sleep(UPDATE_INTERVAL_S)
            rooms = {n: v for n, v in rooms.items() if self.rooms.get(n) is v[0]}
            for room in list(self.rooms.values()):
                levels: dict[str, float] = {}
                for conn in self.hub.connections_in(room):
                    for sid, fanout in list(conn.fanouts.items()):
                        if fanout.kind != "audio":
                            continue
                        level = fanout.audio_level.update()
                        track = conn.participant.tracks.get(sid)
                        if level and track is not None and not track.muted:
                            levels[conn.participant.sid] = max(
                                level, levels.get(conn.participant.sid, 0.0)
                            )
                _, speakers = rooms.setdefault(room.name, (room, Speakers()))
                changed = speakers.changes(levels)
                if changed is not None:
                    await self.hub.broadcast(room, speakers_changed(changed))

    async def _evict(self, room: str, identity: str) -> None:
        """Remove the agent of a deleted dispatch that did not leave by itself."""
        conn = self.hub.connection(room, identity)
        if conn is not None:
            await conn.disconnect(models.DisconnectReason.PARTICIPANT_REMOVED)

    # -- HTTP -------------------------------------------------------------------------------

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="OK")

    async def _not_found(self, request: web.Request) -> web.Response:
        # Not "requested room does not exist": that text stops the JS SDK's fallback to /rtc.
        return web.Response(status=404, text="not found")

    def _admit(self, request: web.Request) -> JoinGrant:
        """The join grant of a request, or :class:`AuthError` saying why it may not join."""
        grant = self.auth.join(token_from(request.headers, request.query))
        room = self.rooms.get(grant.room)
        if room and room.max_participants and grant.kind not in DEPENDENT_KINDS:
            # As livekit-server: agents neither count towards max_participants nor are held to it.
            seated = sum(not p.dependent for p in room.others_than(grant.identity))
            if seated >= room.max_participants:
                raise AuthError(f"room {grant.room} is full")
        return grant

    async def _validate(self, request: web.Request) -> web.Response:
        try:
            self._admit(request)
        except AuthError as exc:
            return web.Response(status=401, text=str(exc))
        return web.Response(text="success")

    async def _rtc(self, request: web.Request) -> web.StreamResponse:
        try:
            grant = self._admit(request)
        except AuthError as exc:
            logger.info("refused a join from {}: {}", request.remote, exc)
            return web.Response(status=401, text=str(exc))
        if self.closing:
            return web.Response(status=503, text="the server is shutting down")
        if request.query.get("reconnect") == "1":
            return await self._resume(request, grant)
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return web.Response(status=400, text="expected a WebSocket upgrade on /rtc")
        return await self._join(request, grant)

    async def _resume(self, request: web.Request, grant: JoinGrant) -> web.StreamResponse:
        """Hand the socket of a resuming client (``reconnect=1``) to its connection."""
        ws = web.WebSocketResponse(timeout=2.0, max_msg_size=MAX_FRAME_BYTES)
        await ws.prepare(request)
        conn = self.hub.connection(grant.room, grant.identity)
        if conn and conn.resumable and conn.participant.sid == request.query.get("sid"):
            await conn.resume(ws)
            return ws
        # Nobody to resume (gone, or another session): the client must rejoin in full.
        await ws.send_bytes(
            sig.leave(
                models.DisconnectReason.STATE_MISMATCH,
                action=rtc.LeaveRequest.Action.RECONNECT,
            ).SerializeToString()
        )
        await ws.close()
        return ws

    async def _join(self, request: web.Request, grant: JoinGrant) -> web.StreamResponse:
        """Seat the joining participant and serve its connection until it ends."""
        previous = self.hub.connection(grant.room, grant.identity)
        if previous is not None:
            logger.info("{}@{} joined again: replacing the first", grant.identity, grant.room)
            await previous.disconnect(models.DisconnectReason.DUPLICATE_IDENTITY)
        ws = web.WebSocketResponse(timeout=2.0, max_msg_size=MAX_FRAME_BYTES)
        await ws.prepare(request)
        # Looked up after the awaits: the sweeper may have closed an empty room meanwhile.
        room = self.hub.room(grant.room, grant.agents)
        conn = Connection(
            ws,
            room,
            _participant(grant),
            hub=self.hub,
            auth=self.auth,
            webhooks=self.webhooks,
            settings=self.settings,
            # "auto_subscribe=0" (the SDK's RoomOptions): nothing is sent until the client asks.
            auto_subscribe=request.query.get("auto_subscribe", "1") not in ("0", "false"),
        )
        self.hub.join(conn)
        logger.info("{} joined room {} as {}", grant.identity, room.name, conn.participant.sid)
        await conn.run()
        return ws


def _participant(grant: JoinGrant) -> Participant:
    """The participant a join grant lets in."""
    return Participant(
        identity=grant.identity,
        name=grant.name,
        metadata=grant.metadata,
        can_publish=grant.can_publish,
        can_subscribe=grant.can_subscribe,
        can_publish_data=grant.can_publish_data,
        can_update_metadata=grant.can_update_metadata,
        kind=grant.kind,
        attributes=dict(grant.attributes),
    )


def log_loop_errors(loop: asyncio.AbstractEventLoop) -> None:
    """Report exceptions no task retrieved (aiortc's own tasks, e.g. an ICE start racing a
    close) as one log line, its traceback at DEBUG, instead of asyncio's traceback on stderr.

    For the programs that run the server (`python -m echoproof.sfu`, the capture stage's child)."""

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
        exc = context.get("exception")
        what = f"{type(exc).__name__}: {exc}" if isinstance(exc, BaseException) else ""
        logger.warning("{} {}", context.get("message", "unhandled error"), what)
        if isinstance(exc, BaseException):
            logger.opt(exception=exc).debug("details")

    loop.set_exception_handler(handler)


# ``async with serve(...) as server``: what the callers say to start one.
serve = Server
