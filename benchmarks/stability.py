"""Stability: do consecutive runs agree, and does a disturbed host give a verdict that says so?

``python -m benchmarks.stability [--quick]``. K consecutive runs of ``python -m pipeline --config
CONFIG --duration D --out TMP`` per condition, exactly as a new user's ``nox -s run`` makes them
(``benchmarks._runs``: the run starts the embedded server itself, then verifies and signs its
report with a temporary key). Its exit code is the verdict: 0 OK, 1 FAIL,
4 INCONCLUSIVE (a threshold failed while the host was stalled), anything else ERROR (the run's
last stderr lines are kept). A run that overruns D + 120 s is killed with its process group.

Conditions, in this order (full: K = 10 / 5 / 5 / 5 runs of 60 s; quick: 3 / 2 / 2 / 2 of 30 s):

- ``quiet``: nothing else runs. Goals: every run OK; sender lateness p99 <= 2 ms; the spread
  of the run medians (max / min of each run's mean of its two directions' median latencies)
  <= 1.2.
- ``hog``: two busy-looping Python processes (``while True: pass``, normal priority) run from
  before the first run to after the last. Goal: no run FAILs: each is OK with its median within
  25 % of the quiet runs' median of medians, or INCONCLUSIVE.
- ``hog_loss5``: the hog plus ``"impairment": {"loss_pct": 5, "seed": 1}`` in the config. Goal:
  every run FAILs and one of its failures names packet loss.
- ``freeze``: nothing else runs, but every process of the run (capture and embedded server) is
  stopped once for 0.5 s, a third into the talk (``ECHOPROOF_FAULT_FREEZE``,
  `pipeline.recording.freeze`):
  what a VM pause does. Goal: every run OK or INCONCLUSIVE with the freeze named (the report's
  ``host.freezes`` holds it, and an INCONCLUSIVE verdict's reason is the freeze).

Per condition: the counts, sender lateness (p99 and max over every frame of every run, from each
run folder's ``customer.sent.csv`` and ``support.sent.csv``: frame n's lateness is
t_ns[n] - (t_ns[0] + n x 10 ms)), each run's median latency per direction, verdict status and
failures or reason, the spread of the run medians and the share of runs within 25 % of quiet.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._runs import exit_status, hogs, pipeline_run, remove
from pipeline.config.faults import FREEZE_ENV

FRAME_NS = 10_000_000  # one 10 ms frame
WITHIN = 0.25  # "within 25 % of quiet"
GOALS = {"quiet_lateness_p99_ms": 2.0, "quiet_median_spread": 1.2}
HOGS = 2


@dataclass(frozen=True)
class Condition:
    """One condition: its name, runs (full, quick), and what it adds to the config."""

    name: str
    runs: tuple[int, int]
    hog: bool = False
    impairment: dict[str, Any] | None = None
    freeze_s: float | None = None  # the whole run stopped this long, a third into the talk


CONDITIONS = [
    Condition("quiet", (10, 3)),
    Condition("hog", (5, 2), hog=True),
    Condition("hog_loss5", (5, 2), hog=True, impairment={"loss_pct": 5, "seed": 1}),
    Condition("freeze", (5, 2), freeze_s=0.5),
]
FREEZE_REASON = "the whole host stood still"  # how verify names a freeze (verify.host.Freeze)


def count_statuses(statuses: list[str]) -> dict[str, int]:
    """How many runs had each status; every status present, zero when none."""
    return {s: statuses.count(s) for s in ("OK", "FAIL", "INCONCLUSIVE", "ERROR")}


def lateness_ms(frames: np.ndarray, t_ns: np.ndarray) -> np.ndarray:
    """Each sent frame's lateness in ms: t_ns[n] - (t_ns[0] + n x 10 ms), n counted from the
    first frame's number."""
    if t_ns.size == 0:
        return np.zeros(0)
    n = frames.astype(np.int64) - int(frames[0])
    return (t_ns.astype(np.int64) - (int(t_ns[0]) + n * FRAME_NS)) / 1e6


