"""Agent dispatch as livekit-server does it, with no sockets.

Agent workers (livekit-agents) register over ``/agent`` (see :mod:`sfu.agentservice`); a room gets
*dispatches* (which agent, by name, should be in it) and each dispatch becomes a *job* on one
registered worker. The rules are livekit-server's:

- A room, when it is created, gets the dispatches of its creator's room configuration (the join
  token's ``roomConfig.agents``, or ``CreateRoomRequest.agents``); when there are none, it gets the
  default dispatch, whose agent name is empty. So a worker registered without an agent name is
  sent every new room that names no agent, and a named worker only rooms that name it.
- ``AgentDispatchService.CreateDispatch`` adds a dispatch to a room (creating the room if needed).
- A dispatch is launched once, when it is made: one worker among those registered with its agent
  name (and deployment) for room jobs, chosen at random weighted by spare capacity (``1 - load``),
  is asked whether it is available; if it accepts, it is assigned the job with a participant
  token minted here (kind AGENT, the grants the worker registered with, the identity it asked
  for, ``agent-<job id>`` when it asked for none); if it declines, the next worker is asked.
  No registered worker: the dispatch stays without a job (a worker that registers later is not
  sent rooms that already exist, as in livekit-server).
- Deleting a dispatch terminates its jobs and removes their agents from the room; an agent that
  leaves the room ends its job (FAILED, "agent worker left the room"); a worker's own
  ``UpdateJobStatus`` ends it too.

Only room jobs (``JT_ROOM``) are launched; workers of the publisher and participant job types
register but are never sent a job. Namespaces (deprecated in the protocol) are ignored.

The front end gives each worker a ``send`` coroutine for its socket; everything else here is
plain data and asyncio futures, so tests drive it with no server.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

from livekit import api
from livekit.protocol import agent, agent_dispatch, models
from loguru import logger

from echoproof.aiotasks import cancel_and_wait

from . import _signal as sig
from .auth import Authenticator
from .errors import ProtocolError
from .room import new_sid

# livekit-server's bounds (pkg/agent/worker.go): a worker must register within RegisterTimeout
# of connecting, and answer an availability request within AssignJobTimeout.
REGISTER_TIMEOUT_S = 10.0
ASSIGN_TIMEOUT_S = 10.0
# how long a job's participant token is valid (its agent joins at once; the server refreshes it)
JOB_TOKEN_TTL_S = 3600.0
# How long a deleted dispatch's agent may take to leave by itself before it is removed.
LEAVE_GRACE_S = 3.0
# The agent protocol version livekit-server speaks (agent.CurrentProtocol).
AGENT_PROTOCOL = 1
# The attribute naming the agent of a job's participant (agent.AgentNameAttributeKey).
AGENT_NAME_ATTRIBUTE = "lk.agent_name"
# livekit-agents rejects deployments with '_' (it separates topic parts) and longer than this.
MAX_DEPLOYMENT_LENGTH = 64

Send = Callable[[agent.ServerMessage], Awaitable[None]]
Evict = Callable[[str, str], Awaitable[None]]


def server_info() -> models.ServerInfo:
    """What a worker is told about this server when it registers."""
    return models.ServerInfo(
        edition=models.ServerInfo.Edition.Standard,
        version=sig.SERVER_VERSION,
        protocol=sig.PROTOCOL_VERSION,
        agent_protocol=AGENT_PROTOCOL,
        node_id="echoproof-sfu",
    )


def deployment_problem(deployment: str) -> str | None:
    """Why livekit-server refuses ``deployment``, or None when it is acceptable."""
    if len(deployment.encode()) > MAX_DEPLOYMENT_LENGTH:
        return f"deployment exceeds {MAX_DEPLOYMENT_LENGTH} bytes"
    if "_" in deployment:
        return "deployment contains reserved character '_'"
    if any(c <= " " or c == "\x7f" for c in deployment):
        return "deployment contains whitespace or a control character"
    return None


def registration(message: agent.WorkerMessage) -> agent.RegisterWorkerRequest | None:
    """The registration a worker's message carries; None for pings and other messages, which
    may precede it; :class:`ProtocolError` for a registration livekit-server refuses."""
    which = message.WhichOneof("message")
    if which != "register":
        return None
    request = message.register
    if request.type not in agent.JobType.values():
        raise ProtocolError(f"unknown job type {request.type} in the worker's registration")
    problem = deployment_problem(request.deployment)
    if problem is not None:
        raise ProtocolError(f"refused the worker's registration: {problem}")
    if not request.HasField("allowed_permissions"):
        # livekit-server's default for a worker that names no permissions.
        request.allowed_permissions.CopyFrom(
            models.ParticipantPermission(
                can_subscribe=True,
                can_publish=True,
                can_publish_data=True,
                can_update_metadata=True,
            )
        )
    return request


def pong(ping: agent.WorkerPing) -> agent.ServerMessage:
    """The answer to a worker's ping."""
    return agent.ServerMessage(
        pong=agent.WorkerPong(last_timestamp=ping.timestamp, timestamp=sig.now_ms())
    )


