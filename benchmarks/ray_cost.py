"""ray_cost benchmark: what running the conversations as Ray tasks costs, against one machine.

``python -m benchmarks.ray_cost [--quick]``. The same four tone conversations (``python -m
pipeline --pairs 4 --duration D --no-verify`` on the embedded server, which the run starts) run
locally (one worker process each) and on Ray (``--ray auto``, a one-node Ray cluster on this
machine started with ``ray start`` before the trial, not measured, and stopped after it), A/B
interleaved (the order alternates, so that the machine's steal varies over minutes falls on
both alike), ``repeats`` of each. Per trial:

- ``cpu_s``: CPU seconds of every process the trial ran, from the start of ``python -m
  pipeline`` to its end: the driver, the server, the worker processes and, on Ray, Ray's own
  (GCS, raylet, its worker processes; all in one cpuacct cgroup: ``benchmarks._proctree``);
- ``roles``: the same split by kind of process (sampled twice a second: the last half second of
  a process that ended is missed);
- ``latency_median_ms``: the median over the conversations' and directions' mouth-to-ear
  medians (each run folder verified after the trial, outside the measured window);
- ``steal_pct``: CPU steal over the trial (``/proc/stat``), beside each figure, since a steal
  burst raises both CPU and latency;
- ``clean``: every conversation complete and verified.

Figures: each arm's medians (``local``, ``ray``), ``cpu_ratio`` = ray / local (goal <= 1.10),
``latency_added_ms`` = ray - local (goal: none added, within 2 ms), and
``cores_per_conversation``: a conversation's cores while it talks (its worker process, and on
Ray the Ray worker around it; joining, before the start instant, costs more, but happens before
anyone talks), the figure behind ``ray.cpus_per_conversation``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import _proctree
from benchmarks._server import ROOT
from pipeline.cluster.connection import HEALTH_CHECKS

PAIRS = 4
ARMS = ("local", "ray")


def _steal() -> tuple[int, int]:
    """(steal, total) jiffies of all CPUs so far."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return values[7], sum(values[:8])


def _kind(pid: int, cmdline: str) -> str:
    """Which part of a trial a process is (a Ray worker is named for its task while it runs
    one: its last name counts)."""
    if "pipeline.worker" in cmdline:
        return "conversation"
    if "pipeline.server._child" in cmdline:
        return "server"
    if "-m pipeline " in cmdline:
        return "driver"
    if cmdline.startswith("ray::converse"):
        return "ray_task_worker"
    if cmdline.startswith("ray::IDLE") or "default_worker.py" in cmdline:
        return "ray_idle_worker"
    return "ray_own" if "ray" in cmdline else "other"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(work: Path) -> Path:
    path = work / "config.json"
    data = {
        "livekit": {"url": f"ws://127.0.0.1:{_free_port()}", "api_key": "devkey",
                    "api_secret": "secret"},
    }  # fmt: skip
    path.write_text(json.dumps(data))
    return path


def _ray(account: _proctree.CpuAccount, *args: str) -> str:
    """`ray ARGS` from this interpreter's environment, in `account`; its output."""
    ray = Path(sys.executable).with_name("ray")
    done = subprocess.run(
        account.wrap([str(ray), *args]), capture_output=True, text=True, timeout=180, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"ray {' '.join(args)} failed: {(done.stderr or done.stdout)[-500:]}")
    return done.stdout + done.stderr


def _start_ray(account: _proctree.CpuAccount) -> str:
    """A one-node Ray cluster (every core), in `account`; its address. Left idle a few seconds,
    as a cluster that was already there would be."""
    out = _ray(
        account,
        "start", "--head", f"--port={_free_port()}", "--include-dashboard=false",
        "--disable-usage-stats", f"--system-config={json.dumps(HEALTH_CHECKS)}",
    )  # fmt: skip
    match = re.search(r"--address='([^']+)'", out)
    if match is None:
        raise RuntimeError(f"ray start printed no address: {out[-500:]}")
    time.sleep(5)
    return match.group(1)


def _stop_ray() -> None:
    """Stop the cluster `_start_ray` started: its daemons were handed to this process, so they
    are exactly this process's descendants once the trial's run has ended (`ray stop` would end
    every Ray process of the machine, by name)."""
    for sig, wait_s in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 15.0)):
        deadline = time.monotonic() + wait_s
        pids = _proctree.descendants(_proctree.processes(), os.getpid())
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        while time.monotonic() < deadline:
            _proctree.reap()
            if not _proctree.descendants(_proctree.processes(), os.getpid()):
                return
            time.sleep(0.2)


def _trial(
    arm: str, duration_s: float, work: Path, account: _proctree.CpuAccount
) -> dict[str, Any]:
    """One run of the four conversations on `arm`; its figures (see the module docstring)."""
    out = work / f"{arm}-{time.monotonic_ns()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEKIT_")}
    env["PYTHONPATH"] = str(ROOT)
    cmd = [
        sys.executable, "-m", "pipeline", "--config", str(_config(work)), "--pairs", str(PAIRS),
        "--duration", f"{duration_s:g}", "--out", str(out), "--no-verify",
    ]  # fmt: skip
    if arm == "ray":
        env["RAY_ADDRESS"] = _start_ray(account)
        env["RAY_AUTH_MODE"] = "token"  # `ray start` turns on token authentication
        cmd += ["--ray", "auto"]
    try:
        roles = _proctree.Roles(_kind)
        steal0, total0 = _steal()
        cpu0, wall0 = account.usage_s(), time.monotonic()
        roles.start()
        done = subprocess.run(
            account.wrap(cmd), cwd=ROOT, env=env, capture_output=True, text=True,
            timeout=duration_s + 300, check=False,
        )  # fmt: skip
        cpu, wall = account.usage_s() - cpu0, time.monotonic() - wall0
        by_kind = roles.stop()
        steal1, total1 = _steal()
    finally:
        if arm == "ray":
            _stop_ray()
    figures = _latency(out, work)
    if done.returncode != 0:
        figures["failures"].insert(0, f"exit {done.returncode}: {done.stderr[-300:]}")
    return {
        "arm": arm,
        "cpu_s": round(cpu, 2),
        "wall_s": round(wall, 1),
        "steal_pct": round(100 * (steal1 - steal0) / max(1, total1 - total0), 2),
        "roles": by_kind,
        "cores_per_conversation": _talk_cores(roles, out, duration_s),
        **figures,
    }