def read_lateness(csv: Path) -> np.ndarray:
    """Lateness of every frame in a ``*.sent.csv`` (columns frame,sample,samples,t_ns)."""
    lines = csv.read_text().splitlines()[1:]
    if not lines:
        return np.zeros(0)
    data = np.loadtxt(lines, delimiter=",", dtype=np.int64, ndmin=2)
    return lateness_ms(data[:, 0], data[:, 3])


def verdict_status(verdict: dict[str, Any]) -> str:
    """The report's verdict status; reports without ``status`` read it from ``passed``."""
    status = verdict.get("status")
    if status in ("passed", "failed", "inconclusive"):
        return str(status)
    return "passed" if verdict.get("passed") else "failed"


def run_figures(run_dir: Path) -> dict[str, Any]:
    """What one run folder says: median latency per direction, verdict, its senders' lateness."""
    figures: dict[str, Any] = {"run_id": run_dir.name}
    late = [read_lateness(p) for p in sorted(run_dir.glob("*.sent.csv"))]
    figures["lateness"] = np.concatenate(late) if late else np.zeros(0)
    report_path = run_dir / "report.json"
    if not report_path.exists():
        figures.update(medians_ms=[], status="missing", failures=["no report.json"])
        return figures
    report = json.loads(report_path.read_text())
    medians = [d.get("latency_ms", {}).get("median") for d in report.get("directions", [])]
    verdict = report.get("verdict", {})
    figures["medians_ms"] = [None if m is None else round(float(m), 1) for m in medians]
    figures["status"] = verdict_status(verdict)
    figures["failures"] = list(verdict.get("failures", []))
    if verdict.get("reason"):
        figures["reason"] = verdict["reason"]
    figures["freezes_ms"] = [f["stood_ms"] for f in report.get("host", {}).get("freezes", [])]
    return figures


def run_median(medians_ms: list[float | None]) -> float | None:
    """A run's median: the mean of its directions' medians; None if one is missing."""
    if not medians_ms or any(m is None for m in medians_ms):
        return None
    return float(np.mean([m for m in medians_ms if m is not None]))


def within(median: float | None, reference: float | None) -> bool:
    """Whether `median` is within 25 % of `reference`."""
    if median is None or reference is None or reference <= 0:
        return False
    return abs(median / reference - 1.0) <= WITHIN


def summarise(runs: list[dict[str, Any]], quiet_median: float | None) -> dict[str, Any]:
    """A condition's figures from its runs (each with ``status``, ``median_ms``, ``lateness``)."""
    medians = [r["median_ms"] for r in runs if r.get("median_ms") is not None]
    late = [r["lateness"] for r in runs if len(r.get("lateness", ()))]
    all_late = np.concatenate(late) if late else np.zeros(0)
    out: dict[str, Any] = {"runs": len(runs), **count_statuses([r["status"] for r in runs])}
    if all_late.size:
        out["lateness_p99_ms"] = round(float(np.percentile(all_late, 99)), 2)
        out["lateness_max_ms"] = round(float(all_late.max()), 2)
        out["frames"] = int(all_late.size)
    if medians:
        out["median_of_medians_ms"] = round(statistics.median(medians), 1)
        out["median_spread"] = round(max(medians) / min(medians), 3)
    reference = quiet_median if quiet_median is not None else out.get("median_of_medians_ms")
    if runs:
        share = sum(within(r.get("median_ms"), reference) for r in runs) / len(runs)
        out["within_25pct_of_quiet"] = round(share, 3)
    return out


def goal_misses(condition: str, runs: list[dict[str, Any]], quiet_median: float | None) -> int:
    """How many runs miss the condition's per-run goal (see the module docstring)."""
    if condition == "quiet":
        return sum(r["status"] != "OK" for r in runs)
    if condition == "hog":
        return sum(
            not (
                r["status"] == "INCONCLUSIVE"
                or (r["status"] == "OK" and within(r.get("median_ms"), quiet_median))
            )
            for r in runs
        )
    if condition == "freeze":
        return sum(not freeze_named(r) for r in runs)
    return sum(
        not (r["status"] == "FAIL" and any("packet loss" in f for f in r.get("failures", [])))
        for r in runs
    )


def freeze_named(r: dict[str, Any]) -> bool:
    """A frozen run's goal: OK or INCONCLUSIVE, the report holding the freeze, and an
    INCONCLUSIVE verdict naming it."""
    if not r.get("freezes_ms"):
        return False
    if r["status"] == "INCONCLUSIVE":
        return str(r.get("reason", "")).startswith(FREEZE_REASON)
    return bool(r["status"] == "OK")


