"""pipeline benchmark: CPU per conversation and how many conversations run clean at once.

``python -m benchmarks.pipeline [--quick]``. Each measurement starts the embedded server in a
subprocess (``python -m echoproof.sfu``) so that this process's CPU is the capture stage's own
(two agents
per conversation, the SDK's threads included), runs ``pipeline.capture`` with ``--pairs N`` for
a fixed duration, then verifies every run folder (outside the timed window). Figures:

- ``pairs_<N>.cpu_s_per_conversation_minute``: process CPU seconds (``time.process_time``, all
  threads) over the whole capture (joining included) / (N x duration in minutes); the median over
  repeats for N = 1. ``server_cpu_s_per_conversation_minute``: the same for the server process.
- ``pairs_<N>.ratio_vs_1``: the figure above against N = 1, measured in this same process.
- ``pairs_<N>.clean``: every conversation complete and verified (``verify.write_report`` passed).
- ``largest_clean_pairs``: the largest N tried whose run was clean (full mode tries N = 1, 2, 4,
  6, 8 and stops at the first that is not; quick mode runs N = 1 only).
"""

from __future__ import annotations

import asyncio
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import verify
from benchmarks._server import cpu_seconds, quiet_logs, sfu_process
from pipeline import capture
from pipeline.config import from_dict


async def _measure(pairs: int, duration_s: float, work: Path) -> dict[str, Any]:
    """One capture of `pairs` conversations; CPU of this process and of the server."""
    out = work / f"pairs{pairs}-{time.monotonic_ns()}"
    async with sfu_process() as (url, pid):
        config = from_dict(
            {
                "livekit": {"url": url, "api_key": "devkey", "api_secret": "secret"},
                "duration_s": duration_s,
                "pairs": pairs,
                "out_dir": str(out),
            }
        )
        server0 = cpu_seconds(pid)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        outcomes = await capture(config, live_stream=io.StringIO())
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        server_cpu = cpu_seconds(pid) - server0
    failures: list[str] = []
    for o in outcomes:
        if o.status != "complete":
            failures.append(f"{o.run_id}: {o.status} ({o.reason})")
            continue
        result = verify.write_report(o.run_dir, key_path=work / "signing-key.pem", html=False)
        failures += [f"{o.run_id}: {f}" for f in result.failures]
    minutes = pairs * duration_s / 60
    return {
        "cpu_s": cpu,
        "wall_s": wall,
        "server_cpu_s": server_cpu,
        "cpu_s_per_conversation_minute": cpu / minutes,
        "server_cpu_s_per_conversation_minute": server_cpu / minutes,
        "clean": not failures,
        "failures": failures[:5],
    }


async def _run(quick: bool, work: Path) -> dict[str, Any]:
    duration_s = 8.0 if quick else 20.0
    repeats = 1 if quick else 3
    base_runs = [await _measure(1, duration_s, work) for _ in range(repeats)]
    base = statistics.median(r["cpu_s_per_conversation_minute"] for r in base_runs)
    base_server = statistics.median(r["server_cpu_s_per_conversation_minute"] for r in base_runs)
    results: dict[str, Any] = {
        "duration_s": duration_s,
        "pairs_1": {
            "cpu_s_per_conversation_minute": round(base, 3),
            "server_cpu_s_per_conversation_minute": round(base_server, 3),
            "ratio_vs_1": 1.0,
            "clean": all(r["clean"] for r in base_runs),
            "repeats": repeats,
        },
    }
    largest = 1 if results["pairs_1"]["clean"] else 0
    if not quick and largest:
        for n in (2, 4, 6, 8):
            r = await _measure(n, duration_s, work)
            results[f"pairs_{n}"] = {
                "cpu_s_per_conversation_minute": round(r["cpu_s_per_conversation_minute"], 3),
                "server_cpu_s_per_conversation_minute": round(
                    r["server_cpu_s_per_conversation_minute"], 3
                ),
                "ratio_vs_1": round(r["cpu_s_per_conversation_minute"] / base, 3),
                "clean": r["clean"],
            }
            if not r["clean"]:
                results[f"pairs_{n}"]["failures"] = r["failures"]
                break
            largest = n
    results["largest_clean_pairs"] = largest
    return results


def run(quick: bool = False) -> dict[str, Any]:
    """Measure and print a small table; returns the figures (see the module docstring)."""
    with (
        quiet_logs("pipeline", "sfu"),
        tempfile.TemporaryDirectory(prefix="echoproof-bench-") as tmp,
    ):
        results = asyncio.run(_run(quick, Path(tmp)))
    print(f"{'pairs':>5}  {'cpu s/conv-min':>14}  {'server s/conv-min':>17}  {'ratio':>6}  clean")
    for key, r in results.items():
        if key.startswith("pairs_"):
            print(
                f"{key[6:]:>5}  {r['cpu_s_per_conversation_minute']:>14.2f}  "
                f"{r['server_cpu_s_per_conversation_minute']:>17.2f}  {r['ratio_vs_1']:>6.2f}  "
                f"{'yes' if r['clean'] else 'NO'}"
            )
            for failure in r.get("failures", []):
                print(f"       not clean: {failure}")
    largest, duration = results["largest_clean_pairs"], results["duration_s"]
    print(f"largest clean --pairs: {largest} ({duration:g} s runs)")
    return results


if __name__ == "__main__":
    run(quick="--quick" in sys.argv[1:])
