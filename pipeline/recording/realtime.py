"""Real time for the send loop while a conversation talks: SCHED_FIFO, a watchdog, a frozen heap.

On a shared machine the send loop (`pipeline.speaker.Speaker.speak`) is late mostly because its
threads wait for a core; real-time scheduling makes that wait negligible (the measurements are
in `docs/realtime.md`). `enter()` (at the start of a talk) puts every thread of the process, the
event loop's and the SDK's, under SCHED_FIFO at the lowest real-time priority, and freezes the
garbage collector's heap, so that no full collection stalls the send loops; `leave()` (at its
end) undoes both before the CPU-heavy verification. A thread that runs RTTIME_SOFT_US without
blocking gets SIGXCPU (RLIMIT_RTTIME), and every thread goes back to normal scheduling: a
real-time thread that spun would take a core from every other process.

Without privilege (no root, CAP_SYS_NICE or RLIMIT_RTPRIO; a cgroup without a real-time budget)
nothing fails: `Realtime.reason` says why, the manifest records it and a warning is logged.
`ECHOPROOF_REALTIME=off` keeps normal scheduling.
"""

from __future__ import annotations

import contextlib
import gc
import os
import resource
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from loguru import logger

ENV = "ECHOPROOF_REALTIME"
# The lowest real-time priority: above every normal thread, below every other real-time one.
PRIORITY = 1
# RLIMIT_RTTIME's soft limit: microseconds a real-time thread may run without blocking before it
# gets SIGXCPU, on which it goes back to normal scheduling (the hard limit is left as it is).
RTTIME_SOFT_US = 200_000


class Realtime:
    """What `enter()` did, for the manifest: `as_dict()`."""

    def __init__(self) -> None:
        self.policy = "normal"
        self.priority = 0
        self.reason: str | None = None
        self.demoted = False
        self.gc_frozen = 0
        self.threads = 0

    def as_dict(self) -> dict[str, Any]:
        """`policy` ("fifo" or "normal"), `priority`, `threads` (how many were put under it when
        the talk started), `reason` (why not fifo, or None), `demoted` (the watchdog ended it
        early), `gc_frozen` (objects frozen)."""
        return {
            "policy": self.policy,
            "priority": self.priority,
            "threads": self.threads,
            "reason": self.reason,
            "demoted": self.demoted,
            "gc_frozen": self.gc_frozen,
        }


def wanted(environ: dict[str, str] | None = None) -> bool:
    """False when `ECHOPROOF_REALTIME` is `off` (or 0, false, no)."""
    env = os.environ if environ is None else environ
    return env.get(ENV, "").strip().lower() not in ("off", "0", "false", "no")


# The conversations of one process share its event loop's thread: the first to start talking
# enters real time, the last to stop leaves it.
_shared: dict[str, Any] = {"depth": 0, "state": None, "restore": None}


def enter() -> Realtime:
    """From now on this thread under SCHED_FIFO (when allowed and wanted), the heap frozen.

    Call `leave()` once for every `enter()`; overlapping talks (several conversations on one
    loop) share one `Realtime`, and the last `leave()` undoes it.
    """
    if _shared["depth"] == 0:
        state = Realtime()
        gc.freeze()
        state.gc_frozen = gc.get_freeze_count()
        if wanted():
            _shared["restore"] = _enter_fifo(state)
            if state.reason is not None:
                logger.warning("the send loop runs without real-time scheduling: {}", state.reason)
        else:
            state.reason = f"{ENV}=off"
        _shared["state"] = state
    _shared["depth"] += 1
    state = _shared["state"]
    assert isinstance(state, Realtime)
    return state


def leave() -> None:
    """Undo `enter()`: normal scheduling and an unfrozen heap once the last talk has ended."""
    if _shared["depth"] == 0:
        return
    _shared["depth"] -= 1
    if _shared["depth"] == 0:
        restore, _shared["restore"], _shared["state"] = _shared["restore"], None, None
        if restore is not None:
            restore()
        gc.unfreeze()


def _enter_fifo(state: Realtime) -> Callable[[], None] | None:
    """SCHED_FIFO for every normal thread of this process, with the watchdog; a function that
    undoes both, or None (and `state.reason`) when it could not."""
    if not hasattr(os, "sched_setscheduler") or not hasattr(resource, "RLIMIT_RTTIME"):
        state.reason = "no SCHED_FIFO on this platform"
        return None
    if threading.current_thread() is not threading.main_thread():
        state.reason = "not the main thread: the watchdog's signal could not reach it"
        return None
    old_limit = resource.getrlimit(resource.RLIMIT_RTTIME)
    hard = old_limit[1]  # kept: a lowered hard limit could not be raised again without privilege
    soft = RTTIME_SOFT_US if hard == resource.RLIM_INFINITY else min(RTTIME_SOFT_US, hard)
    try:
        resource.setrlimit(resource.RLIMIT_RTTIME, (soft, hard))
    except (OSError, ValueError) as exc:
        state.reason = f"could not set RLIMIT_RTTIME ({exc})"
        return None

    def demote(signum: int, frame: FrameType | None) -> None:
        _to_normal()
        if not state.demoted:
            state.demoted = True
            logger.warning(
                "a thread of the capture ran {} ms without blocking; back to normal scheduling",
                RTTIME_SOFT_US // 1000,
            )

    old_handler = signal.signal(signal.SIGXCPU, demote)

    def restore() -> None:
        _to_normal()
        signal.signal(signal.SIGXCPU, old_handler)
        with contextlib.suppress(OSError, ValueError):
            resource.setrlimit(resource.RLIMIT_RTTIME, old_limit)

    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(PRIORITY))
    except OSError as exc:
        restore()
        state.reason = (
            f"SCHED_FIFO not permitted ({exc.strerror}): needs root, CAP_SYS_NICE or "
            "RLIMIT_RTPRIO, and a real-time budget in the CPU cgroup"
        )
        return None
    state.threads = 1
    for tid in thread_ids():
        if tid == threading.get_native_id():
            continue
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            if os.sched_getscheduler(tid) == os.SCHED_OTHER:
                os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(PRIORITY))
                state.threads += 1
    state.policy, state.priority = "fifo", PRIORITY
    return restore


def thread_ids() -> list[int]:
    """Every thread of this process (only the calling one, 0, where /proc is not available)."""
    try:
        return sorted(int(p.name) for p in Path("/proc/self/task").iterdir())
    except OSError:
        return [0]


def _to_normal() -> None:
    """Every thread of this process at SCHED_FIFO PRIORITY back to SCHED_OTHER (its nice value
    is kept), threads started while talking included: they inherited the policy."""
    for tid in thread_ids():
        with contextlib.suppress(OSError):
            if (
                os.sched_getscheduler(tid) == os.SCHED_FIFO
                and os.sched_getparam(tid).sched_priority == PRIORITY
            ):
                os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
