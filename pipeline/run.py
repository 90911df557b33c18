"""A capture run: the server, the rooms, one or more conversations, their evidence.

`capture(config)` starts the embedded server when the URL is a loopback address nobody listens
on, creates one room per conversation through the server API (`pipeline.rooms`), starts the
agent's worker when the run has one to start (`pipeline.agent.worker`: one for every
conversation), runs every conversation (`pipeline.tones.conversation`, or with an agent under
test `pipeline.agent.conversation`; here or each in a worker process of its own,
`pipeline.worker`) from one start instant, or joining along a ramp (`pipeline.gate`), and returns
one `Outcome` per run folder. Only faults before any run folder exists (server unreachable,
credentials refused, an agent worker that does not register) raise `ConnectError`; impairment
asked of a server the run did not start raises `ConfigError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Sequence
from typing import Protocol, TextIO

from loguru import logger

from echoproof.aiotasks import cancel_and_wait
from pipeline.agent.worker import AgentWorker, WorkerRef
from pipeline.bounded_run import Outcome
from pipeline.config import Config
from pipeline.config.faults import FreezeFault
from pipeline.console.live import LiveView, PairView
from pipeline.errors import ConfigError
from pipeline.gate import Begins, Gate, StartGate, StopSignal, join_delay_s, start_gates
from pipeline.recording import evidence
from pipeline.recording.freeze import Freezer
from pipeline.rooms import create_rooms, delete_rooms, room_name
from pipeline.server.process import EmbeddedServer


async def capture(
    config: Config,
    *,
    stop: StopSignal | None = None,
    live_stream: TextIO | None = None,
    processes: bool = False,
) -> list[Outcome]:
    """Run `config.pairs` conversations at once and return their outcomes, in run order.

    With `processes`, each conversation runs in a worker process of its own (`pipeline.worker`):
    one event loop and one GIL per conversation, so many pairs keep real time. Without it, every
    conversation shares this process's event loop (fine for one or two pairs, and for tests).
    """
    stop = stop or StopSignal()
    config = dataclasses.replace(config, fleet_id=evidence.new_run_id())
    # Imported here: `python -m pipeline.worker` imports the package, and so this module, before
    # it runs the worker module as __main__; had that imported pipeline.worker already, runpy
    # would warn on every worker's stderr.
    from pipeline.worker import Job, WorkerProcess

    async with embedded_server(config) as server_pid:
        run_ids = _run_ids(config.pairs)
        await create_rooms(config, [room_name(r) for r in run_ids])
        async with agent_worker(config, run_ids) as worker:
            jobs = [Job(config, run_id, server_pid, worker) for run_id in run_ids]
            units: list[Unit] = [WorkerProcess(j) if processes else j.conversation() for j in jobs]
            await run_all(units, stop, live_stream, freeze=config.freeze, ramp_s=config.join_ramp_s)
            await delete_rooms(config, [room_name(r) for r in run_ids])
    return [u.outcome for u in units]


@contextlib.asynccontextmanager
async def agent_worker(config: Config, run_ids: list[str]) -> AsyncIterator[WorkerRef | None]:
    """The agent's worker when the run starts it (`agent.cmd`), registered: one for every
    conversation. Its log is kept beside the run folders while it runs, then copied into each
    (`AgentWorker`); None when the run starts no worker."""
    agent = config.agent
    if agent is None or agent.cmd is None:
        yield None
        return
    log = config.out_dir / f"agent-worker-{config.fleet_id}.log"
    run_dirs = [config.out_dir / run_id for run_id in run_ids]
    async with AgentWorker(agent.cmd, config, log, run_dirs) as worker:
        yield worker.ref()


class Unit(Protocol):
    """A conversation, run here (`Conversation`, `AgentConversation`) or in a worker process
    (`pipeline.worker.WorkerProcess`)."""

    run_id: str
    view: PairView
    outcome: Outcome

    async def run(self, stop: StopSignal, view: Begins, gate: Gate) -> None: ...


async def run_all(
    units: Sequence[Unit],
    stop: StopSignal,
    live_stream: TextIO | None,
    *,
    freeze: FreezeFault | None = None,
    ramp_s: float = 0.0,
) -> None:
    """Run every unit to its end from one start instant (or along a join ramp of `ramp_s`, see
    `pipeline.gate`), all in one live view, finished after; with `freeze`, this process and
    every one under it stand still once (`pipeline.recording.freeze`)."""
    gates = start_gates(len(units), ramp_s)
    view = LiveView([u.view for u in units], stream=live_stream)
    view_task = asyncio.create_task(view.run(), name="live-view")
    fault = None
    if freeze is not None:
        fault = asyncio.create_task(_freeze_once_open(gates[0], freeze), name="fault-freeze")
    try:
        async with asyncio.TaskGroup() as tg:
            for i, (u, gate) in enumerate(zip(units, gates, strict=True)):
                delay_s = join_delay_s(i, len(units), ramp_s)
                tg.create_task(
                    _run_at(delay_s, u, stop, view, gate), name=f"conversation-{u.run_id}"
                )
    finally:
        if fault is not None:
            await cancel_and_wait(fault)
        await cancel_and_wait(view_task)
        view.finish()


async def _run_at(delay_s: float, unit: Unit, stop: StopSignal, view: Begins, gate: Gate) -> None:
    """Run `unit` `delay_s` from now (its place on the join ramp); at once when stopping is
    asked meanwhile, so that its run folder records the interruption."""
    if delay_s > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay_s)
    await unit.run(stop, view, gate)


async def _freeze_once_open(gate: StartGate, fault: FreezeFault) -> None:
    """Arm the freeze from the start instant; runs until cancelled at the talk's end."""
    async with Freezer(fault, await gate.opened()):
        await asyncio.Event().wait()


def _run_ids(n: int) -> list[str]:
    ids: set[str] = set()
    while len(ids) < n:
        ids.add(evidence.new_run_id())
    return sorted(ids)


# -- the server ------------------------------------------------------------------------------------


async def _listening(host: str, port: int) -> bool:
    try:
        async with asyncio.timeout(1.0):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


@contextlib.asynccontextmanager
async def embedded_server(config: Config, bind: str | None = None) -> AsyncIterator[int | None]:
    """Start the embedded server on the URL's port when it is a loopback address nobody listens on.

    Yields the server's process id when this run started (and will stop) the server itself, else
    None. The server runs in a child process (see pipeline.server.process for why). `bind`: the
    address it listens on instead of the URL's (a run on a Ray cluster: one its nodes reach).
    """
    host = "127.0.0.1" if config.host == "localhost" else config.host
    if not config.is_loopback or await _listening(host, config.port):
        if config.impairment is not None and not config.impairment.is_none:
            # Only our own server applies it; a run on any other would claim a network it had not.
            raise ConfigError(
                f"{config.source}: 'impairment' needs the embedded server, but {config.ws_url} is "
                "an external server (not started by this run); remove 'impairment' or set "
                "livekit.url to a free loopback port."
            )
        yield None
        return
    logger.info("nothing listens on {}:{}; starting the embedded server there", host, config.port)
    async with EmbeddedServer(
        bind or host,
        config.port,
        config.api_key,
        config.api_secret,
        start_timeout_s=config.connect_timeout_s + 20,  # the child imports aiortc first
        impairment=config.impairment,
    ) as server:
        logger.info("embedded server ready at {}", server.url)
        if config.impairment is not None and not config.impairment.is_none:
            logger.info("the embedded server impairs the audio: {}", config.impairment.public())
        yield server.pid