class WorkerUnavailable(Exception):
    """A worker declined a job, did not answer in time, or went away meanwhile."""


@dataclass
class Job:
    """A job assigned to a worker: the protocol's Job (its state kept current) and its place."""

    proto: agent.Job
    worker: Worker

    @property
    def identity(self) -> str:
        """The identity of the job's agent participant."""
        return self.proto.state.participant_identity


class Worker:
    """One registered worker: what it registered as, its load, its jobs and pending offers."""

    def __init__(self, request: agent.RegisterWorkerRequest, send: Send) -> None:
        self.id = new_sid("AW_")
        self.agent_name = request.agent_name
        self.job_type = request.type
        self.deployment = request.deployment
        self.version = request.version
        self.permissions = models.ParticipantPermission()
        self.permissions.CopyFrom(request.allowed_permissions)
        self.status: int = agent.WorkerStatus.WS_AVAILABLE
        self.load = 0.0
        self.jobs: dict[str, Job] = {}
        self._send = send
        self._offers: dict[str, asyncio.Future[agent.AvailabilityResponse]] = {}
        self.closed = False

    def __repr__(self) -> str:
        return f"worker {self.id} (agent name {self.agent_name!r})"

    def registered(self) -> agent.ServerMessage:
        """The answer to its registration."""
        return agent.ServerMessage(
            register=agent.RegisterWorkerResponse(worker_id=self.id, server_info=server_info())
        )

    @property
    def available(self) -> bool:
        """Whether it may be offered a job."""
        return not self.closed and self.status == agent.WorkerStatus.WS_AVAILABLE

    def handle(self, message: agent.WorkerMessage) -> agent.ServerMessage | None:
        """Take one message from the worker; returns the answer to send, if any."""
        which = message.WhichOneof("message")
        if which == "ping":
            return pong(message.ping)
        if which == "availability":
            offer = self._offers.pop(message.availability.job_id, None)
            if offer is None:
                logger.info("{} answered for an unknown job {}", self, message.availability.job_id)
            elif not offer.done():
                offer.set_result(message.availability)
        elif which == "update_worker":
            update = message.update_worker
            if update.HasField("status"):
                self.status = update.status
            self.load = update.load
        elif which == "update_job":
            self.update_job(message.update_job)
        elif which == "register":
            raise ProtocolError(f"{self} registered a second time on the same connection")
        elif which in ("migrate_job", "simulate_job"):
            pass  # livekit-server (open source) ignores migration; simulation is a Cloud feature
        else:
            raise ProtocolError(f"unexpected worker message {which!r}")
        return None

    def update_job(self, update: agent.UpdateJobStatus) -> Job | None:
        """Apply a job status update; returns the job when it has ended (and is forgotten)."""
        job = self.jobs.get(update.job_id)
        if job is None:
            return None  # e.g. the room closed first and ended it
        state = job.proto.state
        state.updated_at = time.time_ns()
        state.status = update.status
        state.error = update.error
        if update.status in (agent.JobStatus.JS_SUCCESS, agent.JobStatus.JS_FAILED):
            state.ended_at = state.updated_at
            del self.jobs[update.job_id]
            logger.info(
                "job {} on {} ended: {} {}",
                update.job_id,
                self,
                agent.JobStatus.Name(update.status),
                update.error,
            )
            return job
        return None

    async def offer(
        self,
        job: agent.Job,
        token_for: Callable[[agent.AvailabilityResponse], str],
        within_s: float = ASSIGN_TIMEOUT_S,
    ) -> Job:
        """Ask the worker to take ``job``; assign it with the token ``token_for`` its answer.

        :class:`WorkerUnavailable` when it declines, is silent for ``within_s`` or closes.
        """
        if job.id in self._offers:
            raise WorkerUnavailable(f"{self} was already offered job {job.id}")
        now = time.time_ns()
        job.state.worker_id = self.id
        job.state.started_at = job.state.updated_at = now
        job.state.status = agent.JobStatus.JS_RUNNING
        answer = asyncio.get_running_loop().create_future()
        self._offers[job.id] = answer
        try:
            await self._send(agent.ServerMessage(availability=agent.AvailabilityRequest(job=job)))
            async with asyncio.timeout(within_s):
                response = await answer
        except TimeoutError:
            raise WorkerUnavailable(f"{self} did not answer for job {job.id} in time") from None
        except (ConnectionError, RuntimeError) as exc:
            raise WorkerUnavailable(f"{self} went away: {exc}") from None
        finally:
            self._offers.pop(job.id, None)
        if response.terminate:
            job.state.status = agent.JobStatus.JS_SUCCESS
            job.state.ended_at = now
            raise WorkerUnavailable(f"{self} declined job {job.id} and ended it")
        if not response.available:
            raise WorkerUnavailable(f"{self} is not available for job {job.id}")
        job.state.participant_identity = response.participant_identity or f"agent-{job.id}"
        token = token_for(response)
        await self._send(agent.ServerMessage(assignment=agent.JobAssignment(job=job, token=token)))
        assigned = Job(proto=job, worker=self)
        self.jobs[job.id] = assigned
        return assigned

    async def terminate(self, job_id: str, *, left_room: bool) -> None:
        """Tell the worker to end ``job_id``; the job ends FAILED when its agent left the room."""
        job = self.jobs.get(job_id)
        if job is None:
            return
        try:
            await self._send(agent.ServerMessage(termination=agent.JobTermination(job_id=job_id)))
        except (ConnectionError, RuntimeError) as exc:
            logger.info("could not tell {} to end job {}: {}", self, job_id, exc)
        status = agent.JobStatus.JS_FAILED if left_room else agent.JobStatus.JS_SUCCESS
        error = "agent worker left the room" if left_room else ""
        self.update_job(agent.UpdateJobStatus(job_id=job_id, status=status, error=error))

    def close(self) -> None:
        """The worker's connection ended: pending offers fail at once."""
        self.closed = True
        for offer in self._offers.values():
            if not offer.done():
                offer.set_exception(ConnectionError("the worker's connection closed"))
        self._offers.clear()


