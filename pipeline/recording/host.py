"""What the host did to a run, about once a second: the evidence file `host.csv`.

A proof tool must not be fooled by its own host: on a shared 2-core VM, CPU steal and busy
neighbours put the sender behind real time, and the receivers' jitter buffers turn each stall
into latency that drains over tens of seconds (`docs/measurements.md`, "The host"). So every capture
process records, per window of about one second, the figures that say whether the host held the
audio back; verify reads them to tell a starved host from a broken network (`verify.host`).

Columns (one row per window, `t_ns` = the window's end on the run's monotonic clock):

- `window_ms`: the window's length.
- `customer_send_late_ms`, `support_send_late_ms`: the largest sender lateness of a frame handed
  to the SDK in the window (frame n's send time minus the first frame's + n x 10 ms).
- `customer_recv_gap_ms`, `support_recv_gap_ms`: the longest wait between two frames the speaker's
  `rtc.AudioStream` yielded (10 ms when the host keeps up; the SDK yields frames on time even
  during a network outage, concealment included).
- `loop_lag_ms`: how late a 20 ms timer of the capture process's event loop fired, at worst.
- `capture_wait_ms`, `loop_thread_wait_ms`: time the capture process's threads (all of them, and
  the event loop's alone) were runnable but not running (`/proc/<pid>/task/<tid>/schedstat`).
- `server_wait_ms`: the same for every thread of the embedded server, when the run started it.
- `steal_pct`: CPU steal, share of all cores' time (`/proc/stat`).
- `pressure_pct`: CPU pressure, share of the window in which some task waited for a CPU
  (`/proc/pressure/cpu`, "some").
- `agent_cpu_ms`, `agent_wait_ms`: the CPU time of every thread of the agent's worker and the
  processes under it (its jobs) together, and the longest time one of those threads was
  runnable but not running, when the run started the worker (`schedstat`'s first two fields).
  The longest, not the sum: the agent's dozens of threads each wait a little whenever a core is
  busy (about 150 ms a second together on a quiet 2-core machine, for one conversation), while
  what holds an answer back is one thread (its event loop) kept from running. The monitor also
  notes each of those processes' scheduling policy (`agent_scheduling`): a local agent at
  normal priority competes with every other process, while our capture runs under SCHED_FIFO
  (`pipeline.recording.realtime`).

A figure the kernel does not offer, or that does not apply (no embedded server, no agent worker
of the run's own, a speaker not sending yet), is an empty cell. Reading /proc costs a fraction of
a millisecond a window; it runs in a thread of its own, so the event loop only pays for the 20 ms
lag probe.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from echoproof.aiotasks import AsyncClosing, cancel_and_wait
from echoproof.contract import FRAME_NS
from pipeline.recording.evidence import HOST_COLUMNS, HostWriter

WINDOW_S = 1.0
LAG_PROBE_S = 0.02
_NS_PER_MS = 1e6


@dataclass
class Stalls:
    """One speaker's real-time figures since the monitor last read them (reset on each read)."""

    send_late_ns: int | None = None
    recv_gap_ns: int | None = None
    _first_sent_ns: int | None = field(default=None, repr=False)
    _last_received_ns: int | None = field(default=None, repr=False)

    def sent(self, frame: int, t_ns: int) -> None:
        """Frame `frame` was handed to the SDK at `t_ns`: one subtraction and one compare."""
        if self._first_sent_ns is None:
            self._first_sent_ns = t_ns - frame * FRAME_NS
        late = t_ns - (self._first_sent_ns + frame * FRAME_NS)
        if self.send_late_ns is None or late > self.send_late_ns:
            self.send_late_ns = late

    def received(self, t_ns: int) -> None:
        """The SDK yielded a frame at `t_ns`."""
        last, self._last_received_ns = self._last_received_ns, t_ns
        if last is not None:
            gap = t_ns - last
            if self.recv_gap_ns is None or gap > self.recv_gap_ns:
                self.recv_gap_ns = gap

    def take(self) -> tuple[float | None, float | None]:
        """(send lateness, receive gap) in ms since the last call; None where nothing happened."""
        late, gap = self.send_late_ns, self.recv_gap_ns
        self.send_late_ns = self.recv_gap_ns = None
        return (
            None if late is None else max(late, 0) / _NS_PER_MS,
            None if gap is None else gap / _NS_PER_MS,
        )