def _one_run(condition: Condition, duration_s: float, work: Path, index: int) -> dict[str, Any]:
    """One `python -m pipeline` run under `condition`; its figures (its folder is removed)."""
    out = work / f"{condition.name}-{index}"
    extra = {} if condition.impairment is None else {"impairment": condition.impairment}
    env = {}
    if condition.freeze_s is not None:
        env[FREEZE_ENV] = f"{duration_s / 3:g}:{condition.freeze_s:g}"
    done = pipeline_run(extra, duration_s, out, work, env)
    figures: dict[str, Any] = {
        "exit_code": done.returncode,
        "status": exit_status(done.returncode),
        "wall_s": done.wall_s,
    }
    if done.error:
        figures["error"] = done.error
    if done.stderr_tail:
        figures["stderr_tail"] = done.stderr_tail
    if done.run_dir is not None:
        found = run_figures(done.run_dir)
        figures["lateness"] = found.pop("lateness")
        if figures["lateness"].size:
            figures["lateness_p99_ms"] = round(float(np.percentile(figures["lateness"], 99)), 2)
        figures["verdict"] = found.pop("status")
        figures.update(found)
        figures["median_ms"] = run_median(figures["medians_ms"])
    remove(out)
    return figures


def _progress(condition: str, index: int, runs: int, r: dict[str, Any]) -> str:
    """One line (under 80 columns) for a finished run."""
    medians = "/".join("-" if m is None else f"{m:.0f}" for m in r.get("medians_ms", [])) or "-"
    p99 = f"{r['lateness_p99_ms']:.1f}" if "lateness_p99_ms" in r else "-"
    line = (
        f"{condition:>9} {index + 1:>2}/{runs:<2} {r['status']:<12} median {medians:>9} ms"
        f"  late p99 {p99:>6} ms  {r['wall_s']:>4.0f} s"
    )
    return line[:79]


def run(quick: bool = False) -> dict[str, Any]:
    """Every condition's runs and figures (see the module docstring); prints a line per run."""
    duration_s = 30.0 if quick else 60.0
    results: dict[str, Any] = {"duration_s": duration_s, "goals": GOALS}
    quiet_median: float | None = None
    with tempfile.TemporaryDirectory(prefix="echoproof-bench-stability-") as tmp:
        work = Path(tmp)
        for condition in CONDITIONS:
            runs = condition.runs[1] if quick else condition.runs[0]
            done: list[dict[str, Any]] = []
            with hogs(HOGS if condition.hog else 0):
                for i in range(runs):
                    done.append(_one_run(condition, duration_s, work, i))
                    print(_progress(condition.name, i, runs, done[-1]), flush=True)
            figures = summarise(done, quiet_median)
            if condition.name == "quiet":
                quiet_median = figures.get("median_of_medians_ms")
            figures["goal_misses"] = goal_misses(condition.name, done, quiet_median)
            for r in done:
                r.pop("lateness", None)
            figures["per_run"] = done
            results[condition.name] = figures
    _print(results)
    return results


def _print(results: dict[str, Any]) -> None:
    print(f"{'condition':10} {'OK':>3} {'FAIL':>4} {'INC':>4} {'ERR':>4} {'median':>7} "
          f"{'spread':>6} {'p99 late':>8} {'in 25%':>6} {'misses':>6}")  # fmt: skip
    for name in (c.name for c in CONDITIONS):
        f = results.get(name)
        if f is None:
            continue
        print(
            f"{name:10} {f['OK']:>3} {f['FAIL']:>4} {f['INCONCLUSIVE']:>4} {f['ERROR']:>4} "
            f"{f.get('median_of_medians_ms', '-')!s:>7} {f.get('median_spread', '-')!s:>6} "
            f"{f.get('lateness_p99_ms', '-')!s:>8} {f.get('within_25pct_of_quiet', '-')!s:>6} "
            f"{f['goal_misses']:>6}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stability", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 / 2 / 2 / 2 runs of 30 s")
    run(quick=parser.parse_args().quick)
