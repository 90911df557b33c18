"""Many callers against one agent: how many one worker serves, what our caller costs against the
bare SDK's, and what our real-time scheduling does to a local agent on a busy machine.

``python -m benchmarks.callers [--quick]``. The agent is the example agent
(``examples/reply_agent.py``: it answers each turn with a tone 200 ms after 300 ms of silence) in
livekit-agents' own Python (``ECHOPROOF_AGENT_PYTHON``, else ``.nox/agent-env``, which ``nox -s
agent-env`` makes); without one the area says so and measures nothing. Every caller says the
Customer's tone burst with an answer window of ``WINDOW_S``. Beside every timing, the CPU steal
of its span (``/proc/stat``).

- ``capacity``: ``python -m pipeline --agent echoproof-reply --agent-cmd ... --pairs N`` (the run
  starts the worker once, for every caller; each caller in a worker process of its own), for
  N = 1, 2, 4, 6, ... upward, each N ``repeats`` times (quick: once; full: 3 times) of
  ``duration_s`` (20 s; 40 s). Per run the p95 of every turn's response over all its callers,
  from the signed reports, an unanswered turn counting as the whole answer window; per N the
  p95 over every turn of its repeats. N is served when every run completed and its p95 is within
  ``MARGIN_MS`` (50 ms) of one caller's; ``capacity_callers`` is the largest N served before the
  first that is not.
- ``cost``: one embedded server and one worker of the example agent, started here; then, in the
  same run, our caller (``python -m pipeline --agent ... --pairs 1 --no-verify``: the Customer,
  its recording and evidence, the host monitor) and a bare-SDK caller doing the same audio
  (``benchmarks._bare_sdk --agent``: dispatch, the same turns, a preallocated recording, under
  SCHED_FIFO as the capture is) side by side against that worker, ``repeats`` times (quick: 1;
  full: 3), which starts first taking turns. Each side's CPU (utime+stime of its process, every
  thread) over its audio (from 2 s after its first frame to 1 s before its last), per second of
  audio; ``overhead_ratio`` = the median over repeats of ours / the bare SDK's. Goal <= 1.2.
- ``scheduling``: with two busy-looping processes as load, ``python -m pipeline --agent ...
  --agent-cmd ...`` (one caller) with our capture under SCHED_FIFO (the default) and with
  ``ECHOPROOF_REALTIME=off``, taking turns, ``repeats`` each (quick: 1; full: 3): per arm the
  medians of the agent's response median and p95, the longest wait of one of its threads
  (``agent_wait_ms``, p99 of the run's windows), its CPU and our sender's lateness p99.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._runs import API_KEY, API_SECRET, exit_status, hogs, pipeline_run, remove
from benchmarks._server import cpu_seconds, sfu_server
from pipeline.recording.host import cpu_times

ROOT = Path(__file__).resolve().parent.parent
AGENT = "echoproof-reply"
REPLY_AGENT = ROOT / "examples" / "reply_agent.py"
WINDOW_S = 2.0  # a caller's answer window: a turn every 2.3 s
MARGIN_MS = 50.0
GOALS = {"overhead_ratio": 1.2}
LADDER_MAX = 16
SAMPLE_S = 0.2
REGISTER_S = 120.0
# (when, the process's CPU seconds, the machine's (steal, total) jiffies)
Sample = tuple[float, float, tuple[int, int] | None]


def agent_python() -> str | None:
    """livekit-agents' own Python: `ECHOPROOF_AGENT_PYTHON`, else `.nox/agent-env`; None."""
    configured = os.environ.get("ECHOPROOF_AGENT_PYTHON", "")
    python = Path(configured) if configured else ROOT / ".nox" / "agent-env" / "bin" / "python"
    return str(python) if python.is_file() and os.access(python, os.X_OK) else None


@contextlib.contextmanager
def steal() -> Iterator[dict[str, float | None]]:
    """CPU steal over the block, in % of every core's time: `["pct"]` once it is over."""
    found: dict[str, float | None] = {"pct": None}
    before = cpu_times()
    yield found
    after = cpu_times()
    if before is not None and after is not None and after[1] > before[1]:
        found["pct"] = round(100 * (after[0] - before[0]) / (after[1] - before[1]), 2)


