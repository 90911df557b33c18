"""Run every benchmark, write ``benchmarks/results.json`` and print a summary table.

``python -m benchmarks [--quick] [AREA ...]``; ``nox -s bench`` runs it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

AREAS = [
    "dsp",
    "sfu",
    "server_cost",
    "verify",
    "quality",
    "pipeline",
    "impairment",
    "capacity",
    "callers",
    "stability",
    "ray_cost",
    "long_runs",
]
RESULTS = Path(__file__).with_name("results.json")


# `nox -s bench` must finish in 132 minutes on a quiet 2-core machine. Per area: run it in quick
# mode even in a full run (True where a full run would not fit, or another area measures it
# better), and the seconds it is budgeted. pipeline's N-scan is superseded by capacity's search;
# impairment's full mode (3 repeats of 5 cases of 30 s, 6 loss runs of 30 s) alone would take 13
# minutes; server_cost's full mode (6 trials of 30 s) takes about 4. capacity searches twice (the
# pipeline and the bare SDK, interleaved); stability's full mode (25 runs of 60 s, which its goals
# are stated for) takes about 34 minutes, its quick mode (9 runs of 30 s) about 7. quality's loss
# ladder is four `python -m pipeline` runs of 60 s (about 70 s each with joining and verifying).
# callers' full mode: its ladder of caller counts (two runs of 40 s per count), three
# side-by-side runs of 30 s and six runs of 30 s beside two busy loops.
# long_runs: a real run of 10 minutes for the capture's memory, then verify over synthetic runs
# of 10 minutes (3 times) and an hour (twice), each after a warm-up.
# ray_cost runs the same four conversations of 20 s six times (three locally, three on a Ray
# cluster it starts for each), about 50 s each with joining, Ray's start and verifying.
PLAN: dict[str, tuple[bool, int]] = {
    "dsp": (False, 110),
    "sfu": (False, 80),
    "server_cost": (False, 330),
    "verify": (False, 100),
    "quality": (False, 420),
    "pipeline": (True, 40),
    "impairment": (True, 170),
    "capacity": (False, 1000),
    "callers": (False, 1500),
    "stability": (False, 2200),  # the goals are stated for 10 quiet runs of 60 s
    "ray_cost": (False, 420),
    "long_runs": (False, 1500),
}
TOTAL_BUDGET_S = 7900  # 132 minutes


@dataclass(frozen=True)
class Row:
    """One line of the summary: a figure, where it is in the results, its goal."""

    name: str
    path: str  # dotted keys into the results
    goal: str = ""
    ok: Callable[[float], bool] | None = None  # None: shown for information
    unit: str = ""


def _at_least(goal: float) -> Callable[[float], bool]:
    return lambda value: value >= goal


ROWS = [
    *(
        Row(f"Goertzel numba / numpy, K={k}, {d}", f"dsp.goertzel.{d}.k{k}.ratio", f">= {g}x",
            _at_least(g), "x")
        for d in ("60s", "3600s")
        for k, g in ((2, 4), (8, 6), (32, 8))
    ),
    Row("onset std, 0 dB, Opus, 440 Hz", "dsp.onset.snr0db.opus.f440.std_us", "<= 5 us",
        lambda v: v <= 5, " us"),
    Row("onset std, 0 dB, Opus, 550 Hz", "dsp.onset.snr0db.opus.f550.std_us", "<= 5 us",
        lambda v: v <= 5, " us"),
    Row("import + analyse 120 s (warm)", "dsp.analysis_120s.wall_s", "<= 1.5 s",
        lambda v: v <= 1.5, " s"),
    Row("mouth-to-ear median", "sfu.latency_ms.median", "<= 60 ms", lambda v: v <= 60, " ms"),
    Row("mouth-to-ear p95", "sfu.latency_ms.p95", "", None, " ms"),
    Row("mouth-to-ear p99", "sfu.latency_ms.p99", "<= 100 ms", lambda v: v <= 100, " ms"),
    Row("bursts lost through the server", "sfu.bursts_lost", "0", lambda v: v == 0),
    Row("latency error, 100 ms injected", "impairment.delay.delay_100.error_ms", "+-1 ms",
        lambda v: abs(v) <= 1, " ms"),
    Row("latency error, 300 ms injected", "impairment.delay.delay_300.error_ms", "+-1 ms",
        lambda v: abs(v) <= 1, " ms"),
    *(
        Row(f"5% loss, {arm}: {what}", f"impairment.loss.{key}.{path}", "", None, "%")
        for key, arm in (("red", "RED"), ("plain", "no RED"))
        for what, path in (("wire loss", "packet_loss_pct"), ("audible", "audible_concealed_pct"))
    ),
    Row("latency shift, 100 ms (2 runs)", "sfu.validation.measured_shift_ms", "~100 ms", None,
        " ms"),
    Row("verify a 120 s run", "verify.check_120s_median_s", "<= 2 s", lambda v: v <= 2, " s"),
    Row("verify a 1 h run", "verify.check_3600s_median_s", "<= 10 s", lambda v: v <= 10, " s"),
    Row("probe scoring added to verify 120 s", "quality.added_s", "<= 5 s", lambda v: v <= 5,
        " s"),
    Row("probe scoring CPU s / scored min", "quality.cpu_s_per_scored_min", "", None, " s"),
    Row("probe MOS through Opus alone", "quality.opus_mos_mean", "", None),
    Row("ladder: clean MOS, lower direction", "quality.ladder.clean_mos", ">= 4.0",
        lambda v: v >= 4.0),
    *(
        Row(f"ladder: {pct} % loss, {what}", f"quality.ladder.levels.loss_{pct}.{path}", "",
            None, unit)
        for pct in (0, 2, 5, 10)
        for what, path, unit in (("lower MOS", "lower_mos", ""),
                                 ("loss measured", "packet_loss_pct", "%"))
    ),
    Row("ladder: MOS rises, level to level", "quality.ladder.rises", "0", lambda v: v == 0),
    Row("ladder: rises beyond noise", "quality.ladder.rises_beyond_noise", "", None),
    Row("ladder: levels without a report", "quality.ladder.levels_missing", "0",
        lambda v: v == 0),
    Row("agents CPU s / conversation-min", "capacity.cost.agent_cpu_s_per_conversation_min",
        "", None, " s"),
    Row("agents CPU s / conv-min, whole run", "pipeline.pairs_1.cpu_s_per_conversation_minute",
        "", None, " s"),
    Row("server CPU s / conv-min, whole run",
        "pipeline.pairs_1.server_cpu_s_per_conversation_minute", "", None, " s"),
    Row("agents' CPU / bare SDK's", "capacity.cost.overhead_ratio", "<= 1.10",
        lambda v: v <= 1.10),
    Row("server CPU s / stream-min", "capacity.cost.server_cpu_s_per_stream_min", "<= 1.2 s",
        lambda v: v <= 1.2, " s"),
    Row("server CPU s / stream-min (sfu)", "sfu.server_cpu_s_per_audio_min", "<= 1.2 s",
        lambda v: v <= 1.2, " s"),
    Row("server CPU s / stream-min, A/B", "server_cost.current_cpu_s_per_stream_min", "", None,
        " s"),
    Row("  the same, base commit", "server_cost.base_cpu_s_per_stream_min", "", None, " s"),
    Row("server CPU / base commit's", "server_cost.ratio", "<= 1.10", lambda v: v <= 1.10),
    Row("pairs predicted by the costs", "capacity.predicted_pairs", "", None),
    Row("pairs that run clean for 60 s", "capacity.capacity_pairs", "", None),
    Row("bare-SDK pairs clean for 60 s", "capacity.bare_capacity_pairs", "", None),
    Row("capacity / prediction", "capacity.capacity_share", "", None),
    Row("capacity / bare SDK's", "capacity.capacity_vs_bare", ">= 0.90", lambda v: v >= 0.9),
    Row("callers one agent worker serves", "callers.capacity_callers", "", None),
    Row("  one caller's response p95", "callers.capacity.reference_p95_ms", "", None, " ms"),
    Row("our caller's CPU / bare SDK's", "callers.cost.overhead_ratio", "<= 1.2",
        lambda v: v <= 1.2),
    Row("  CPU steal meanwhile", "callers.cost.steal_pct", "", None, "%"),
    Row("agent response p95, capture FIFO", "callers.scheduling.fifo.response_p95_ms", "", None,
        " ms"),
    Row("  the same, capture normal", "callers.scheduling.normal.response_p95_ms", "", None,
        " ms"),
    Row("Ray / local CPU, 4 conversations", "ray_cost.cpu_ratio", "<= 1.10",
        lambda v: v <= 1.10),
    Row("Ray latency added (median)", "ray_cost.latency_added_ms", "<= 2 ms",
        lambda v: v <= 2, " ms"),
    Row("  local: CPU s, 4 x conversation", "ray_cost.local.cpu_s", "", None, " s"),
    Row("  local: steal", "ray_cost.local.steal_pct", "", None, "%"),
    Row("  Ray: CPU s, 4 x conversation", "ray_cost.ray.cpu_s", "", None, " s"),
    Row("  Ray: steal", "ray_cost.ray.steal_pct", "", None, "%"),
    Row("Ray: cores per conversation", "ray_cost.cores_per_conversation", "", None),
    Row("capture RSS slope, 10 min run", "long_runs.capture.slope_mb_per_min", "<= 0.35 MB/min",
        lambda v: v <= 0.35, " MB/min"),
    Row("verify 10 min run: wall", "long_runs.verify.600s.wall_s", "", None, " s"),
    Row("verify 10 min run: peak PSS", "long_runs.verify.600s.peak_mib", "", None, " MiB"),
    Row("verify 1 h run: wall", "long_runs.verify.3600s.wall_s", "<= 30 s", lambda v: v <= 30,
        " s"),
    Row("verify 1 h run: CPU", "long_runs.verify.3600s.cpu_s", "", None, " s"),
    Row("verify 1 h run: peak PSS", "long_runs.verify.3600s.peak_mib", "<= 500 MiB",
        lambda v: v <= 500, " MiB"),
    Row("quiet runs not OK", "stability.quiet.goal_misses", "0", lambda v: v == 0),
    Row("quiet sender lateness p99", "stability.quiet.lateness_p99_ms", "<= 2 ms",
        lambda v: v <= 2, " ms"),
    Row("quiet spread of run medians", "stability.quiet.median_spread", "<= 1.2",
        lambda v: v <= 1.2),
    Row("quiet median of run medians", "stability.quiet.median_of_medians_ms", "", None, " ms"),
    Row("hog sender lateness p99", "stability.hog.lateness_p99_ms", "", None, " ms"),
    Row("hog runs within 25% of quiet", "stability.hog.within_25pct_of_quiet", "", None),
    Row("hog runs FAIL/ERROR or slow OK", "stability.hog.goal_misses", "0", lambda v: v == 0),
    Row("hog+loss5 runs not FAIL on loss", "stability.hog_loss5.goal_misses", "0",
        lambda v: v == 0),
    Row("frozen runs FAIL or freeze unnamed", "stability.freeze.goal_misses", "0",
        lambda v: v == 0),
]  # fmt: skip


def _get(results: Any, path: str) -> Any:
    """The value at dotted `path`; a key may hold dots itself (``goertzel["60s.k2"]``)."""
    if not path:
        return results
    if not isinstance(results, dict):
        return None
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        key = ".".join(parts[:i])
        if key in results:
            found = _get(results[key], ".".join(parts[i:]))
            if found is not None:
                return found
    return None


def summary(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The curated table: (figure, value, goal, PASS / MISS / blank) for each figure measured."""
    lines = []
    for row in ROWS:
        value = _get(results, row.path)
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue  # that area was not run, failed, or (quick mode) skipped the figure
        shown = f"{value:.4g}{row.unit}" if isinstance(value, float) else f"{value}{row.unit}"
        verdict = "" if row.ok is None else ("PASS" if row.ok(value) else "MISS")
        lines.append((row.name, shown, row.goal, verdict))
    for area, (_, budget) in PLAN.items():
        wall = results.get(f"{area}_wall_s")
        if wall is not None:
            verdict = "PASS" if wall <= budget else "MISS"
            lines.append((f"wall time: {area}", f"{wall:.0f} s", f"<= {budget} s", verdict))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("areas", nargs="*", help=f"areas to run (default: all of {AREAS})")
    parser.add_argument("--quick", action="store_true", help="shorter runs, fewer repeats")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.areas) - set(AREAS))
    if unknown:
        parser.error(f"unknown area {unknown[0]!r}; expected one of {', '.join(AREAS)}")

    results: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "quick": args.quick,
    }
    failed = []
    began = time.perf_counter()
    for area in args.areas or AREAS:
        try:
            module = importlib.import_module(f"benchmarks.{area}")
        except ModuleNotFoundError as exc:
            if exc.name == f"benchmarks.{area}":
                continue  # that area has no benchmark yet
            raise
        quick = args.quick or PLAN[area][0]
        print(f"\n=== {area}{' (quick)' if quick else ''} ===", flush=True)
        started = time.perf_counter()
        try:
            results[area] = module.run(quick=quick)
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            failed.append(area)
            results[area] = {"error": f"{type(exc).__name__}: {exc}"}
            print(f"{area}: FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        results[area + "_wall_s"] = round(time.perf_counter() - started, 1)
        wall = results[area + "_wall_s"]
        print(f"--- {area}: {wall:.0f} s (budget {PLAN[area][1]} s)", flush=True)

    results["total_wall_s"] = round(time.perf_counter() - began, 1)
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print("\n=== summary (every figure in results.json) ===")
    print(f"{'figure':34} {'value':>12}  {'goal':<10} verdict")
    for name, shown, goal, verdict in summary(results):
        print(f"{name:34} {shown:>12}  {goal:<10} {verdict}")
    for area in failed:
        print(f"{area:34} {'FAILED':>12}  {results[area]['error'][:60]}")
    print(f"{'wall time: all':34} {results['total_wall_s']:>10.0f} s  <= {TOTAL_BUDGET_S} s")
    print(f"\nwrote {RESULTS}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
