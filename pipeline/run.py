"""A capture run: the server, the rooms, one or more conversations, their evidence.

`capture(config)` starts the embedded server when the URL is a loopback address nobody listens
on, creates one room per conversation through the server API (`pipeline.rooms`), runs every
conversation at once (`pipeline.tones.conversation`, here or each in a worker process of its own,
`pipeline.worker`; with an agent under test, `pipeline.agent.conversation`) from one start
instant (`pipeline.gate`), and returns one `Outcome` per run folder. Only faults before any run
folder exists (server unreachable, credentials refused) raise `ConnectError`; impairment asked of
a server the run did not start raises `ConfigError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Sequence
from typing import Protocol, TextIO

from loguru import logger

from echoproof.aiotasks import cancel_and_wait
from pipeline.bounded_run import Outcome
from pipeline.config import Config
from pipeline.config.faults import FreezeFault
from pipeline.console.live import LiveView, PairView
from pipeline.errors import ConfigError
from pipeline.gate import Begins, Gate, StartGate, StopSignal
from pipeline.recording import evidence
from pipeline.recording.freeze import Freezer
from pipeline.rooms import create_rooms, delete_rooms, room_name
from pipeline.server.process import EmbeddedServer
from pipeline.tones.conversation import Conversation


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
    async with embedded_server(config) as server_pid:
        embedded = server_pid is not None
        run_ids = _run_ids(config.pairs)
        await create_rooms(config, [room_name(r) for r in run_ids])
        units: list[Unit]
        if config.agent is not None:
            from pipeline.agent.conversation import AgentConversation, utterances_of

            units = [
                AgentConversation(
                    config, run_id, utterances_of(config), embedded=embedded, server_pid=server_pid
                )
                for run_id in run_ids
            ]
        elif processes:
            # Imported here: `python -m pipeline.worker` imports the package, and so this module,
            # before it runs the worker module as __main__; had that imported pipeline.worker
            # already, runpy would warn on every worker's stderr.
            from pipeline.worker import Job, WorkerProcess

            units = [WorkerProcess(Job(config, run_id, server_pid)) for run_id in run_ids]
        else:
            units = [
                Conversation(config, run_id, embedded=embedded, server_pid=server_pid)
                for run_id in run_ids
            ]
        await run_all(units, stop, live_stream, freeze=config.freeze)
        await delete_rooms(config, [room_name(r) for r in run_ids])
    return [u.outcome for u in units]


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
) -> None:
    """Run every unit to its end from one start instant, all in one live view, finished after;
    with `freeze`, this process and every one under it stand still once
    (`pipeline.recording.freeze`)."""
    gate = StartGate(len(units))
    view = LiveView([u.view for u in units], stream=live_stream)
    view_task = asyncio.create_task(view.run(), name="live-view")
    fault = None
    if freeze is not None:
        fault = asyncio.create_task(_freeze_once_open(gate, freeze), name="fault-freeze")
    try:
        async with asyncio.TaskGroup() as tg:
            for u in units:
                tg.create_task(u.run(stop, view, gate), name=f"conversation-{u.run_id}")
    finally:
        if fault is not None:
            await cancel_and_wait(fault)
        await cancel_and_wait(view_task)
        view.finish()


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
