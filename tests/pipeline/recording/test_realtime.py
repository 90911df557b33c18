"""pipeline.recording.realtime: SCHED_FIFO while talking, its watchdog, the frozen heap, and why
not."""

from __future__ import annotations

import gc
import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from pipeline.recording import realtime

ROOT = Path(__file__).resolve().parents[3]
# Whether this process may use SCHED_FIFO at all (root, CAP_SYS_NICE or RLIMIT_RTPRIO).
try:
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    CAN_FIFO = True
except (OSError, AttributeError):
    CAN_FIFO = False
needs_fifo = pytest.mark.skipif(not CAN_FIFO, reason="SCHED_FIFO is not permitted here")


def _in_child(code: str, **env: str) -> dict[str, Any]:
    """Run `code` in a fresh interpreter, so this one keeps its scheduling; its last JSON line."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


_TALK = """
    import gc, json, os
    from pipeline.recording import realtime
    state = realtime.enter()
    during = {"policy": os.sched_getscheduler(0), "frozen": gc.get_freeze_count()}
    realtime.leave()
    after = {"policy": os.sched_getscheduler(0), "frozen": gc.get_freeze_count()}
    print(json.dumps({"state": state.as_dict(), "during": during, "after": after}))
"""


@needs_fifo
def test_talking_runs_under_fifo_then_normal() -> None:
    """The thread is SCHED_FIFO at the lowest priority while talking, normal after."""
    r = _in_child(_TALK)
    assert r["state"]["policy"] == "fifo" and r["state"]["priority"] == realtime.PRIORITY
    assert r["state"]["threads"] >= 1
    assert r["state"]["reason"] is None and r["state"]["demoted"] is False
    assert r["during"]["policy"] == os.SCHED_FIFO
    assert r["after"]["policy"] == os.SCHED_OTHER


@needs_fifo
def test_every_thread_is_put_under_fifo_and_back() -> None:
    """The SDK's threads too: one started before the talk and one started during it."""
    r = _in_child(
        """
        import json, os, threading
        from pipeline.recording import realtime
        tids, go = [], threading.Event()
        def run():
            tids.append(threading.get_native_id()); go.wait()
        before = threading.Thread(target=run); before.start()
        while not tids: pass
        state = realtime.enter()
        during = threading.Thread(target=run); during.start()
        while len(tids) < 2: pass
        policies = [os.sched_getscheduler(t) for t in tids]
        realtime.leave()
        after = [os.sched_getscheduler(t) for t in tids]
        go.set(); before.join(); during.join()
        print(json.dumps({"threads": state.threads, "during": policies, "after": after}))
        """
    )
    assert r["threads"] >= 2
    assert r["during"] == [os.SCHED_FIFO, os.SCHED_FIFO]
    assert r["after"] == [os.SCHED_OTHER, os.SCHED_OTHER]


def test_the_heap_is_frozen_while_talking() -> None:
    """gc.freeze() at the start of a talk, unfrozen after; the manifest counts what was frozen."""
    r = _in_child(_TALK, ECHOPROOF_REALTIME="off")
    assert r["during"]["frozen"] > 1000 and r["state"]["gc_frozen"] == r["during"]["frozen"]
    assert r["after"]["frozen"] == 0


def test_off_keeps_normal_scheduling() -> None:
    """ECHOPROOF_REALTIME=off: normal scheduling, and the manifest says why."""
    r = _in_child(_TALK, ECHOPROOF_REALTIME="off")
    assert r["state"]["policy"] == "normal"
    assert r["state"]["reason"] == "ECHOPROOF_REALTIME=off"
    assert r["during"]["policy"] == os.SCHED_OTHER


def test_wanted_reads_the_environment() -> None:
    """Only off, 0, false or no turn real-time scheduling off."""
    assert realtime.wanted({})
    assert realtime.wanted({realtime.ENV: "on"})
    for text in ("off", "0", "False", " no "):
        assert not realtime.wanted({realtime.ENV: text})


def test_not_permitted_is_reported_and_undone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without privilege: no exception, the reason, and the limit and handler put back."""

    def refuse(pid: int, policy: int, param: Any) -> None:
        if policy == os.SCHED_FIFO:
            raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(realtime.os, "sched_setscheduler", refuse)
    monkeypatch.delenv(realtime.ENV, raising=False)
    limit = resource.getrlimit(resource.RLIMIT_RTTIME)
    handler = signal.getsignal(signal.SIGXCPU)
    frozen = gc.get_freeze_count()
    try:
        state = realtime.enter()
        assert state.policy == "normal"
        assert state.reason is not None and "not permitted" in state.reason
        assert resource.getrlimit(resource.RLIMIT_RTTIME) == limit
        assert signal.getsignal(signal.SIGXCPU) == handler
    finally:
        realtime.leave()
    assert gc.get_freeze_count() == frozen


def test_another_thread_is_refused() -> None:
    """Only the main thread can take the watchdog's signal: elsewhere, normal scheduling."""
    states: list[realtime.Realtime] = []

    def talk() -> None:
        states.append(realtime.enter())
        realtime.leave()

    t = threading.Thread(target=talk)
    t.start()
    t.join()
    assert states[0].policy == "normal"
    assert states[0].reason is not None and "main thread" in states[0].reason


@needs_fifo
def test_overlapping_talks_share_one_state() -> None:
    """Two conversations on one loop: real time ends with the last of them."""
    r = _in_child(
        """
        import json, os
        from pipeline.recording import realtime
        a, b = realtime.enter(), realtime.enter()
        realtime.leave()
        still = os.sched_getscheduler(0)
        realtime.leave()
        realtime.leave()  # one too many: harmless
        print(json.dumps({"same": a is b, "still": still, "after": os.sched_getscheduler(0)}))
        """
    )
    assert r == {"same": True, "still": os.SCHED_FIFO, "after": os.SCHED_OTHER}


@needs_fifo
def test_a_spinning_loop_is_put_back_to_normal() -> None:
    """The watchdog: a thread that runs past RLIMIT_RTTIME's soft limit leaves SCHED_FIFO."""
    r = _in_child(
        """
        import json, os, time
        from pipeline.recording import realtime
        state = realtime.enter()
        end = time.monotonic() + 3 * realtime.RTTIME_SOFT_US / 1e6
        while time.monotonic() < end and not state.demoted:
            pass  # never blocks
        policy = os.sched_getscheduler(0)
        realtime.leave()
        print(json.dumps({"demoted": state.demoted, "policy": policy}))
        """
    )
    assert r == {"demoted": True, "policy": os.SCHED_OTHER}
