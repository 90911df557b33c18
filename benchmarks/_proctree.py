"""CPU of every process a benchmark started, however deep and however short-lived: the benchmark
becomes a child subreaper (a process whose parent dies is handed to it, not to init), so a daemon
that `ray start` leaves behind, or a worker whose parent was killed, stays in its tree.

`tree_cpu_s()` is the CPU time of that whole tree so far: each live descendant's own time plus
what it reaped (its children's time), and what the benchmark itself reaped. A process that ends
moves its time into its reaper's, so the sum only grows; the difference between two readings is
what the tree used in between. `Roles` samples the live processes twice a second and adds up
each kind's own time (the last reading of a process that ended is kept).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
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


def tree_cpu_s() -> float:
    """CPU s of every process under this one so far, ended ones included (not this one's own)."""
    mine = os.times()
    stats = processes()
    under = sum(stats[p][1] + stats[p][2] for p in descendants(stats, os.getpid()))
    return under + mine.children_user + mine.children_system


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
        totals: dict[str, float] = {}
        for pid, (kind, own) in self._last.items():
            totals[kind] = totals.get(kind, 0.0) + own - self._base.get(pid, 0.0)
        return {k: round(v, 2) for k, v in sorted(totals.items())}

    def _loop(self) -> None:
        while not self._done.wait(0.5):
            self._sample()

    def _sample(self) -> None:
        stats = processes()
        for pid in descendants(stats, os.getpid()):
            kind = self._last[pid][0] if pid in self._last else self._classify(pid, _cmdline(pid))
            self._last[pid] = (kind, stats[pid][1])