def _talk_cores(roles: _proctree.Roles, out: Path, duration_s: float) -> float | None:
    """A conversation's cores while talking (its worker process, and on Ray the Ray worker
    running it): from 1 s after the start instant to 1 s before the talk's end."""
    starts = []
    for events in out.glob("*/events.jsonl"):
        for line in events.read_text().splitlines():
            event = json.loads(line)
            if event["event"] == "conversation_started":
                starts.append(int(event["start_ns"]))
    if not starts:
        return None
    t0, t1 = min(starts) + 1_000_000_000, min(starts) + int((duration_s - 1) * 1e9)
    try:
        used = roles.between(("conversation", "ray_task_worker"), t0, t1)
    except ValueError:
        return None
    return round(used / ((t1 - t0) / 1e9) / PAIRS, 3)


def _latency(out: Path, work: Path) -> dict[str, Any]:
    """Verify each run folder; the median of the directions' latency medians, and what failed."""
    import verify

    medians: list[float] = []
    failures: list[str] = []
    runs = sorted(p for p in out.iterdir() if p.is_dir()) if out.is_dir() else []
    for run in runs:
        try:
            result = verify.write_report(run, key_path=work / "signing-key.pem", html=False)
        except verify.VerifyError as exc:
            failures.append(f"{run.name}: {exc}")
            continue
        failures += [f"{run.name}: {f}" for f in result.failures]
        for d in result.report["directions"]:
            median = (d.get("latency_ms") or {}).get("median")
            if isinstance(median, int | float):
                medians.append(float(median))
    if len(runs) != PAIRS:
        failures.append(f"{len(runs)} run folders, expected {PAIRS}")
    return {
        "latency_median_ms": round(statistics.median(medians), 2) if medians else None,
        "clean": not failures,
        "failures": failures[:5],
    }


def _arm_summary(trials: list[dict[str, Any]]) -> dict[str, Any]:
    def median(key: str) -> float | None:
        values = [t[key] for t in trials if isinstance(t.get(key), int | float)]
        return round(statistics.median(values), 3) if values else None

    return {
        "cpu_s": median("cpu_s"),
        "latency_median_ms": median("latency_median_ms"),
        "steal_pct": median("steal_pct"),
        "wall_s": median("wall_s"),
        "cores_per_conversation": median("cores_per_conversation"),
        "clean": all(t["clean"] for t in trials),
        "repeats": len(trials),
    }


def run(quick: bool = False) -> dict[str, Any]:
    """Measure and print a small table; returns the figures (see the module docstring)."""
    if shutil.which("ray", path=str(Path(sys.executable).parent)) is None:
        raise RuntimeError("Ray is not installed here; install the extra echoproof[ray]")
    duration_s, repeats = (10.0, 3) if quick else (20.0, 3)
    _proctree.become_subreaper()
    account = _proctree.CpuAccount(f"echoproof-bench-{os.getpid()}")
    trials: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="echoproof-bench-ray-") as tmp:
            for i in range(repeats):
                for arm in ARMS if i % 2 == 0 else ARMS[::-1]:
                    trial = _trial(arm, duration_s, Path(tmp), account)
                    trials.append(trial)
                    _print_trial(trial)
    finally:
        account.remove()
    arms = {arm: _arm_summary([t for t in trials if t["arm"] == arm]) for arm in ARMS}
    local, ray = arms["local"], arms["ray"]
    results: dict[str, Any] = {
        "duration_s": duration_s,
        "pairs": PAIRS,
        **arms,
        "trials": trials,
        "cores_per_conversation": ray["cores_per_conversation"],
    }
    if local["cpu_s"] and ray["cpu_s"]:
        results["cpu_ratio"] = round(ray["cpu_s"] / local["cpu_s"], 3)
    if local["latency_median_ms"] is not None and ray["latency_median_ms"] is not None:
        results["latency_added_ms"] = round(
            ray["latency_median_ms"] - local["latency_median_ms"], 2
        )
    print(
        f"medians: local {local['cpu_s']} CPU s, {local['latency_median_ms']} ms, steal "
        f"{local['steal_pct']} %; ray {ray['cpu_s']} CPU s, {ray['latency_median_ms']} ms, steal "
        f"{ray['steal_pct']} %; ratio {results.get('cpu_ratio')}, latency added "
        f"{results.get('latency_added_ms')} ms"
    )
    return results


def _print_trial(t: dict[str, Any]) -> None:
    print(
        f"{t['arm']:>5}: {t['cpu_s']:7.2f} CPU s  {t['wall_s']:5.1f} s wall  latency "
        f"{t['latency_median_ms']} ms  steal {t['steal_pct']:.2f} %  "
        f"{'clean' if t['clean'] else 'NOT CLEAN: ' + '; '.join(t['failures'])[:200]}",
        flush=True,
    )
    print(f"       {t['roles']}", flush=True)


if __name__ == "__main__":
    results = run(quick="--quick" in sys.argv[1:])
    print(json.dumps({k: v for k, v in results.items() if k != "trials"}, indent=1))
