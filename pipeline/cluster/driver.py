"""A run on a Ray cluster, from the machine that started it (`--ray ADDRESS`).

`capture(config, address)` joins the cluster (`connection`), starts the embedded server on an
address the nodes reach when the URL is a free loopback port (`pipeline.run.embedded_server`),
reserves one bundle per conversation and checks that each chosen node reaches the server
(`placement`), creates the rooms, then runs one task per conversation (`task`) from one start
instant (`gate`), shows progress (`progress`), and writes each run folder under `--out` as it
arrives, checked against its node's SHA-256 (`transfer`). A conversation whose node is lost
(Ray declares it dead, or nothing is heard from it for `ray.lost_after_s`) fails, naming the
node: the driver writes its run folder (`lost`) and ignores whatever the node sends later. It
returns one `Outcome` per conversation, as `pipeline.run.capture` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any, TextIO

import ray
from loguru import logger
from ray.exceptions import NodeDiedError, RayError, WorkerCrashedError

from echoproof.aiotasks import cancel_and_wait
from pipeline.bounded_run import Outcome
from pipeline.bounds import run_bound_s
from pipeline.cluster import nodes
from pipeline.cluster.connection import RayConnection
from pipeline.cluster.gate import start_gate
from pipeline.cluster.lost import write_failed_run
from pipeline.cluster.nodes import Node
from pipeline.cluster.placement import Placement, check_server
from pipeline.cluster.progress import ClusterView
from pipeline.cluster.task import converse
from pipeline.cluster.transfer import Receiver, TransferError
from pipeline.config import Config
from pipeline.console.live import Counters, PairView
from pipeline.gate import StopSignal
from pipeline.recording import evidence
from pipeline.rooms import create_rooms, delete_rooms, room_name
from pipeline.run import _run_ids, embedded_server
from pipeline.worker import START_BOUND_S, Job

# A task's run folder travels after the talk: time allowed for it, on top of the run's bound.
TRANSFER_BOUND_S = 120.0
WATCH_EVERY_S = 1.0


async def capture(
    config: Config,
    address: str,
    *,
    stop: StopSignal | None = None,
    live_stream: TextIO | None = None,
) -> list[Outcome]:
    """Run `config.pairs` conversations on the Ray cluster at `address`; their outcomes, in run
    order (see the module docstring). ConnectError before anything starts when the cluster or
    the server cannot be reached, ConfigError when the cluster has no room."""
    stop = stop or StopSignal()
    config = config.replace(fleet_id=evidence.new_run_id())
    async with RayConnection(address):
        ip = ray.util.get_node_ip_address()
        async with embedded_server(config, bind=ip) as server_pid:
            embedded = server_pid is not None
            if embedded:
                config = config.replace(url=f"ws://{ip}:{config.port}")
            async with Placement(config) as placement:
                await check_server(config, placement.node_ids)
                run_ids = _run_ids(config.pairs)
                rooms = [room_name(r) for r in run_ids]
                await create_rooms(config, rooms)
                runs = [
                    RemoteRun(config, run_id, placement.strategy(i), embedded=embedded)
                    for i, run_id in enumerate(run_ids)
                ]
                try:
                    await _run_all(runs, config, stop, live_stream)
                finally:
                    await delete_rooms(config, rooms)
    return [r.outcome for r in runs]


async def _run_all(
    runs: Sequence[RemoteRun], config: Config, stop: StopSignal, live_stream: TextIO | None
) -> None:
    """Every conversation to its end, from one start instant, watched and shown."""
    gate = start_gate([r.run_id for r in runs], _driver_node())
    view = ClusterView(runs, config.duration_s, stream=live_stream)
    helpers = [
        asyncio.create_task(view.run(), name="cluster-view"),
        asyncio.create_task(_watch(runs, config.ray.lost_after_s), name="watch-nodes"),
        asyncio.create_task(_forward_stop(stop, gate), name="forward-stop"),
    ]
    try:
        async with asyncio.TaskGroup() as tg:
            for r in runs:
                tg.create_task(r.run(gate), name=f"conversation-{r.run_id}")
    finally:
        await cancel_and_wait(*helpers)
        view.finish()
        with contextlib.suppress(RayError):
            ray.kill(gate)


def _driver_node() -> str | None:
    """This process's node (the gate's place); None through Ray Client, which has none."""
    try:
        return str(ray.get_runtime_context().get_node_id())
    except Exception:  # Ray Client: let Ray place the gate
        return None


async def _forward_stop(stop: StopSignal, gate: Any) -> None:
    await stop.wait()
    await gate.stop.remote(stop.reason or "the run was asked to stop.")


async def _watch(runs: Sequence[RemoteRun], lost_after_s: float) -> None:
    """Give up on each conversation whose node Ray declared dead, or that has been silent for
    `lost_after_s` (a frozen node: Ray's health checks take longer)."""
    while True:
        await asyncio.sleep(WATCH_EVERY_S)
        alive = await asyncio.to_thread(nodes.alive)
        now = time.monotonic()
        for r in runs:
            if r.finished:
                continue
            if r.node is not None and not alive.get(r.node.ray_node_id, True):
                r.lose("Ray declared it dead")
            elif now - r.last_heard > lost_after_s:
                r.lose(f"nothing was heard from it for {lost_after_s:g} s")


class RemoteRun:
    """The driver's handle on one conversation's task: follows its messages, receives its run
    folder, and gives up on it when its node is lost."""

    def __init__(self, config: Config, run_id: str, strategy: Any, *, embedded: bool) -> None:
        self.config = config
        self.run_id = run_id
        self.node: Node | None = None
        self.state = "queued"
        self.talked_s = 0.0
        self.view = PairView(run_id, Counters(), Counters())
        self.outcome = Outcome(
            run_id, config.out_dir / run_id, "failed", None, self.view.customer, self.view.support
        )
        self.last_heard = time.monotonic()
        self.done = False
        self._strategy = strategy
        self._embedded = embedded
        self._lost = asyncio.Event()
        self._reason = "its task ended without sending the run folder."
        self._seen: dict[str, Any] | None = None  # the manifest as the run began
        self._receiver = Receiver(config.out_dir, run_id)
        self._bound_s = run_bound_s(config) + START_BOUND_S + TRANSFER_BOUND_S

    @property
    def finished(self) -> bool:
        """Its run folder arrived, or it was given up."""
        return self.done or self._lost.is_set()

    def lose(self, why: str) -> None:
        """Give up on this conversation: its node was lost for `why`."""
        if self.finished:
            return
        where = (
            "its task never started on a node"
            if self.node is None
            else (f"node {self.node.name} was lost")
        )
        self._fail(f"{where}: {why}.")

    def _fail(self, reason: str) -> None:
        if not self.finished:
            self._reason = reason
            self.state = "lost" if "was lost" in reason else "failed"
            self._lost.set()

    async def run(self, gate: Any) -> None:
        """Run the task and follow it to its end, or until given up; never raises for the
        task's faults."""
        job = Job(self.config, self.run_id, None)
        gen = converse.options(
            num_cpus=self.config.ray.cpus_per_conversation, scheduling_strategy=self._strategy
        ).remote(job, gate, str(self.config.out_dir), self._embedded)
        follow = asyncio.create_task(self._follow(gen), name=f"follow-{self.run_id}")
        lost = asyncio.create_task(self._lost.wait(), name=f"lost-{self.run_id}")
        try:
            async with asyncio.timeout(self._bound_s):
                await asyncio.wait({follow, lost}, return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError:
            self._fail(f"its task ran past its time bound of {self._bound_s:g} s.")
        finally:
            await cancel_and_wait(follow, lost)
            if not self.done:
                self._receiver.discard()
                gate.leave.remote(self.run_id)  # the others need not wait for it
                with contextlib.suppress(Exception):
                    ray.cancel(gen, force=True)  # a node that comes back is not listened to
        if not self.done:
            self._write_failure()

    async def _follow(self, gen: Any) -> None:
        try:
            async for ref in gen:
                self._handle(await ref)
                if self.finished:
                    return
        except (NodeDiedError, WorkerCrashedError) as exc:
            self.lose(_first_line(exc) or "Ray declared it dead")
        except RayError as exc:
            self._fail(f"its task failed{self._on_node()}: {_first_line(exc)}.")
        except (TransferError, OSError) as exc:
            self._fail(f"its run folder{self._on_node()} could not be received: {exc}")
        self._fail(self._reason)  # the task ended without an outcome

    def _on_node(self) -> str:
        return "" if self.node is None else f" on node {self.node.name}"

    def _handle(self, msg: dict[str, Any]) -> None:
        self.last_heard = time.monotonic()
        kind = msg["kind"]
        if kind == "node":
            self.node = Node(msg["host"], msg["ray_node_id"])
            self.state = "starting"
        elif kind == "log":
            message = msg["message"]
            if not message.startswith("run "):
                message = f"run {self.run_id}: {message}"
            logger.log(msg["level"], "{}", message)
        elif kind == "progress":
            self.state, self.talked_s = msg["state"], msg["talked_s"]
            self._count(msg)
        elif kind == "manifest":
            self._seen = msg["data"]
        elif kind == "files":
            self.state = "sending"
            self._receiver.open(msg["files"])
        elif kind == "chunk":
            self._receiver.write(msg["name"], msg["data"])
        elif kind == "outcome":
            self._count(msg)
            self._arrived(msg)

    def _count(self, msg: dict[str, Any]) -> None:
        self.view.customer = self.outcome.customer = Counters.from_dict(msg["customer"])
        self.view.support = self.outcome.support = Counters.from_dict(msg["support"])

    def _arrived(self, msg: dict[str, Any]) -> None:
        """The task's last message: publish its run folder, or fail without one."""
        if not msg["folder"]:
            self._fail(msg["reason"] or self._reason)
            return
        self._receiver.finish()
        self.done = True
        self.state = msg["status"]
        self.outcome.status, self.outcome.reason = msg["status"], msg["reason"]

    def _write_failure(self) -> None:
        """The run folder of a conversation that did not arrive, failed with its reason."""
        self.outcome.status, self.outcome.reason = "failed", self._reason
        logger.warning("run {}: failed ({})", self.run_id, self._reason)
        node = None if self.node is None else self.node.to_json()
        write_failed_run(
            self.config, self.run_id, self._reason, node, self._seen, embedded=self._embedded
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].rstrip(".") if text else type(exc).__name__
