"""The dispatch rules of sfu.agents without sockets: workers are fed WorkerMessages and their
ServerMessages are read back, as livekit-agents would send and read them."""

from __future__ import annotations

import asyncio

import pytest
from livekit.protocol import agent, agent_dispatch, models

from echoproof.sfu import agents as agents_mod
from echoproof.sfu.agents import Agents, Worker, registration
from echoproof.sfu.auth import Authenticator
from echoproof.sfu.errors import ProtocolError
from tests.echoproof.sfu._clients import API_KEY, API_SECRET, until

ROOM = models.Room(sid="RM_test", name="support")


class FakeSocket:
    """What the server sends one worker, which answers availability requests as told."""

    def __init__(self, accept: bool = True, identity: str = "") -> None:
        self.accept = accept
        self.identity = identity
        self.sent: list[agent.ServerMessage] = []
        self.worker: Worker | None = None

    async def send(self, message: agent.ServerMessage) -> None:
        self.sent.append(message)
        if message.WhichOneof("message") == "availability" and self.worker is not None:
            answer = agent.AvailabilityResponse(
                job_id=message.availability.job.id,
                available=self.accept,
                participant_identity=self.identity,
                participant_name="Reply",
            )
            self.worker.handle(agent.WorkerMessage(availability=answer))

    def of(self, kind: str) -> list[agent.ServerMessage]:
        return [m for m in self.sent if m.WhichOneof("message") == kind]


def register(agents: Agents, socket: FakeSocket, name: str = "echoproof-reply") -> Worker:
    request = registration(
        agent.WorkerMessage(
            register=agent.RegisterWorkerRequest(type=agent.JobType.JT_ROOM, agent_name=name)
        )
    )
    assert request is not None
    worker = Worker(request, socket.send)
    socket.worker = worker
    agents.register(worker)
    return worker


async def launched(agents: Agents, room: str) -> list[agent_dispatch.AgentDispatch]:
    """The room's dispatches once every launch has ended."""
    for dispatch in agents.dispatches.get(room, {}).values():
        await dispatch.launched.wait()
    return agents.list_dispatch(room)


def test_registration_rules() -> None:
    """Pings may precede the registration; a missing permission set gets livekit-server's
    default; an unknown job type or a deployment with '_' is refused."""
    ping = agent.WorkerMessage(ping=agent.WorkerPing(timestamp=5))
    assert registration(ping) is None
    plain = registration(agent.WorkerMessage(register=agent.RegisterWorkerRequest()))
    assert plain is not None
    assert plain.allowed_permissions.can_publish and plain.allowed_permissions.can_subscribe
    with pytest.raises(ProtocolError, match="unknown job type"):
        registration(agent.WorkerMessage(register=agent.RegisterWorkerRequest(type=9)))  # type: ignore[arg-type]
    with pytest.raises(ProtocolError, match="reserved character"):
        registration(agent.WorkerMessage(register=agent.RegisterWorkerRequest(deployment="a_b")))


async def test_accepted_job_gets_an_agent_token() -> None:
    """The assignment's token joins the room as kind AGENT, with the identity the worker asked
    for (agent-<job id> when none), its registered grants and the lk.agent_name attribute."""
    agents = Agents(Authenticator(API_KEY, API_SECRET))
    socket = FakeSocket()
    worker = register(agents, socket)
    assert (
        worker.handle(agent.WorkerMessage(ping=agent.WorkerPing(timestamp=7))).pong.last_timestamp
        == 7
    )  # type: ignore[union-attr]
    agents.create_dispatch(
        ROOM,
        agent_dispatch.CreateAgentDispatchRequest(agent_name="echoproof-reply", room="support"),
    )
    (dispatch,) = await launched(agents, "support")
    (job,) = dispatch.state.jobs
    assert job.state.status == agent.JobStatus.JS_RUNNING
    assert job.state.participant_identity == f"agent-{job.id}"
    (assignment,) = socket.of("assignment")
    grant = Authenticator(API_KEY, API_SECRET).join(assignment.assignment.token)
    assert grant.kind == models.ParticipantInfo.Kind.AGENT
    assert grant.identity == f"agent-{job.id}" and grant.name == "Reply"
    assert grant.room == "support" and grant.can_publish and grant.can_subscribe
    assert grant.attributes == {"lk.agent_name": "echoproof-reply"}
    await agents.close()


