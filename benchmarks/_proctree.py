"""CPU of every process a benchmark started, however deep and however short-lived.

`CpuAccount` is a cgroup of the cpuacct controller: a command started through `wrap()` and all
it ever starts are in it, and the kernel counts their CPU exactly, ended processes included
(a process's parent's `cutime` would miss the children Ray's raylet reaps with SIGCHLD ignored).
The benchmark becomes a child subreaper (a process whose parent dies is handed to it, not to
init), so the daemons `ray start` leaves behind are its descendants, and it can end exactly
those. `Roles` samples the live descendants twice a second and adds up each kind's own time (the
last reading of a process that ended is kept: its last half second is missed), for the split.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

_PR_SET_CHILD_SUBREAPER = 36
_TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def become_subreaper() -> None:
    """Orphaned descendants are handed to this process (Linux 3.4+)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def reap() -> None:
    """Collect every descendant that has exited and was handed to this process."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] != 0:
            pass


def processes() -> dict[int, tuple[int, float, float]]:
    """Every process: pid -> (parent pid, own CPU s, reaped children's CPU s)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        ppid = int(fields[1])
        own = (int(fields[11]) + int(fields[12])) * _TICK_S
        reaped = (int(fields[13]) + int(fields[14])) * _TICK_S
        out[int(entry.name)] = (ppid, own, reaped)
    return out


def descendants(stats: dict[int, tuple[int, float, float]], root: int) -> set[int]:
    """The pids under `root` (not `root` itself)."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


class CpuAccount:
    """A cpuacct cgroup of its own (root, cgroup v1 or the v2 `cpu.stat`); `usage_s()` its CPU
    seconds so far. `remove()` is safe twice."""

    def __init__(self, name: str) -> None:
        self.path: Path | None = None
        for root, usage in (("/sys/fs/cgroup/cpuacct", "cpuacct.usage"),
                            ("/sys/fs/cgroup/unified", "cpu.stat"),
                            ("/sys/fs/cgroup", "cpu.stat")):  # fmt: skip
            path = Path(root) / name
            try:
                path.mkdir(exist_ok=True)
            except OSError:
                continue
            if (path / usage).exists():
                self.path, self._usage = path, usage
                return
            with contextlib.suppress(OSError):
                path.rmdir()
        raise OSError("no writable cgroup with CPU accounting (needs root)")

    def wrap(self, cmd: list[str]) -> list[str]:
        """`cmd`, run inside the cgroup from its first instruction on."""
        assert self.path is not None
        script = 'echo $$ > "$0/cgroup.procs" && exec "$@"'
        return ["sh", "-c", script, str(self.path), *cmd]

    def usage_s(self) -> float:
        """CPU seconds of every process that was in the cgroup."""
        assert self.path is not None
        text = (self.path / self._usage).read_text()
        if self._usage == "cpuacct.usage":
            return int(text) / 1e9
        fields = dict(line.split() for line in text.splitlines())
        return int(fields["usage_usec"]) / 1e6

    def remove(self) -> None:
        """Remove the (empty) cgroup; safe to call twice."""
        path, self.path = self.path, None
        if path is not None:
            with contextlib.suppress(OSError):
                path.rmdir()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (FileNotFoundError, ProcessLookupError):
        return ""


class Roles:
    """Own CPU s of each kind of process under this one, sampled twice a second from `start()`
    to `stop()`; `classify(pid, cmdline)` names a process's kind."""

    def __init__(self, classify: Callable[[int, str], str]) -> None:
        self._classify = classify
        self._base: dict[int, float] = {}
        self._last: dict[int, tuple[str, float]] = {}
        self.timeline: list[tuple[int, dict[str, float]]] = []  # (monotonic ns, totals)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="roles", daemon=True)

    def start(self) -> None:
        stats = processes()
        self._base = {p: stats[p][1] for p in descendants(stats, os.getpid())}
        self._thread.start()

    def stop(self) -> dict[str, float]:
        """Each kind's CPU s since `start()`."""
        self._done.set()
        self._thread.join()
        self._sample()
        return {k: round(v, 2) for k, v in sorted(self._totals().items())}

    def between(self, kinds: tuple[str, ...], t0_ns: int, t1_ns: int) -> float:
        """CPU s the `kinds` used from monotonic `t0_ns` to `t1_ns` (samples interpolated)."""

        def at(t_ns: int) -> float:
            points = [(t, sum(totals.get(k, 0.0) for k in kinds)) for t, totals in self.timeline]
            for (ta, a), (tb, b) in itertools.pairwise(points):
                if ta <= t_ns <= tb:
                    return a + (b - a) * (t_ns - ta) / max(1, tb - ta)
            raise ValueError("that instant is outside the sampled time")

        return at(t1_ns) - at(t0_ns)

    def _totals(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for pid, (kind, own) in self._last.items():
            totals[kind] = totals.get(kind, 0.0) + own - self._base.get(pid, 0.0)
        return totals

    def _loop(self) -> None:
        while not self._done.wait(0.5):
            self._sample()

    def _sample(self) -> None:
        stats = processes()
        for pid in descendants(stats, os.getpid()):
            cmdline = _cmdline(pid)
            kind = self._classify(pid, cmdline) if cmdline else self._last.get(pid, ("", 0))[0]
            self._last[pid] = (kind, stats[pid][1])
        self.timeline.append((time.monotonic_ns(), self._totals()))
