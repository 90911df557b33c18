"""One conversation per worker process, so that many pairs, or many callers of an agent under
test, keep real time.

All conversations in one process share one event loop and one GIL: with four pairs the send loops
starve and frames go out late. Here the parent (`pipeline.run.capture`, through one
`WorkerProcess` per conversation) starts one worker process per conversation,
`python -m pipeline.worker`, which runs it in its own event loop: both speakers of a tone
conversation, or the Customer of one with the agent under test (`Job.conversation`; mouth-to-ear
latency still uses one clock; `time.monotonic_ns()` is system-wide anyway).

The protocol is lines on the worker's pipes:

- parent -> worker stdin: first the job (the config, the run id, the embedded server's pid when
  the run started it, for the host figures, and the agent's worker when the run started one),
  base64 of a pickle, since both ends run this same code; then JSON objects:
  `{"kind": "start", "start_ns"}` once every worker is ready (see `pipeline.gate.StartGate`), and
  `{"kind": "stop", "reason"}` to stop early (Ctrl-C, SIGTERM). End of input also stops the worker:
  its parent is gone.
- worker -> parent stdout, JSON objects: `{"kind": "log", "level", "message"}` for every log line
  (the parent prints it, so it does not run into the live view), `{"kind": "ready"}` once both
  speakers hear each other, `{"kind": "begin", "start_ns", "duration_s"}`, `{"kind": "progress",
  "customer", "support"}` twice a second with each speaker's counters, and last `{"kind": "outcome",
  "status", "reason", "customer", "support", "pid"}`.

A worker closes its evidence and marks its manifest itself, whatever stopped it. A worker that dies
without reporting (SIGKILL, a native crash) fails its run, and the parent marks the manifest so.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import pickle
import signal
import sys
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loguru import logger

from echoproof.aiotasks import cancel_and_wait
from pipeline.agent.worker import WorkerRef
from pipeline.bounded_run import Outcome
from pipeline.bounds import run_bound_s
from pipeline.config import Config
from pipeline.console.live import Counters, PairView
from pipeline.console.logs import setup_logging
from pipeline.gate import Begins, Gate, StopSignal
from pipeline.recording import evidence

if TYPE_CHECKING:
    from pipeline.agent.conversation import AgentConversation
    from pipeline.tones.conversation import Conversation

# Time a worker may take to start (imports, numba cache) on top of its conversation's bound.
START_BOUND_S = 60.0
# After the parent asked a worker to stop, it waits this long before killing it.
STOP_GRACE_S = 15.0
PROGRESS_EVERY_S = 0.5
_LINE_LIMIT = 1 << 20


@dataclass(frozen=True)
class Job:
    """What a worker runs: one conversation of `config`, in run folder `run_id`."""

    config: Config
    run_id: str
    server_pid: int | None  # the embedded server's, when the run started it
    agent_worker: WorkerRef | None = None  # the agent's, when the run started it

    def conversation(self) -> Conversation | AgentConversation:
        """The conversation itself, to run here or in a worker process: a tone conversation, or
        one with the agent under test."""
        # Imported here: the parent's side (WorkerProcess, which a Ray task runs) needs neither.
        from pipeline.agent.conversation import AgentConversation
        from pipeline.tones.conversation import Conversation

        embedded = self.server_pid is not None
        if self.config.agent is None:
            return Conversation(
                self.config, self.run_id, embedded=embedded, server_pid=self.server_pid
            )
        return AgentConversation(
            self.config,
            self.run_id,
            embedded=embedded,
            server_pid=self.server_pid,
            worker=self.agent_worker,
        )


# -- the parent ------------------------------------------------------------------------------------


class WorkerProcess:
    """The parent's handle on one worker: starts it, follows its reports, ends it."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.run_id = job.run_id
        self.pid: int | None = None
        self.view = PairView(job.run_id, Counters(), Counters(), agent=job.config.agent is not None)
        self.outcome = Outcome(
            job.run_id,
            job.config.out_dir / job.run_id,
            "failed",
            "the worker process ended before reporting.",
            self.view.customer,
            self.view.support,
        )
        self._reported = False
        self._begun = False
        self._gate: Gate | None = None  # until this worker is ready or gone
        self._starter: asyncio.Task[None] | None = None

    async def run(self, stop: StopSignal, view: Begins, gate: Gate) -> None:
        """Start the worker, relay its reports until it exits; it never outlives this call."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "pipeline.worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=_LINE_LIMIT,
        )
        self.pid = proc.pid
        self._gate = gate
        assert proc.stdin is not None and proc.stdout is not None
        bound = run_bound_s(self.job.config) + START_BOUND_S
        stopper: asyncio.Task[None] | None = None
        try:
            proc.stdin.write(base64.b64encode(pickle.dumps(self.job)) + b"\n")
            await proc.stdin.drain()
            stopper = asyncio.create_task(
                self._forward_stop(stop, proc), name=f"stop-{self.job.run_id}"
            )
            async with asyncio.timeout(bound):
                async for line in proc.stdout:
                    self._handle(line, view, proc)
                await proc.wait()
        except TimeoutError:
            self._fail(f"the run's worker process exceeded its time bound of {bound:g} s.", stop)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the worker died at once; its exit code says the rest
        finally:
            if self._gate is not None:  # never ready: the others need not wait for it
                self._gate.leave()
                self._gate = None
            await cancel_and_wait(stopper, self._starter)
            await _end(proc)
            if not self._reported:
                self._fail(
                    f"the run's worker process (pid {proc.pid}) exited with code "
                    f"{proc.returncode} before reporting how the run ended.",
                    stop,
                )

    async def _forward_stop(self, stop: StopSignal, proc: asyncio.subprocess.Process) -> None:
        await stop.wait()
        await _tell(proc, kind="stop", reason=stop.reason)

    async def _forward_start(self, start: Awaitable[int], proc: asyncio.subprocess.Process) -> None:
        await _tell(proc, kind="start", start_ns=await start)

    def _handle(self, line: bytes, view: Begins, proc: asyncio.subprocess.Process) -> None:
        try:
            msg = json.loads(line)
            kind = msg["kind"]
        except (ValueError, KeyError, TypeError):
            logger.debug("run {} worker printed: {!r}", self.job.run_id, line[:200])
            return
        if kind == "log":
            message = msg["message"]
            if not message.startswith("run "):  # say which conversation the line is about
                message = f"run {self.job.run_id}: {message}"
            logger.log(msg["level"], "{}", message)
        elif kind == "ready":
            if self._gate is not None:
                start, self._gate = self._gate.ready(), None
                self._starter = asyncio.create_task(
                    self._forward_start(start, proc), name=f"start-{self.job.run_id}"
                )
        elif kind == "begin":
            if not self._begun:
                self._begun = True
                view.begin(msg["start_ns"], msg["duration_s"])
        elif kind in ("progress", "outcome"):
            self.view.customer = self.outcome.customer = Counters.from_dict(msg["customer"])
            self.view.support = self.outcome.support = Counters.from_dict(msg["support"])
            if kind == "outcome":
                self._reported = True
                self.outcome.status, self.outcome.reason = msg["status"], msg["reason"]

    def _fail(self, reason: str, stop: StopSignal) -> None:
        """The worker could not say how its run ended: the run failed (or was interrupted, when
        stopping was asked for), and its manifest says so."""
        if self._reported:
            return
        self._reported = True
        status = "interrupted" if stop.is_set() else "failed"
        if stop.is_set() and stop.reason is not None:
            reason = f"{stop.reason[:-1]}; {reason}"
        self.outcome.status, self.outcome.reason = status, reason
        logger.warning("run {}: {} ({})", self.job.run_id, status, reason)
        path = self.outcome.run_dir / evidence.MANIFEST
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return  # no manifest: the worker never opened the run folder
        if data.get("status") == "running":
            data.update(status=status, reason=reason, ended_at=evidence.utc_iso())
            evidence.write_json_atomic(path, data)


async def _tell(proc: asyncio.subprocess.Process, **message: Any) -> None:
    """One JSON line to the worker; a worker that is gone no longer needs it."""
    assert proc.stdin is not None
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        proc.stdin.write(json.dumps(message).encode() + b"\n")
        await proc.stdin.drain()


async def _end(proc: asyncio.subprocess.Process) -> None:
    """Let the worker finish; ask it to stop (SIGTERM), then kill it if it will not."""
    if proc.stdin is not None:
        proc.stdin.close()  # end of input: a worker still running stops and closes its evidence
    if proc.returncode is not None:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(proc.wait()), STOP_GRACE_S / 3)
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        await asyncio.wait_for(asyncio.shield(proc.wait()), STOP_GRACE_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


# -- the worker ------------------------------------------------------------------------------------


def _emit(kind: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"kind": kind, **fields}) + "\n")
    sys.stdout.flush()


class _Report:
    """Tells the parent when the conversation starts talking."""

    def begin(self, start_ns: int, duration_s: float) -> None:
        _emit("begin", start_ns=start_ns, duration_s=duration_s)


class _ParentGate:
    """The worker's side of the run's `StartGate`: it says "ready", the parent when to start."""

    def __init__(self, ramp_s: float) -> None:
        # Workers run only when there are several conversations: they settle before talking,
        # unless each starts on its own along a join ramp (see `pipeline.gate.start_gates`).
        self.settles = ramp_s <= 0
        self.start: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def ready(self) -> Awaitable[int]:
        _emit("ready")
        return self.start

    def leave(self) -> None:
        pass  # the parent counts a worker that reports its outcome before "ready" as gone


async def _read_parent(reader: asyncio.StreamReader, stop: StopSignal, gate: _ParentGate) -> None:
    while line := await reader.readline():
        try:
            msg = json.loads(line)
            kind = msg["kind"]
        except (ValueError, KeyError, TypeError):
            continue
        if kind == "start" and not gate.start.done():
            gate.start.set_result(int(msg["start_ns"]))
        elif kind == "stop":
            reason = msg.get("reason")
            stop.set(reason if isinstance(reason, str) else "the parent process asked to stop.")
    stop.set("the parent process ended.")


async def _work() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=_LINE_LIMIT, loop=loop)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader, loop=loop), sys.stdin
    )
    try:
        job: Job = pickle.loads(base64.b64decode(await reader.readline()))
        stop = StopSignal()
        names = {signal.SIGINT: "SIGINT (Ctrl-C)", signal.SIGTERM: "SIGTERM"}
        for sig, name in names.items():
            # A terminal's Ctrl-C reaches every process of the group: stop like the parent does.
            loop.add_signal_handler(sig, stop.set, f"interrupted by {name}.")
        conversation = job.conversation()
        gate = _ParentGate(job.config.join_ramp_s)
        tasks = [
            asyncio.create_task(_read_parent(reader, stop, gate), name="read-parent"),
            asyncio.create_task(_progress(conversation), name="progress"),
        ]
        try:
            await conversation.run(stop, _Report(), gate)
        except Exception as exc:  # the outcome already says so; the parent prints it
            logger.debug("run {} ended with {!r}", job.run_id, exc)
        finally:
            await cancel_and_wait(*tasks)
        o = conversation.outcome
        _emit(
            "outcome",
            status=o.status,
            reason=o.reason,
            customer=o.customer.to_dict(),
            support=o.support.to_dict(),
            pid=os.getpid(),
        )
    finally:
        transport.close()


async def _progress(conversation: Conversation | AgentConversation) -> None:
    while True:
        await asyncio.sleep(PROGRESS_EVERY_S)
        o = conversation.outcome
        _emit("progress", customer=o.customer.to_dict(), support=o.support.to_dict())


def main() -> int:
    """The worker's entry point; returns its exit code (0 once it reported its outcome)."""

    def sink(message: Any) -> None:
        record = message.record
        _emit("log", level=record["level"].name, message=str(message).rstrip("\n"))

    setup_logging(sink, "{message}")
    try:
        asyncio.run(_work())
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    code = main()
    # As in the CLI: skip finalization, where the SDK's native core may abort after our work.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
