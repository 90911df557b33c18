"""The front end: one aiohttp application serving signalling, validation and the RoomService.

``/rtc`` upgrades to the signalling WebSocket; ``/rtc/v1`` and ``/rtc/v1/validate`` answer 404 so
that the SDKs fall back to ``/rtc``; ``/rtc/validate`` says why a token is refused; Twirp calls go
to :mod:`sfu.roomservice`; agent workers connect to ``/agent`` and dispatches are made through
``livekit.AgentDispatchService`` (:mod:`sfu.agentservice`). Every answer carries CORS headers for
browser clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from types import TracebackType

from aiohttp import web
from livekit.protocol import agent_dispatch, models, rtc
from loguru import logger

from echoproof.aiotasks import cancel_and_wait

from . import _signal as sig
from ._connection import Connection
from .agents import Agents
from .agentservice import AgentService
from .auth import TOKEN_LEEWAY_S, Authenticator, JoinGrant, token_from
from .errors import AuthError, HostNetworkError, SfuError
from .impairment import Impairment, ImpairmentPolicy
from .media import check_host_network
from .room import DEPENDENT_KINDS, Participant, Room
from .speakers import UPDATE_INTERVAL_S, Speakers, speakers_changed
from .webhook import (
    PARTICIPANT_CONNECTION_ABORTED,
    PARTICIPANT_LEFT,
    ROOM_FINISHED,
    ROOM_STARTED,
    Webhooks,
)

# How often livekit-server looks at connection quality (connectionquality.UpdateInterval).
QUALITY_INTERVAL_S = 5.0
# livekit-server's tokenRefreshInterval: how often a participant is sent a fresh join token.
TOKEN_REFRESH_INTERVAL_S = 300.0

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


class Server:
    """The embedded LiveKit-compatible server; use as ``async with`` (see :func:`serve`)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 7880,
        api_key: str = "devkey",
        api_secret: str = "secret",
        *,
        ping_interval: int = 5,
        ping_timeout: int = 15,
        impairment: Impairment | ImpairmentPolicy | None = None,
        webhook_urls: Sequence[str] = (),
        token_refresh_interval: float = TOKEN_REFRESH_INTERVAL_S,
        token_leeway_s: float = TOKEN_LEEWAY_S,
    ) -> None:
        self.host = host
        self.port = port
        self.auth = Authenticator(api_key, api_secret, leeway_s=token_leeway_s)
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.token_refresh_interval = token_refresh_interval
        self._impairment = impairment
        self.rooms: dict[str, Room] = {}
        self._connections: dict[tuple[str, str], Connection] = {}
        self._runner: web.AppRunner | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._quality: asyncio.Task[None] | None = None
        self._speakers: asyncio.Task[None] | None = None
        self.webhooks = Webhooks(webhook_urls, api_key, api_secret)
        self._agent_service = AgentService(self)
        self._closed = False  # no new participant is let in once true
        self._closing: asyncio.Future[None] | None = None  # done once the shutdown has ended

    @property
    def agents(self) -> Agents:
        """The registered agent workers and every room's dispatches."""
        return self._agent_service.agents

    @property
    def closing(self) -> bool:
        """Whether the server has begun to shut down (it lets nobody new in)."""
        return self._closed

    @property
    def url(self) -> str:
        """The signalling URL, ``ws://HOST:PORT``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}"

    # -- lifetime ---------------------------------------------------------------------------

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Bind and start accepting connections; ``port`` becomes the real port."""
        try:
            check_host_network()
        except HostNetworkError as exc:
            logger.warning("{}", exc)
        from . import roomservice

        app = web.Application(middlewares=[_cors])
        app.router.add_get("/", self._health)
        app.router.add_get("/rtc", self._rtc)
        app.router.add_get("/rtc/validate", self._validate)
        app.router.add_get("/rtc/v1", self._not_found)
        app.router.add_get("/rtc/v1/validate", self._not_found)
        app.router.add_post("/twirp/livekit.RoomService/{method}", roomservice.handler(self))
        app.router.add_get("/agent", self._agent_service.socket)
        app.router.add_post(
            "/twirp/livekit.AgentDispatchService/{method}", self._agent_service.twirp()
        )
        app.router.add_route("OPTIONS", "/{tail:.*}", self._not_found)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
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

    async def close(self) -> None:
        """Disconnect everyone (leave SERVER_SHUTDOWN) and stop serving.

        Safe to call twice, at once too: a second caller returns when the first caller's
        shutdown has ended (however it ended: the first caller sees how).
        """
        if self._closing is not None:
            await asyncio.shield(self._closing)
            return
        self._closed = True
        self._closing = asyncio.get_running_loop().create_future()
        try:
            await self._shut_down()
        finally:
            self._closing.set_result(None)

    async def _shut_down(self) -> None:
        await cancel_and_wait(self._sweeper, self._quality, self._speakers)
        await self._agent_service.close()
        leaving = [
            c.disconnect(models.DisconnectReason.SERVER_SHUTDOWN)
            for c in list(self._connections.values())
        ]
        try:
            async with asyncio.timeout(10):
                await asyncio.gather(*leaving)
        except TimeoutError:
            logger.warning("some participants did not leave within 10 s; dropping them")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for room in self.rooms.values():
            self.webhooks.notify(ROOM_FINISHED, room)
        self.rooms.clear()
        await self.webhooks.close()
        logger.info("server on {} stopped", self.url)

    async def _sweep(self) -> None:
        """Close empty rooms whose empty timeout has passed."""
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for name, room in list(self.rooms.items()):
                if room.expired(now):
                    logger.info("room {} closed: empty for {} s", name, room.empty_timeout)
                    await self._close_room(room, models.DisconnectReason.ROOM_CLOSED)

    async def _rate_quality(self) -> None:
        """Rate every active participant's connection EXCELLENT, to each active participant,
        once (a constant quality changes no more): at livekit-server's quality interval."""
        rated: dict[Connection, set[str]] = {}  # whose quality each connection has been told
        while True:
            await asyncio.sleep(QUALITY_INTERVAL_S)
            live = set(self._connections.values())
            rated = {c: sids for c, sids in rated.items() if c in live}
            for room in list(self.rooms.values()):
                active = sig.active(room.participants.values())
                for conn in self.connections_in(room):
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
                for conn in self.connections_in(room):
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
                    await self.broadcast(room, speakers_changed(changed))

    # -- registry ---------------------------------------------------------------------------

    def impairment_for(self, publisher: str, subscriber: str) -> Impairment | None:
        """The impairment of the stream from ``publisher`` to ``subscriber`` (identities)."""
        if self._impairment is None or isinstance(self._impairment, Impairment):
            return self._impairment
        return self._impairment(publisher, subscriber)

    def connections_in(self, room: Room, exclude: Connection | None = None) -> list[Connection]:
        """The live connections of ``room``, except ``exclude``."""
        return [
            c
            for (name, _), c in self._connections.items()
            if name == room.name and c is not exclude
        ]

    def connection(self, room_name: str, identity: str) -> Connection | None:
        """The live connection of ``identity`` in ``room_name``, if any."""
        return self._connections.get((room_name, identity))

    def publisher_of(self, room: Room, track_sid: str) -> Connection | None:
        """The connection publishing ``track_sid`` in ``room``."""
        for c in self.connections_in(room):
            if track_sid in c.fanouts:
                return c
        return None

    async def broadcast(
        self, room: Room, response: rtc.SignalResponse, exclude: Connection | None = None
    ) -> None:
        """Send ``response`` to everyone in ``room`` but ``exclude``."""
        for c in self.connections_in(room, exclude):
            with contextlib.suppress(ConnectionError, RuntimeError):
                await c.send(response)

    async def leave(self, conn: Connection, reason: int) -> None:
        """Forget ``conn`` (its teardown calls this): unpublish, tell the rest, close rooms."""
        key = (conn.room.name, conn.participant.identity)
        if self._connections.get(key) is conn:
            del self._connections[key]
        for track in list(conn.participant.tracks.values()):
            await conn.unpublish(track)
        seated = conn.room.remove(conn.participant)
        conn.participant.state = models.ParticipantInfo.State.DISCONNECTED
        info = conn.participant.info()
        info.disconnect_reason = reason  # type: ignore[assignment]
        # As livekit-server: "aborted" when the participant never became active.
        left = PARTICIPANT_LEFT if conn.media_connected else PARTICIPANT_CONNECTION_ABORTED
        self.webhooks.notify(left, conn.room, info)
        if not seated:
            return  # replaced by a newer participant with the same identity
        self.agents.participant_left(conn.room.name, conn.participant.identity)
        await self.broadcast(conn.room, sig.participant_update([info]))
        if conn.room.expired(time.monotonic()) and self.rooms.get(conn.room.name) is conn.room:
            # Agents do not keep a room open (livekit-server's "dependent" participants).
            logger.info("room {} closed: the last participant left", conn.room.name)
            await self._close_room(conn.room, models.DisconnectReason.ROOM_CLOSED)

    async def _close_room(self, room: Room, reason: int) -> None:
        """Close ``room``: whoever is still in it (agents) is disconnected with ``reason``."""
        if self.rooms.get(room.name) is room:
            del self.rooms[room.name]
        await asyncio.gather(*(c.disconnect(reason) for c in self.connections_in(room)))
        self.agents.room_finished(room.name, room.sid)  # after its agents left: jobs ended
        self.webhooks.notify(ROOM_FINISHED, room)

    def _open_room(
        self,
        name: str,
        agents: Iterable[agent_dispatch.RoomAgentDispatch] = (),
        **options: int | str | bool,
    ) -> Room:
        """Create the room ``name``; the agents of its creator's configuration are dispatched
        (none named: the default dispatch)."""
        room = self.rooms[name] = Room(name=name, **options)  # type: ignore[arg-type]
        self.webhooks.notify(ROOM_STARTED, room)
        logger.info("room {} created", name)
        self.agents.room_started(room.info(), agents)
        return room

    def create_room(
        self,
        name: str,
        agents: Iterable[agent_dispatch.RoomAgentDispatch] = (),
        **options: int | str,
    ) -> Room:
        """The room called ``name``, created (through the API) if it does not exist."""
        return self.rooms.get(name) or self._open_room(name, agents, created_by_api=True, **options)

    async def delete_room(self, name: str) -> bool:
        """Disconnect everyone in ``name`` (ROOM_DELETED) and close it."""
        room = self.rooms.get(name)
        if room is None:
            return False
        await self._close_room(room, models.DisconnectReason.ROOM_DELETED)
        logger.info("room {} deleted", name)
        return True

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
        if self._closed:
            return web.Response(status=503, text="the server is shutting down")
        if request.query.get("reconnect") == "1":
            ws = web.WebSocketResponse(timeout=2.0, max_msg_size=1 << 20)
            await ws.prepare(request)
            conn = self.connection(grant.room, grant.identity)
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
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return web.Response(status=400, text="expected a WebSocket upgrade on /rtc")

        previous = self.connection(grant.room, grant.identity)
        if previous is not None:
            logger.info("{}@{} joined again: replacing the first", grant.identity, grant.room)
            await previous.disconnect(models.DisconnectReason.DUPLICATE_IDENTITY)
        ws = web.WebSocketResponse(timeout=2.0, max_msg_size=1 << 20)
        await ws.prepare(request)
        # Looked up again after the await: the sweeper may have closed an empty room meanwhile.
        room = self.rooms.get(grant.room) or self._open_room(grant.room, grant.agents)
        participant = Participant(
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
        room.add(participant)
        # "auto_subscribe=0" (the SDK's RoomOptions): nothing is sent until the client asks.
        auto_subscribe = request.query.get("auto_subscribe", "1") not in ("0", "false")
        conn = Connection(self, ws, room, participant, auto_subscribe=auto_subscribe)
        self._connections[(room.name, participant.identity)] = conn
        logger.info("{} joined room {} as {}", grant.identity, room.name, participant.sid)
        await conn.run()
        return ws


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


def serve(
    host: str = "127.0.0.1",
    port: int = 7880,
    api_key: str = "devkey",
    api_secret: str = "secret",
    *,
    ping_interval: int = 5,
    ping_timeout: int = 15,
    impairment: Impairment | ImpairmentPolicy | None = None,
    webhook_urls: Sequence[str] = (),
    token_refresh_interval: float = TOKEN_REFRESH_INTERVAL_S,
    token_leeway_s: float = TOKEN_LEEWAY_S,
) -> Server:
    """The embedded server, to be used as ``async with serve(...) as server``.

    ``impairment`` applies to every forwarded stream, or, as a function of (publisher identity,
    subscriber identity), to each stream it returns one for. livekit-server's webhook events
    (room, participant and track) are POSTed to each of ``webhook_urls``, signed with the API
    key and secret (see :mod:`sfu.webhook`). Each participant gets a fresh join token every
    ``token_refresh_interval`` seconds and whenever its claims change; a token is accepted
    up to ``token_leeway_s`` past its expiry.
    """
    return Server(
        host,
        port,
        api_key,
        api_secret,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        impairment=impairment,
        webhook_urls=webhook_urls,
        token_refresh_interval=token_refresh_interval,
        token_leeway_s=token_leeway_s,
    )