def _agent_block(python: str, *, cmd: bool = True) -> dict[str, Any]:
    block: dict[str, Any] = {"name": AGENT, "answer_window_s": WINDOW_S}
    if cmd:
        block["cmd"] = f"{python} {REPLY_AGENT} start"
    return block


def _percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def _median(values: list[Any]) -> float | None:
    known = [v for v in values if isinstance(v, int | float)]
    return round(statistics.median(known), 2) if known else None


# -- capacity --------------------------------------------------------------------------------------


def _callers_run(
    python: str, n: int, duration_s: float, work: Path, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """One `python -m pipeline --agent ... --pairs n` run; its figures from the signed reports
    (`reports`: the reports themselves)."""
    out = work / f"callers-{n}-{time.monotonic_ns()}"
    with steal() as stolen:
        run = pipeline_run({"pairs": n, "agent": _agent_block(python)}, duration_s, out, work, env)
    reports = [
        json.loads((d / "report.json").read_text())
        for d in sorted(out.iterdir())
        if (d / "report.json").is_file()
    ]
    remove(out)
    # an unanswered turn: its caller waited the whole window (and more) for nothing
    responses = [
        t["response_ms"] if t["state"] == "answered" else 1000 * WINDOW_S
        for r in reports
        for t in r["conversation"]["turns"]
    ]
    return {
        "callers": n,
        "status": exit_status(run.returncode),
        "complete": sum(r["status"] == "complete" for r in reports),
        "turns_sent": sum(r["conversation"]["turns_sent"] for r in reports),
        "unanswered": sum(r["conversation"]["turns_unanswered"] for r in reports),
        "response_median_ms": _percentile(responses, 50),
        "response_p95_ms": _percentile(responses, 95),
        "steal_pct": stolen["pct"],
        "wall_s": run.wall_s,
        "reports": reports,
        "responses": responses,
    }


def capacity(python: str, duration_s: float, repeats: int, work: Path) -> dict[str, Any]:
    """The ladder of caller counts (see the module docstring)."""
    levels: dict[str, Any] = {}
    reference: float | None = None
    served, n = 0, 1
    while n <= LADDER_MAX:
        runs = [_callers_run(python, n, duration_s, work) for _ in range(repeats)]
        # Over every turn of every repeat: one run's p95 of a caller's 16 turns is nearly its
        # slowest turn, and a median of two such figures moved by 300 ms between sessions.
        pooled = [x for r in runs for x in r.pop("responses")]
        for r in runs:
            del r["reports"]
        p95 = _percentile(pooled, 95)
        if n == 1:
            reference = p95
        ok = (
            all(r["complete"] == n for r in runs)
            and p95 is not None
            and reference is not None
            and p95 <= reference + MARGIN_MS
        )
        levels[str(n)] = {"p95_ms": p95, "served": ok, "runs": runs}
        print(f"  {n:3d} callers: p95 {p95} ms, {'served' if ok else 'NOT served'}", flush=True)
        if not ok:
            break
        served, n = n, (2 if n == 1 else n + 2)
    return {
        "duration_s": duration_s,
        "repeats": repeats,
        "reference_p95_ms": reference,
        "p95_limit_ms": None if reference is None else reference + MARGIN_MS,
        "capacity_callers": served,
        "levels": levels,
    }


# -- cost ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _worker(python: str, url: str, log: Path) -> Iterator[None]:
    """The example agent's worker on `url`, registered; stopped after the block."""
    env = {**os.environ, "LIVEKIT_URL": url, "LIVEKIT_API_KEY": API_KEY,
           "LIVEKIT_API_SECRET": API_SECRET, "LIVEKIT_AGENT_NAME": AGENT}  # fmt: skip
    with log.open("w") as out:
        proc = subprocess.Popen(
            [python, str(REPLY_AGENT), "start"], cwd=ROOT, env=env, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + REGISTER_S
        while "registered worker" not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the example agent did not register; see {log}")
            time.sleep(0.2)
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)  # livekit-agents' own shutdown
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _side_by_side(
    sides: dict[str, tuple[list[str], Callable[[], bool]]], duration_s: float, work: Path
) -> dict[str, dict[str, Any]]:
    """Run every side's command at once, in the given order; each one's CPU per second of its
    audio (its `audio_started()` marks the start) and the steal over it."""
    procs: dict[str, subprocess.Popen[bytes]] = {}
    samples: dict[str, list[Sample]] = {name: [] for name in sides}
    audio_at: dict[str, float | None] = dict.fromkeys(sides)
    for name, (command, _) in sides.items():
        with (work / f"{name}.log").open("w") as log:
            procs[name] = subprocess.Popen(
                command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
    started = time.monotonic()
    try:
        while any(p.poll() is None for p in procs.values()):
            if time.monotonic() - started > 1.1 * duration_s + 60:
                raise RuntimeError("a caller ran over its time")
            now = time.monotonic()
            for name, proc in procs.items():
                if proc.poll() is None:
                    samples[name].append((now, cpu_seconds(proc.pid), cpu_times()))
                if audio_at[name] is None and sides[name][1]():
                    audio_at[name] = now
            time.sleep(SAMPLE_S)
    finally:
        for proc in procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # what is left of its process group
            proc.wait()
    return {name: _window(samples[name], audio_at[name], duration_s) for name in sides}


def _window(samples: list[Sample], audio_at: float | None, duration_s: float) -> dict[str, Any]:
    """Cores used from 2 s after the audio started to 1 s before it ended, and the steal then."""
    if audio_at is None or not samples:
        return {"cores": None, "steal_pct": None}
    t = np.array([s[0] for s in samples])
    lo, hi = audio_at + 2.0, min(audio_at + duration_s - 1.0, float(t[-1]))
    if hi - lo < 1.0:
        return {"cores": None, "steal_pct": None}
    cpu = np.interp([lo, hi], t, [s[1] for s in samples])
    inside = [s[2] for s in samples if lo <= s[0] <= hi and s[2] is not None]
    stolen = None
    if len(inside) >= 2 and inside[-1][1] > inside[0][1]:
        stolen = round(100 * (inside[-1][0] - inside[0][0]) / (inside[-1][1] - inside[0][1]), 2)
    return {"cores": round(float(cpu[1] - cpu[0]) / (hi - lo), 4), "steal_pct": stolen}


def cost(python: str, duration_s: float, repeats: int, work: Path) -> dict[str, Any]:
    """Our caller's CPU against a bare-SDK caller's, side by side (see the module docstring)."""
    trials = []
    server = sfu_server(API_KEY, API_SECRET)
    with server as (url, _), _worker(python, url, work / "agent-worker.log"):
        config = work / "callers-config.json"
        livekit = {"url": url, "api_key": API_KEY, "api_secret": API_SECRET}
        agent = _agent_block(python, cmd=False)
        config.write_text(json.dumps({"livekit": livekit, "agent": agent, "connect_timeout_s": 60}))
        for k in range(repeats):
            out, marker, said = work / f"ours-{k}", work / f"bare-{k}.started", work / "bare.json"
            ours = [sys.executable, "-m", "pipeline", "--config", str(config), "--out", str(out),
                    "--duration", f"{duration_s:g}", "--no-verify"]  # fmt: skip
            bare = [sys.executable, "-m", "benchmarks._bare_sdk", "--url", url, "--api-key",
                    API_KEY, "--api-secret", API_SECRET, "--duration", f"{duration_s:g}",
                    "--marker", str(marker), "--summary", str(said), "--fifo", "--agent", AGENT,
                    "--window", f"{WINDOW_S:g}"]  # fmt: skip

            def ours_started(out: Path = out) -> bool:
                return any(p.stat().st_size > 200 for p in out.glob("*/customer.sent.csv"))

            sides = {"ours": (ours, ours_started), "bare": (bare, marker.exists)}
            if k % 2:
                sides = dict(reversed(sides.items()))
            found = _side_by_side(sides, duration_s, work)
            if said.is_file():  # that the agent answered the bare caller too: the same work
                summary = json.loads(said.read_text())
                found["bare"]["turns"] = [summary["turns_answered"][0], summary["turns_sent"]]
            remove(out)
            trials.append(found)
            print(f"  repeat {k + 1}: {json.dumps(found)}", flush=True)
    ratios = [
        t["ours"]["cores"] / t["bare"]["cores"]
        for t in trials
        if t["ours"]["cores"] and t["bare"]["cores"]
    ]
    return {
        "duration_s": duration_s,
        "repeats": repeats,
        "ours_cores_per_caller": _median([t["ours"]["cores"] for t in trials]),
        "bare_cores_per_caller": _median([t["bare"]["cores"] for t in trials]),
        "overhead_ratio": round(statistics.median(ratios), 3) if ratios else None,
        "overhead_ratios": [round(r, 3) for r in ratios],
        "steal_pct": _median([t["ours"]["steal_pct"] for t in trials]),
        "trials": trials,
    }


# -- scheduling ------------------------------------------------------------------------------------


def _host_figures(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """The agent's wait and CPU, and our sender's lateness, from the report's host block."""
    figures = reports[0]["host"]["figures"] if reports else {}

    def p99(name: str) -> float | None:
        value = figures.get(name)
        return None if value is None else value["p99"]

    return {
        "agent_wait_p99_ms": p99("agent_wait_ms"),
        "agent_cpu_p99_ms": p99("agent_cpu_ms"),
        "send_late_p99_ms": p99("customer_send_late_ms"),
    }


def scheduling(python: str, duration_s: float, repeats: int, work: Path) -> dict[str, Any]:
    """Our capture under SCHED_FIFO against normal scheduling, a local agent at normal priority,
    two busy loops beside (see the module docstring)."""
    arms: dict[str, list[dict[str, Any]]] = {"fifo": [], "normal": []}
    with hogs(2):
        for k in range(repeats):
            for arm in ("fifo", "normal") if k % 2 == 0 else ("normal", "fifo"):
                env = {"ECHOPROOF_REALTIME": "off"} if arm == "normal" else {}
                run = _callers_run(python, 1, duration_s, work, env=env)
                reports = run.pop("reports")
                del run["responses"]
                run.update(_host_figures(reports))
                run["realtime"] = reports[0]["host"]["scheduling"] if reports else None
                arms[arm].append(run)
                print(f"  {arm}: {json.dumps(run)[:300]}", flush=True)
    keys = ("response_median_ms", "response_p95_ms", "agent_wait_p99_ms", "agent_cpu_p99_ms",
            "send_late_p99_ms", "steal_pct")  # fmt: skip
    return {
        "duration_s": duration_s,
        "repeats": repeats,
        **{arm: {k: _median([r[k] for r in runs]) for k in keys} for arm, runs in arms.items()},
        "runs": arms,
    }


def run(quick: bool = False) -> dict[str, Any]:
    """Every figure of the area (see the module docstring); prints them."""
    python = agent_python()
    if python is None:
        print("no Python with livekit-agents (nox -s agent-env, or ECHOPROOF_AGENT_PYTHON)")
        return {"skipped": "no Python with livekit-agents"}
    with tempfile.TemporaryDirectory(prefix="echoproof-bench-callers-") as tmp:
        work = Path(tmp)
        print("capacity:", flush=True)
        found = capacity(python, 20.0 if quick else 40.0, 1 if quick else 3, work)
        print("cost:", flush=True)
        costs = cost(python, 15.0 if quick else 30.0, 1 if quick else 3, work)
        print("scheduling (two busy loops beside):", flush=True)
        sched = scheduling(python, 20.0 if quick else 30.0, 1 if quick else 3, work)
    results = {
        "capacity_callers": found["capacity_callers"],
        "capacity": found,
        "cost": costs,
        "scheduling": sched,
        "goals": GOALS,
    }
    _print(results)
    return results


def _print(r: dict[str, Any]) -> None:
    print(f"{'callers':>8} {'p95 ms (every turn)':>28} {'served':>7} {'steal %':>8}")
    for n, level in r["capacity"]["levels"].items():
        stolen = _median([x["steal_pct"] for x in level["runs"]])
        print(f"{n:>8} {level['p95_ms']!s:>28} {level['served']!s:>7} {stolen!s:>8}")
    c = r["cost"]
    print(
        f"our caller {c['ours_cores_per_caller']} cores, bare SDK {c['bare_cores_per_caller']}: "
        f"ratio {c['overhead_ratio']} (goal <= {GOALS['overhead_ratio']}), steal {c['steal_pct']} %"
    )
    s = r["scheduling"]
    for arm in ("fifo", "normal"):
        print(f"capture {arm:>6}: {json.dumps(s[arm])}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.callers", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter runs, one repeat")
    print(json.dumps(run(quick=parser.parse_args().quick), indent=1, default=str)[:4000])