@dataclass
class Dispatch:
    """One dispatch of a room and the jobs it launched."""

    proto: agent_dispatch.AgentDispatch
    jobs: list[Job] = field(default_factory=list)
    launched: asyncio.Event = field(default_factory=asyncio.Event)

    def info(self) -> agent_dispatch.AgentDispatch:
        """The dispatch as the API returns it, with its jobs' current state."""
        out = agent_dispatch.AgentDispatch()
        out.CopyFrom(self.proto)
        out.state.jobs.extend(j.proto for j in self.jobs)
        return out


class Agents:
    """The registered workers and every room's dispatches."""

    def __init__(
        self,
        auth: Authenticator,
        *,
        evict: Evict | None = None,
        assign_timeout: float = ASSIGN_TIMEOUT_S,
    ) -> None:
        self._auth = auth  # signs the jobs' participant tokens
        self._evict = evict  # removes a participant (room name, identity) from its room
        self._assign_timeout = assign_timeout
        self.workers: dict[str, Worker] = {}
        self.dispatches: dict[str, dict[str, Dispatch]] = {}  # by room name, then dispatch id
        self._room_sids: dict[str, str] = {}  # the room (by name) those dispatches belong to
        self._tasks: set[asyncio.Task[None]] = set()
        self._registered = asyncio.Event()  # set, then replaced, at each registration

    # -- workers ---------------------------------------------------------------------------

    def register(self, worker: Worker) -> None:
        """A worker registered (and was answered); it is sent rooms created from now on."""
        self.workers[worker.id] = worker
        logger.info(
            "agent {} registered: agent name {!r}, {} jobs, livekit-agents {}",
            worker.id,
            worker.agent_name,
            agent.JobType.Name(worker.job_type),
            worker.version or "(unknown version)",
        )
        self._registered.set()
        self._registered = asyncio.Event()

    def deregister(self, worker: Worker) -> None:
        """A worker's connection ended; its agents stay in their rooms."""
        worker.close()
        if self.workers.pop(worker.id, None) is not None:
            logger.info("{} deregistered", worker)

    async def wait_for_worker(self, agent_name: str = "", within_s: float = 30.0) -> Worker:
        """The first registered worker named ``agent_name``, waiting up to ``within_s`` for one."""
        async with asyncio.timeout(within_s):
            while True:
                for worker in self.workers.values():
                    if worker.agent_name == agent_name and not worker.closed:
                        return worker
                await self._registered.wait()

    # -- dispatches ------------------------------------------------------------------------

    def room_started(
        self, room: models.Room, agents: Iterable[agent_dispatch.RoomAgentDispatch] = ()
    ) -> list[agent_dispatch.AgentDispatch]:
        """A room was created: its configuration's dispatches, or the default one, launch."""
        wanted = list(agents) or [agent_dispatch.RoomAgentDispatch()]
        made = []
        for entry in wanted:
            problem = deployment_problem(entry.deployment)
            if problem is not None:
                logger.warning("room {}: dispatch of {!r} refused: {}", room.name, entry, problem)
                continue
            made.append(
                self.create_dispatch(
                    room,
                    agent_dispatch.CreateAgentDispatchRequest(
                        agent_name=entry.agent_name,
                        room=room.name,
                        metadata=entry.metadata,
                        restart_policy=entry.restart_policy,
                        deployment=entry.deployment,
                        attributes=entry.attributes,
                    ),
                )
            )
        return made

    def create_dispatch(
        self, room: models.Room, request: agent_dispatch.CreateAgentDispatchRequest
    ) -> agent_dispatch.AgentDispatch:
        """Add a dispatch to ``room`` and launch its job in the background."""
        proto = agent_dispatch.AgentDispatch(
            id=new_sid("AD_"),
            agent_name=request.agent_name,
            room=room.name,
            metadata=request.metadata,
            restart_policy=request.restart_policy,
            deployment=request.deployment,
            attributes=request.attributes,
        )
        proto.state.created_at = time.time_ns()
        dispatch = Dispatch(proto)
        if self._room_sids.get(room.name) != room.sid:  # a new room of an old room's name
            self._room_sids[room.name] = room.sid
            self.dispatches[room.name] = {}
        self.dispatches[room.name][proto.id] = dispatch
        self._spawn(self._launch(room, dispatch), f"agents: launch {proto.id}")
        return dispatch.info()

    def list_dispatch(self, room: str, dispatch_id: str = "") -> list[agent_dispatch.AgentDispatch]:
        """The dispatches of ``room`` (only ``dispatch_id`` when given)."""
        return [
            d.info()
            for d in self.dispatches.get(room, {}).values()
            if not dispatch_id or d.proto.id == dispatch_id
        ]

    def delete_dispatch(self, room: str, dispatch_id: str) -> agent_dispatch.AgentDispatch | None:
        """Remove a dispatch (None if ``room`` has none called so); its jobs end in the
        background, and their agents are removed from the room if they do not leave."""
        dispatch = self.dispatches.get(room, {}).pop(dispatch_id, None)
        if dispatch is None:
            return None
        self._spawn(self._end_jobs(room, dispatch), f"agents: delete {dispatch_id}")
        return dispatch.info()

    def participant_left(self, room: str, identity: str) -> None:
        """A participant left ``room``: if it was a job's agent, the job has ended (FAILED)."""
        for dispatch in self.dispatches.get(room, {}).values():
            for job in dispatch.jobs:
                if job.identity == identity and job.proto.id in job.worker.jobs:
                    self._spawn(
                        job.worker.terminate(job.proto.id, left_room=True),
                        f"agents: end {job.proto.id}",
                    )

    def room_finished(self, room: str, sid: str) -> None:
        """The room ``room`` (``sid``) closed: its dispatches go (a newer room of that name
        keeps its own)."""
        if self._room_sids.get(room) == sid:
            del self._room_sids[room]
            self.dispatches.pop(room, None)

    async def close(self) -> None:
        """Stop every launch and termination still under way."""
        await cancel_and_wait(*self._tasks)

    # -- internals -------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _candidates(self, dispatch: agent_dispatch.AgentDispatch) -> list[Worker]:
        return [
            w
            for w in self.workers.values()
            if w.agent_name == dispatch.agent_name
            and w.deployment == dispatch.deployment
            and w.job_type == agent.JobType.JT_ROOM
        ]

    @staticmethod
    def _pick(workers: list[Worker]) -> Worker | None:
        """livekit-server's choice: at random, weighted by spare capacity, among the available."""
        weights = {w: max(0.0, 1.0 - w.load) for w in workers if w.available}
        total = sum(weights.values())
        if total <= 0:
            return None
        point = random.uniform(0, total)
        for worker, weight in weights.items():
            point -= weight
            if point <= 0:
                return worker
        return next(iter(weights))

    async def _launch(self, room: models.Room, dispatch: Dispatch) -> None:
        """Offer the dispatch's job to its workers until one takes it."""
        try:
            proto = dispatch.proto
            tried: list[Worker] = []
            candidates = self._candidates(proto)
            if not candidates:
                logger.info(
                    "room {}: no agent worker named {!r} is registered; dispatch {} has no job",
                    room.name,
                    proto.agent_name,
                    proto.id,
                )
                return
            job = agent.Job(
                id=new_sid("AJ_"),
                dispatch_id=proto.id,
                type=agent.JobType.JT_ROOM,
                room=room,
                agent_name=proto.agent_name,
                metadata=proto.metadata,
                deployment=proto.deployment,
                attributes=proto.attributes,
            )
            while (worker := self._pick([w for w in candidates if w not in tried])) is not None:
                tried.append(worker)
                try:
                    assigned = await worker.offer(
                        job, functools.partial(self._token, room.name, worker), self._assign_timeout
                    )
                except WorkerUnavailable as exc:
                    logger.info("room {}: {}", room.name, exc)
                    if job.state.status == agent.JobStatus.JS_SUCCESS:
                        return  # the worker ended the job itself (terminate)
                    continue
                if self.dispatches.get(room.name, {}).get(proto.id) is not dispatch:
                    # deleted (or the room closed) while the worker was answering
                    await worker.terminate(job.id, left_room=False)
                    return
                dispatch.jobs.append(assigned)
                logger.info(
                    "room {}: job {} assigned to {} as {}",
                    room.name,
                    job.id,
                    worker,
                    assigned.identity,
                )
                return
            logger.info("room {}: no agent worker took dispatch {}", room.name, proto.id)
        finally:
            dispatch.launched.set()

    def _token(self, room: str, worker: Worker, answer: agent.AvailabilityResponse) -> str:
        """The job's participant token, as livekit-server's BuildAgentToken makes it."""
        permissions = worker.permissions
        attributes = dict(answer.participant_attributes)
        attributes[AGENT_NAME_ATTRIBUTE] = worker.agent_name
        grants = api.VideoGrants(
            room_join=True,
            agent=True,
            room=room,
            can_subscribe=permissions.can_subscribe,
            can_publish=permissions.can_publish,
            can_publish_data=permissions.can_publish_data,
            hidden=permissions.hidden,
            can_update_own_metadata=permissions.can_update_metadata,
        )
        return self._auth.mint(
            answer.participant_identity or f"agent-{answer.job_id}",
            grants,
            ttl_s=JOB_TOKEN_TTL_S,
            name=answer.participant_name,
            metadata=answer.participant_metadata,
            attributes=attributes,
            kind="agent",
        )

    async def _end_jobs(self, room: str, dispatch: Dispatch) -> None:
        """A deleted dispatch's jobs: terminated, and their agents removed from the room."""
        await dispatch.launched.wait()
        for job in dispatch.jobs:
            await job.worker.terminate(job.proto.id, left_room=False)
        if self._evict is None or not dispatch.jobs:
            return
        await asyncio.sleep(LEAVE_GRACE_S)
        for job in dispatch.jobs:
            await self._evict(room, job.identity)