class _LoopLag:
    """A 20 ms timer on the event loop; the worst lateness since the last read."""

    def __init__(self) -> None:
        self.worst_ns: int | None = None

    async def run(self) -> None:
        step = int(LAG_PROBE_S * 1e9)
        while True:
            due = time.monotonic_ns() + step
            await asyncio.sleep(LAG_PROBE_S)
            late = time.monotonic_ns() - due
            if self.worst_ns is None or late > self.worst_ns:
                self.worst_ns = late

    def take(self) -> float | None:
        worst, self.worst_ns = self.worst_ns, None
        return None if worst is None else max(worst, 0) / _NS_PER_MS


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as f:
            return f.read()
    except OSError:
        return None


def cpu_times() -> tuple[int, int] | None:
    """(steal, total) jiffies of all cores from /proc/stat's `cpu` line."""
    text = _read("/proc/stat")
    if text is None or not text.startswith("cpu "):
        return None
    fields = [int(x) for x in text.split("\n", 1)[0].split()[1:9]]
    return (fields[7], sum(fields)) if len(fields) == 8 else None


def _pressure_us() -> int | None:
    """Microseconds in which some task waited for a CPU (/proc/pressure/cpu "some" total)."""
    text = _read("/proc/pressure/cpu")
    if text is None:
        return None
    for line in text.splitlines():
        if line.startswith("some "):
            for word in line.split():
                if word.startswith("total="):
                    return int(word[6:])
    return None


