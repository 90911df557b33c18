"""The sockets of agent dispatch: the worker WebSocket ``/agent`` and the Twirp
``livekit.AgentDispatchService``; the rules live in :mod:`sfu.agents`.

``/agent`` takes a token with the ``agent`` grant (``Authorization: Bearer``, as livekit-agents
sends it, or ``access_token``); a refused token is answered 401 with the reason before any
upgrade, a request that is not a WebSocket upgrade 404, as livekit-server does. Frames are
binary protobuf: ``WorkerMessage`` in, ``ServerMessage`` out. The worker must register within
:data:`sfu.agents.REGISTER_TIMEOUT_S`.

``AgentDispatchService`` (CreateDispatch, ListDispatch, DeleteDispatch) needs ``roomAdmin`` for
the named room, as in livekit-server; CreateDispatch creates a missing room (as
``CreateRoom`` would, so it gets the default dispatch too).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web
from google.protobuf.message import DecodeError, Message
from livekit.protocol import agent
from livekit.protocol import agent_dispatch as dispatch_pb
from loguru import logger

from . import _twirp
from .agents import (
    REGISTER_TIMEOUT_S,
    Agents,
    Send,
    Worker,
    deployment_problem,
    pong,
    registration,
)
from .auth import Authenticator, token_from
from .errors import AuthError, ProtocolError, TwirpError
from .hub import Hub
from .room import check_limits

# The largest WebSocket frame the server reads, signalling or worker (both are small protobufs).
MAX_FRAME_BYTES = 1 << 20


def _parse(frame: WSMsgType, data: object) -> agent.WorkerMessage:
    """One worker frame as a ``WorkerMessage``; :class:`ProtocolError` otherwise."""
    if frame != WSMsgType.BINARY or not isinstance(data, bytes):
        raise ProtocolError(f"expected a binary WorkerMessage frame, got {frame.name}")
    message = agent.WorkerMessage()
    try:
        message.ParseFromString(data)
    except DecodeError:
        raise ProtocolError(
            f"malformed frame: {len(data)} bytes that do not decode as a WorkerMessage"
        ) from None
    return message


class AgentService:
    """The worker sockets and the dispatch API of one server's :class:`Agents`; no worker is
    let in once ``closing()``."""

    def __init__(
        self, agents: Agents, auth: Authenticator, hub: Hub[Any], closing: Callable[[], bool]
    ) -> None:
        self.agents = agents
        self._auth = auth
        self._hub = hub
        self._closing = closing
        self._sockets: set[web.WebSocketResponse] = set()

    async def close(self) -> None:
        """Close every worker's socket and stop dispatching."""
        await self.agents.close()
        for ws in list(self._sockets):
            await ws.close(message=b"the server is shutting down")

    # -- the worker socket -----------------------------------------------------------------

    async def socket(self, request: web.Request) -> web.StreamResponse:
        """``GET /agent``: one worker's connection, from registration to its end."""
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return web.Response(status=404, text="expected a WebSocket upgrade on /agent")
        try:
            self._auth.worker(token_from(request.headers, request.query))
        except AuthError as exc:
            logger.info("refused an agent worker from {}: {}", request.remote, exc)
            return web.Response(status=401, text=str(exc))
        if self._closing():
            return web.Response(status=503, text="the server is shutting down")
        ws = web.WebSocketResponse(max_msg_size=MAX_FRAME_BYTES)
        await ws.prepare(request)
        self._sockets.add(ws)
        lock = asyncio.Lock()

        async def send(message: agent.ServerMessage) -> None:
            if ws.closed:
                raise ConnectionError("the worker's socket is closed")
            async with lock:  # launches and answers write from different tasks
                await ws.send_bytes(message.SerializeToString())

        worker: Worker | None = None
        try:
            worker = await self._register(ws, send)
            async for frame in ws:
                if frame.type == WSMsgType.ERROR:
                    break
                answer = worker.handle(_parse(frame.type, frame.data))
                if answer is not None:
                    await send(answer)
        except TimeoutError:
            logger.info("agent worker from {} did not register in time", request.remote)
            await ws.close(message=b"no registration within the register timeout")
        except ProtocolError as exc:
            logger.info("agent worker from {}: {}", request.remote, exc)
            await ws.close(message=str(exc).encode()[:120])
        except (ConnectionError, RuntimeError) as exc:
            logger.info("agent worker from {} went away: {}", request.remote, exc)
        finally:
            self._sockets.discard(ws)
            if worker is not None:
                self.agents.deregister(worker)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.close()
        return ws

    async def _register(self, ws: web.WebSocketResponse, send: Send) -> Worker:
        """Read until the worker registers (pings answered meanwhile); it is then known."""
        async with asyncio.timeout(REGISTER_TIMEOUT_S):
            while True:
                frame = await ws.receive()
                if frame.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                    raise ConnectionError("closed before registering")
                message = _parse(frame.type, frame.data)
                request = registration(message)
                if request is not None:
                    break
                if message.WhichOneof("message") == "ping":
                    await send(pong(message.ping))
        worker = Worker(request, send)
        # Answered before it is known: no job offer may overtake the registration answer.
        await send(worker.registered())
        self.agents.register(worker)
        return worker

    # -- AgentDispatchService --------------------------------------------------------------

    def twirp(self) -> _twirp.Handler:
        """The aiohttp handler for ``POST /twirp/livekit.AgentDispatchService/{method}``."""
        methods: _twirp.Methods = {
            "CreateDispatch": (dispatch_pb.CreateAgentDispatchRequest, self._create),
            "ListDispatch": (dispatch_pb.ListAgentDispatchRequest, self._list),
            "DeleteDispatch": (dispatch_pb.DeleteAgentDispatchRequest, self._delete),
        }
        return _twirp.handler("AgentDispatchService", methods)

    async def _create(self, req: dispatch_pb.CreateAgentDispatchRequest, token: str) -> Message:
        self._auth.api_grant(token, admin_room=req.room)
        problem = deployment_problem(req.deployment) or check_limits(
            metadata=req.metadata, attributes=dict(req.attributes)
        )
        if problem is not None:
            raise TwirpError("invalid_argument", problem, 400)
        if not req.room:
            raise TwirpError("invalid_argument", "CreateDispatch needs a room name", 400)
        room = self._hub.create_room(req.room)
        return self.agents.create_dispatch(room.info(), req)

    async def _list(self, req: dispatch_pb.ListAgentDispatchRequest, token: str) -> Message:
        self._auth.api_grant(token, admin_room=req.room)
        if req.room not in self._hub.rooms:
            raise _twirp.not_found(f"room {req.room!r}")
        found = self.agents.list_dispatch(req.room, req.dispatch_id)
        return dispatch_pb.ListAgentDispatchResponse(agent_dispatches=found)

    async def _delete(self, req: dispatch_pb.DeleteAgentDispatchRequest, token: str) -> Message:
        self._auth.api_grant(token, admin_room=req.room)
        if req.room not in self._hub.rooms:
            raise _twirp.not_found(f"room {req.room!r}")
        deleted = self.agents.delete_dispatch(req.room, req.dispatch_id)
        if deleted is None:
            raise _twirp.not_found(f"dispatch {req.dispatch_id!r}")
        return deleted