async def test_declined_job_goes_to_the_next_worker() -> None:
    """A worker that declines (or is FULL) is passed over for another worker of that name."""
    agents = Agents(Authenticator(API_KEY, API_SECRET))
    busy, full, free = FakeSocket(accept=False), FakeSocket(), FakeSocket(identity="helper")
    register(agents, busy)
    register(agents, full).handle(
        agent.WorkerMessage(
            update_worker=agent.UpdateWorkerStatus(status=agent.WorkerStatus.WS_FULL, load=1)
        )
    )
    chosen = register(agents, free)
    # The first worker asked is chosen at random: over 20 rooms, the one that declines is
    # asked first at least once (all but certainly: 1 - 2**-20).
    for n in range(20):
        room = models.Room(sid=f"RM_{n}", name=f"room-{n}")
        agents.create_dispatch(
            room, agent_dispatch.CreateAgentDispatchRequest(agent_name="echoproof-reply")
        )
        (dispatch,) = await launched(agents, room.name)
        (job,) = dispatch.state.jobs
        assert job.state.worker_id == chosen.id and job.state.participant_identity == "helper"
    assert busy.of("availability") and not busy.of("assignment")
    assert not full.sent
    await agents.close()


async def test_default_dispatch_only_reaches_nameless_workers() -> None:
    """A room that names no agent gets the default dispatch: the nameless worker takes it, the
    named one is never asked; a room that names an agent gets no default dispatch."""
    agents = Agents(Authenticator(API_KEY, API_SECRET))
    named, nameless = FakeSocket(), FakeSocket()
    register(agents, named)
    register(agents, nameless, name="")
    agents.room_started(ROOM)
    (default,) = await launched(agents, "support")
    assert default.agent_name == "" and len(default.state.jobs) == 1
    assert not named.sent and len(nameless.of("assignment")) == 1
    other = models.Room(sid="RM_other", name="booked")
    agents.room_started(other, [agent_dispatch.RoomAgentDispatch(agent_name="echoproof-reply")])
    (booked,) = await launched(agents, "booked")
    assert booked.agent_name == "echoproof-reply" and len(booked.state.jobs) == 1
    await agents.close()


async def test_unanswered_offer_times_out() -> None:
    """A worker silent on an availability request for the assign timeout gets no job."""
    agents = Agents(Authenticator(API_KEY, API_SECRET), assign_timeout=0.2)
    silent = FakeSocket()
    register(agents, silent)
    silent.worker = None  # it never answers
    agents.room_started(ROOM, [agent_dispatch.RoomAgentDispatch(agent_name="echoproof-reply")])
    (dispatch,) = await launched(agents, "support")
    assert not dispatch.state.jobs and len(silent.of("availability")) == 1
    await agents.close()


async def test_leaving_and_deleting_end_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    """An agent that leaves its room ends its job FAILED; deleting a dispatch terminates its
    job and removes an agent that stays."""
    monkeypatch.setattr(agents_mod, "LEAVE_GRACE_S", 0.0)
    evicted: list[tuple[str, str]] = []

    async def evict(room: str, identity: str) -> None:
        evicted.append((room, identity))

    agents = Agents(Authenticator(API_KEY, API_SECRET), evict=evict)
    socket = FakeSocket()
    register(agents, socket)
    request = agent_dispatch.CreateAgentDispatchRequest(agent_name="echoproof-reply")
    first = agents.create_dispatch(ROOM, request)
    second = agents.create_dispatch(ROOM, request)
    await launched(agents, "support")
    left, stays = (agents.list_dispatch("support", d.id)[0].state.jobs[0] for d in (first, second))
    agents.participant_left("support", left.state.participant_identity)
    await until(lambda: len(socket.of("termination")) == 1, 5)
    (ended,) = agents.list_dispatch("support", first.id)[0].state.jobs
    assert ended.state.status == agent.JobStatus.JS_FAILED
    assert ended.state.error == "agent worker left the room"
    deleted = agents.delete_dispatch("support", second.id)
    assert deleted is not None and deleted.id == second.id
    await until(lambda: bool(evicted), 5)
    assert evicted == [("support", stays.state.participant_identity)]
    assert socket.of("termination")[1].termination.job_id == stays.id
    assert agents.delete_dispatch("support", second.id) is None
    await agents.close()


async def test_wait_for_worker() -> None:
    """wait_for_worker returns once a worker of that name registers, and times out otherwise."""
    agents = Agents(Authenticator(API_KEY, API_SECRET))
    waiting = asyncio.create_task(agents.wait_for_worker("echoproof-reply", within_s=5))
    await asyncio.sleep(0)  # one turn of the loop: the task looks, finds none, and waits
    assert not waiting.done()
    worker = register(agents, FakeSocket())
    assert await waiting is worker
    with pytest.raises(TimeoutError):
        await agents.wait_for_worker("someone-else", within_s=0.1)


async def test_closing_an_old_room_keeps_the_new_rooms_dispatches() -> None:
    """A room closed after a new room of its name opened takes only its own dispatches along."""
    agents = Agents(Authenticator(API_KEY, API_SECRET))
    agents.room_started(ROOM)
    newer = models.Room(sid="RM_newer", name=ROOM.name)
    (kept,) = agents.room_started(newer)
    agents.room_finished(ROOM.name, ROOM.sid)
    assert [d.id for d in agents.list_dispatch(ROOM.name)] == [kept.id]
    agents.room_finished(newer.name, newer.sid)
    assert agents.list_dispatch(ROOM.name) == []
    await agents.close()
