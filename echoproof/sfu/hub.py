"""Who is where: the open rooms and the live connection of each participant in them.

The hub is the one owner of room membership. A participant is seated in its room
(``Room.participants``, what the protocol messages list) and its connection registered here in
one step, and both are undone in one step when it leaves, before anything is awaited: the two
views never disagree. Rooms open and close here too, with their webhook events and agent
dispatches: a room closes once only agents are left in it, or, made through the API, once it has
been empty for its ``empty_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from typing import Generic, Protocol, TypeVar

from livekit.protocol import agent_dispatch, models, rtc
from loguru import logger

from . import _signal as sig
from .agents import Agents
from .room import Participant, Room
from .webhook import (
    PARTICIPANT_CONNECTION_ABORTED,
    PARTICIPANT_LEFT,
    ROOM_FINISHED,
    ROOM_STARTED,
    Webhooks,
)

# livekit-server's default for rooms created through the API without an empty_timeout.
DEFAULT_EMPTY_TIMEOUT = 300


class Member(Protocol):
    """What the hub needs of a participant's connection."""

    @property
    def room(self) -> Room: ...

    @property
    def participant(self) -> Participant: ...

    @property
    def media_connected(self) -> bool: ...

    def publishes(self, track_sid: str) -> bool: ...

    async def send(self, response: rtc.SignalResponse) -> bool: ...

    async def disconnect(self, reason: int) -> None: ...


M = TypeVar("M", bound=Member)


class Hub(Generic[M]):
    """The rooms and their members' connections; ``M`` is the connection type."""

    def __init__(self, webhooks: Webhooks, agents: Agents) -> None:
        self.rooms: dict[str, Room] = {}
        self._members: dict[tuple[str, str], M] = {}  # by (room name, identity)
        self._webhooks = webhooks
        self._agents = agents

    # -- membership -------------------------------------------------------------------------

    def join(self, member: M) -> None:
        """Seat ``member``'s participant in its room and register the connection."""
        member.room.add(member.participant)
        self._members[(member.room.name, member.participant.identity)] = member

    def connections(self) -> list[M]:
        """Every live connection."""
        return list(self._members.values())

    def connection(self, room_name: str, identity: str) -> M | None:
        """The live connection of ``identity`` in ``room_name``, if any."""
        return self._members.get((room_name, identity))

    def connections_in(self, room: Room, exclude: M | None = None) -> list[M]:
        """The live connections of ``room``, except ``exclude``."""
        return [
            m for (name, _), m in self._members.items() if name == room.name and m is not exclude
        ]

    def publisher_of(self, room: Room, track_sid: str) -> M | None:
        """The connection publishing ``track_sid`` in ``room``."""
        return next((m for m in self.connections_in(room) if m.publishes(track_sid)), None)

    async def broadcast(
        self, room: Room, response: rtc.SignalResponse, exclude: M | None = None
    ) -> None:
        """Send ``response`` to everyone in ``room`` but ``exclude``."""
        for m in self.connections_in(room, exclude):
            with contextlib.suppress(ConnectionError, RuntimeError):  # it may be leaving too
                await m.send(response)

    async def leave(self, member: M, reason: int) -> None:
        """Unseat and forget ``member`` at once, then tell the room it left with ``reason``
        (a ``DisconnectReason``) and close the room if only agents are left."""
        room, participant = member.room, member.participant
        key = (room.name, participant.identity)
        if self._members.get(key) is member:
            del self._members[key]
        seated = room.remove(participant)
        participant.state = models.ParticipantInfo.State.DISCONNECTED
        info = participant.info()
        info.disconnect_reason = reason  # type: ignore[assignment]
        # As livekit-server: "aborted" when the participant never became active.
        left = PARTICIPANT_LEFT if member.media_connected else PARTICIPANT_CONNECTION_ABORTED
        self._webhooks.notify(left, room, info)
        if not seated:
            return  # replaced by a newer participant with the same identity
        self._agents.participant_left(room.name, participant.identity)
        await self.broadcast(room, sig.participant_update([info]))
        if room.expired(time.monotonic()) and self.rooms.get(room.name) is room:
            # Agents do not keep a room open (livekit-server's "dependent" participants).
            logger.info("room {} closed: the last participant left", room.name)
            await self.close_room(room, models.DisconnectReason.ROOM_CLOSED)

    async def disconnect_everyone(self, reason: int, within_s: float) -> None:
        """Disconnect every participant with ``reason``; those not gone within ``within_s``
        are left to the web server's shutdown."""
        leaving = [m.disconnect(reason) for m in self.connections()]
        try:
            async with asyncio.timeout(within_s):
                await asyncio.gather(*leaving)
        except TimeoutError:
            logger.warning("some participants did not leave within {} s; dropping them", within_s)

    # -- rooms ------------------------------------------------------------------------------

    def room(
        self,
        name: str,
        agents: Iterable[agent_dispatch.RoomAgentDispatch] = (),
        **options: int | str | bool,
    ) -> Room:
        """The room called ``name``, opened with ``options`` if it is not open; the agents of
        its creator's configuration are then dispatched (none named: the default dispatch)."""
        room = self.rooms.get(name)
        if room is not None:
            return room
        room = self.rooms[name] = Room(name=name, **options)  # type: ignore[arg-type]
        self._webhooks.notify(ROOM_STARTED, room)
        logger.info("room {} created", name)
        self._agents.room_started(room.info(), agents)
        return room

    def create_room(
        self,
        name: str,
        agents: Iterable[agent_dispatch.RoomAgentDispatch] = (),
        *,
        empty_timeout: int = 0,
        **options: int | str,
    ) -> Room:
        """The room called ``name``, created through the API if it is not open (with
        livekit-server's default ``empty_timeout`` when it names none)."""
        return self.room(
            name,
            agents,
            created_by_api=True,
            empty_timeout=empty_timeout or DEFAULT_EMPTY_TIMEOUT,
            **options,
        )

    async def delete_room(self, name: str) -> bool:
        """Disconnect everyone in ``name`` (ROOM_DELETED) and close it; False if not open."""
        room = self.rooms.get(name)
        if room is None:
            return False
        await self.close_room(room, models.DisconnectReason.ROOM_DELETED)
        logger.info("room {} deleted", name)
        return True

    async def close_room(self, room: Room, reason: int) -> None:
        """Close ``room``: whoever is still in it (agents) is disconnected with ``reason``."""
        if self.rooms.get(room.name) is room:
            del self.rooms[room.name]
        await asyncio.gather(*(m.disconnect(reason) for m in self.connections_in(room)))
        self._agents.room_finished(room.name, room.sid)  # after its agents left: jobs ended
        self._webhooks.notify(ROOM_FINISHED, room)

    async def close_expired(self) -> None:
        """Close the empty rooms whose empty timeout has passed."""
        now = time.monotonic()
        for name, room in list(self.rooms.items()):
            if room.expired(now):
                logger.info("room {} closed: empty for {} s", name, room.empty_timeout)
                await self.close_room(room, models.DisconnectReason.ROOM_CLOSED)

    def finish_rooms(self) -> None:
        """Forget every room still open (the server stops), each with its room_finished."""
        for room in self.rooms.values():
            self._webhooks.notify(ROOM_FINISHED, room)
        self.rooms.clear()
