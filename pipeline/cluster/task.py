"""One conversation as a Ray task on its node, and what it sends back to the driver.

`converse` runs the conversation as `--pairs` does on one machine: in a worker process of its own
(`pipeline.worker.WorkerProcess`, `python -m pipeline.worker`), never in the Ray worker itself,
whose gRPC threads must not run under the conversation's SCHED_FIFO and which keeps the SDK
loaded. The task is a Ray generator: it yields JSON-able messages, which the driver reads as they
come (`pipeline.cluster.driver`):

- `{"kind": "node", "host", "ray_node_id"}` first;
- `{"kind": "log", "level", "message"}` for every log line (the driver prints it);
- `{"kind": "progress", "state", "talked_s", "customer", "support"}` every HEARTBEAT_S (each
  speaker's counters; `state`: joining, ready, talking, closing); the driver takes a node that
  stops sending them for lost;
- `{"kind": "manifest", "data"}` once the run folder's manifest exists (status running);
- once the conversation ended: `{"kind": "files", "files"}` (size and SHA-256 by name), then
  `{"kind": "chunk", "name", "data"}` pieces (`pipeline.cluster.transfer`), and last
  `{"kind": "outcome", "status", "reason", "customer", "support", "folder"}`.

The folder is staged in the node's temporary folder and removed once sent.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ray
from loguru import logger

from echoproof.aiotasks import cancel_and_wait
from pipeline.cluster import transfer
from pipeline.cluster.gate import NodeGate
from pipeline.cluster.nodes import this_node
from pipeline.gate import StopSignal
from pipeline.recording import evidence
from pipeline.worker import Job, WorkerProcess

HEARTBEAT_S = 1.0
# Messages a task may have sent ahead of the driver's reading: at most this many chunks in memory.
BACKPRESSURE_OBJECTS = 16
# Never retried: a conversation cannot be replayed. (A Ray worker runs one after another: each
# leaves nothing behind, its thread joined and its log sink removed, and a warm worker saves
# starting Python and importing Ray again.)
_OPTIONS: dict[str, Any] = {
    "max_retries": 0,
    "_generator_backpressure_num_objects": BACKPRESSURE_OBJECTS,
}


@ray.remote(**_OPTIONS)
def converse(job: Job, gate: Any, out_dir: str, embedded: bool) -> Iterator[dict[str, Any]]:
    """Run `job`'s conversation on this node, then send its run folder (see the module
    docstring); `out_dir` is the driver's `--out`, `embedded` whether the run started its
    server."""
    node = this_node()
    yield {"kind": "node", **node.to_json()}
    staging = Path(tempfile.mkdtemp(prefix="echoproof-ray-"))
    try:
        config = job.config.replace(out_dir=staging)
        run = NodeRun(dataclasses.replace(job, config=config), gate)
        yield from run.messages()
        run_dir = staging / job.run_id
        folder = (run_dir / evidence.MANIFEST).is_file()
        if folder:
            transfer.seal(run_dir, node.to_json(), out_dir, embedded)
            files = transfer.listing(run_dir)
            yield {"kind": "files", "files": files}
            for name, data in transfer.chunks(run_dir, list(files)):
                yield {"kind": "chunk", "name": name, "data": data}
        o = run.unit.outcome
        yield {
            "kind": "outcome",
            "status": o.status,
            "reason": o.reason,
            "customer": o.customer.to_dict(),
            "support": o.support.to_dict(),
            "folder": folder,
        }
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class NodeRun:
    """The conversation's worker process, followed from an event loop in a thread of its own
    (the generator yields what it puts on `queue`)."""

    def __init__(self, job: Job, gate: Any) -> None:
        self.job = job
        self.unit = WorkerProcess(job)
        self.state = "joining"
        self.start_ns: int | None = None
        self._actor = gate
        self._gate = NodeGate(gate, job.run_id, settles=job.config.pairs > 1, on_ready=self._ready)
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._manifest_sent = False

    def messages(self) -> Iterator[dict[str, Any]]:
        """Every message until the conversation ended and its worker process exited."""
        thread = threading.Thread(target=self._thread, name=f"run-{self.job.run_id}")
        thread.start()
        try:
            while (msg := self._queue.get()) is not None:
                yield msg
        finally:
            thread.join()

    def _thread(self) -> None:
        def sink(message: Any) -> None:
            level = message.record["level"].name
            self._queue.put({"kind": "log", "level": level, "message": str(message).rstrip()})

        handler = logger.add(sink, level="INFO", format="{message}")
        try:
            asyncio.run(self._main())
        except Exception as exc:  # the outcome (failed) says the rest
            logger.error("run {}: the task failed: {!r}", self.job.run_id, exc)
        finally:
            logger.remove(handler)
            self._queue.put(None)

    async def _main(self) -> None:
        stop = StopSignal()
        tasks = [
            asyncio.create_task(self._watch_stop(stop), name="watch-stop"),
            asyncio.create_task(self._heartbeat(), name="heartbeat"),
        ]
        try:
            await self.unit.run(stop, self, self._gate)
        finally:
            await cancel_and_wait(*tasks)
            self._queue.put(self._progress())

    def begin(self, start_ns: int, duration_s: float) -> None:
        """The worker process starts talking at `start_ns` (this node's monotonic clock)."""
        self.start_ns = start_ns
        self.state = "talking"

    def _ready(self) -> None:
        self.state = "ready"

    async def _watch_stop(self, stop: StopSignal) -> None:
        stop.set(await self._actor.stopped.remote())

    async def _heartbeat(self) -> None:
        while True:
            self._queue.put(self._progress())
            self._send_manifest()
            await asyncio.sleep(HEARTBEAT_S)

    def _progress(self) -> dict[str, Any]:
        talked = 0.0
        if self.start_ns is not None:
            talked = min(
                max(0.0, (time.monotonic_ns() - self.start_ns) / 1e9), self.job.config.duration_s
            )
            if talked >= self.job.config.duration_s:
                self.state = "closing"
        return {
            "kind": "progress",
            "state": self.state,
            "talked_s": round(talked, 1),
            "customer": self.unit.view.customer.to_dict(),
            "support": self.unit.view.support.to_dict(),
        }

    def _send_manifest(self) -> None:
        """The run folder's manifest once it exists: the driver keeps it for a lost node."""
        if self._manifest_sent:
            return
        path = self.job.config.out_dir / self.job.run_id / evidence.MANIFEST
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        self._manifest_sent = True
        self._queue.put({"kind": "manifest", "data": data})