def _schedstats(pid: int) -> dict[int, tuple[int, int]] | None:
    """(ns on a CPU, ns runnable but waiting) of every thread of `pid`: schedstat's first two
    fields."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    out: dict[int, tuple[int, int]] = {}
    for tid in tids:
        text = _read(f"/proc/{pid}/task/{tid}/schedstat")
        if text:
            parts = text.split()
            if len(parts) >= 2:
                out[int(tid)] = (int(parts[0]), int(parts[1]))
    return out


def thread_waits(pid: int) -> dict[int, int] | None:
    """Runnable-but-waiting ns of every thread of `pid`."""
    stats = _schedstats(pid)
    return None if stats is None else {tid: wait for tid, (_, wait) in stats.items()}


# /proc/<pid>/stat's policy field, as `os.sched_getscheduler` numbers it.
POLICIES = {0: "normal", 1: "fifo", 2: "rr", 3: "batch", 5: "idle", 6: "deadline"}


def tree(pid: int) -> list[int]:
    """`pid` and every process under it (`/proc/<pid>/task/*/children`); none once it is gone."""
    found: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        found.append(p)
        for tid in tasks:
            todo += [int(c) for c in (_read(f"/proc/{p}/task/{tid}/children") or "").split()]
    return found


def policy(pid: int) -> str | None:
    """The scheduling policy of process `pid` (its main thread), from /proc; None once gone."""
    text = _read(f"/proc/{pid}/stat")
    if text is None:
        return None
    number = int(text.rsplit(")", 1)[1].split()[38])  # the stat file's 41st field
    return POLICIES.get(number, str(number))


def _grown(
    now: Mapping[int, int] | None, before: Mapping[int, int] | None, *, longest: bool = False
) -> float | None:
    """What the threads' ns counters added since `before`, in ms, summed (`longest`: the most
    one thread added); a thread born in the window counts from 0."""
    if now is None or before is None:
        return None
    added = [max(v - before.get(tid, 0), 0) for tid, v in now.items()]
    return (max(added, default=0) if longest else sum(added)) / _NS_PER_MS


class HostMonitor(AsyncClosing):
    """Fills `host.csv` for one conversation while it talks; an `async with` object.

    `writer` is the run folder's host file (its owner closes it); `speakers` maps each role to its
    `Stalls`; `server_pid` is the embedded server's process when the run started it, `agent_pid`
    the agent's worker when the run started it. The lag probe is a task this monitor owns; /proc
    is read by a thread of its own. `aclose()` is safe to call twice and writes the last, partial
    window; `agent_scheduling()` then says how the agent's processes were scheduled.
    """

    def __init__(
        self,
        writer: HostWriter,
        speakers: Mapping[str, Stalls],
        *,
        server_pid: int | None = None,
        agent_pid: int | None = None,
    ) -> None:
        self._writer = writer
        self._speakers = speakers
        self._server_pid = server_pid
        self._agent_pid = agent_pid
        self._agent_policies: set[str] = set()
        self._agent_processes = 0
        self._pid = os.getpid()
        self._loop_tid = threading.get_native_id()
        self._lag = _LoopLag()
        self._probe: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    async def __aenter__(self) -> HostMonitor:
        self.start()
        return self

    def start(self) -> None:
        """Start the lag probe (on the running loop) and the sampling thread."""
        self._probe = asyncio.get_running_loop().create_task(self._lag.run(), name="loop-lag")
        self._thread = threading.Thread(target=self._sample, name="host-monitor", daemon=True)
        self._thread.start()

    async def aclose(self) -> None:
        """Stop sampling and write the last window; safe to call twice."""
        self._stop.set()
        probe, self._probe = self._probe, None
        thread, self._thread = self._thread, None
        try:
            await cancel_and_wait(probe)
        finally:
            if thread is not None:
                thread.join()  # at most one /proc read: the thread saw the stop at once

    def _sample(self) -> None:
        previous = self._snapshot()
        t0 = time.monotonic_ns()
        while True:
            stopping = self._stop.wait(WINDOW_S)
            now = self._snapshot()
            t1 = time.monotonic_ns()
            try:
                self._write(t0, t1, previous, now)
            except ValueError:  # the file was closed under us: the run is over
                return
            previous, t0 = now, t1
            if stopping:
                return

    def agent_scheduling(self) -> dict[str, Any] | None:
        """How the agent's worker and its jobs were scheduled while sampled: `policies` (every
        policy seen: "normal", "fifo", ...) and `processes` (the most at once); None when there
        is no worker of the run's own, or it was never seen."""
        if not self._agent_processes:
            return None
        return {"policies": sorted(self._agent_policies), "processes": self._agent_processes}

    def _snapshot(self) -> _Snapshot:
        return _Snapshot(
            cpu=cpu_times(),
            pressure_us=_pressure_us(),
            capture=thread_waits(self._pid),
            server=None if self._server_pid is None else thread_waits(self._server_pid),
            agent=None if self._agent_pid is None else self._agent_snapshot(self._agent_pid),
        )

    def _agent_snapshot(self, pid: int) -> dict[int, tuple[int, int]] | None:
        """Every thread's (CPU, wait) ns of the agent's processes; their policies noted."""
        pids = tree(pid)
        found: dict[int, tuple[int, int]] = {}
        for p in pids:
            found.update(_schedstats(p) or {})
            if (name := policy(p)) is not None:
                self._agent_policies.add(name)
        self._agent_processes = max(self._agent_processes, len(pids))
        return found if pids else None

    def _write(self, t0: int, t1: int, before: _Snapshot, now: _Snapshot) -> None:
        window_ns = max(t1 - t0, 1)
        row: dict[str, float | None] = {"window_ms": window_ns / _NS_PER_MS}
        for role, stalls in self._speakers.items():
            row[f"{role}_send_late_ms"], row[f"{role}_recv_gap_ms"] = stalls.take()
        row["loop_lag_ms"] = self._lag.take()
        row["capture_wait_ms"] = _grown(now.capture, before.capture)
        tid = self._loop_tid
        row["loop_thread_wait_ms"] = _grown(now.thread(tid), before.thread(tid))
        row["server_wait_ms"] = _grown(now.server, before.server)
        row["agent_cpu_ms"] = _grown(now.agent_field(0), before.agent_field(0))
        row["agent_wait_ms"] = _grown(now.agent_field(1), before.agent_field(1), longest=True)
        row["steal_pct"] = None
        if now.cpu is not None and before.cpu is not None:
            total = now.cpu[1] - before.cpu[1]
            row["steal_pct"] = 100.0 * (now.cpu[0] - before.cpu[0]) / total if total > 0 else 0.0
        row["pressure_pct"] = None
        if now.pressure_us is not None and before.pressure_us is not None:
            waited_ns = (now.pressure_us - before.pressure_us) * 1000
            row["pressure_pct"] = min(100.0, 100.0 * waited_ns / window_ns)
        self._writer.write(t1, [row.get(name) for name in HOST_COLUMNS[1:]])


@dataclass(frozen=True)
class _Snapshot:
    """The cumulative /proc counters at one instant."""

    cpu: tuple[int, int] | None
    pressure_us: int | None
    capture: dict[int, int] | None
    server: dict[int, int] | None
    agent: dict[int, tuple[int, int]] | None

    def thread(self, tid: int) -> dict[int, int] | None:
        """The capture process's counters of one thread."""
        return None if self.capture is None else {tid: self.capture.get(tid, 0)}

    def agent_field(self, i: int) -> dict[int, int] | None:
        """The agent's threads' CPU (`i` 0) or wait (1) counters."""
        return None if self.agent is None else {tid: v[i] for tid, v in self.agent.items()}
