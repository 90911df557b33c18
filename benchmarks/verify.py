"""How long `verify` takes to re-check a run: a 120 s run and a 1 h run (quick: 120 s only).

The runs are synthesised per docs/evidence.md (benchmarks/_synth.py: bursts from `dsp.burst`,
one per agent per second, noise, timing files), signed once, then re-checked: signature, every
file hash, every figure recomputed from the WAVs, verdict. Medians over repeats, after one warm-up
(numba's cache loaded, files in the page cache). Goals: <= 2 s for 120 s, <= 10 s for 1 h.
Baseline, same process: only hashing the evidence files (the floor of any re-check). CPU seconds
(this process and its forked workers) are reported too: unlike wall time, other load on a shared
machine does not change them.

    python -m benchmarks.verify [--quick]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import verify
from benchmarks import _synth as synth
from verify import evidence

GOALS_S = {120: 2.0, 3600: 10.0}


def _time_hash(run: Path, repeats: int) -> list[float]:
    """Baseline: only reading and hashing the evidence files (the floor for any re-check)."""
    names = [p for p in sorted(run.iterdir()) if not evidence.is_derived(p.name)]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for path in names:
            evidence.sha256_file(path)
        times.append(time.perf_counter() - start)
    return times


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (forked analysis workers)."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _time_check(run: Path, repeats: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of each re-check (CPU time does not depend on other load)."""
    verify.check(run)  # warm-up: numba cache, page cache
    walls, cpus = [], []
    for _ in range(repeats):
        cpu, start = _cpu_s(), time.perf_counter()
        results = verify.check(run)
        walls.append(time.perf_counter() - start)
        cpus.append(_cpu_s() - cpu)
        if not results[0].ok:
            raise RuntimeError(f"benchmark run did not verify: {results[0].reason}")
    return walls, cpus


def run(quick: bool = False) -> dict[str, float]:
    """Figures: `check_<N>s_median_s` per run length, and the ratio to its goal."""
    lengths = [120] if quick else [120, 3600]
    figures: dict[str, float] = {}
    root = Path(tempfile.mkdtemp(prefix="echoproof-bench-verify-"))
    try:
        for seconds in lengths:
            run_dir = synth.make_run(root / f"{seconds}s", synth.Spec(duration_s=float(seconds)))
            verify.write_report(run_dir, key_path=root / "signing-key.pem", html=False)
            repeats = 5 if seconds <= 120 else 3
            times, cpus = _time_check(run_dir, repeats)
            median = statistics.median(times)
            figures[f"check_{seconds}s_cpu_median_s"] = round(statistics.median(cpus), 3)
            baseline = statistics.median(_time_hash(run_dir, repeats))
            figures[f"hash_{seconds}s_median_s"] = round(baseline, 3)
            figures[f"check_{seconds}s_over_hash_ratio"] = round(median / baseline, 1)
            figures[f"check_{seconds}s_median_s"] = round(median, 3)
            figures[f"check_{seconds}s_min_s"] = round(min(times), 3)
            figures[f"check_{seconds}s_goal_ratio"] = round(median / GOALS_S[seconds], 3)
            shutil.rmtree(run_dir)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{'run':>8} {'median s':>9} {'min s':>7} {'cpu s':>7} {'goal s':>7} {'hash-only s':>12}")
    for seconds in lengths:
        print(
            f"{seconds:>7}s {figures[f'check_{seconds}s_median_s']:>9.3f} "
            f"{figures[f'check_{seconds}s_min_s']:>7.3f} "
            f"{figures[f'check_{seconds}s_cpu_median_s']:>7.3f} {GOALS_S[seconds]:>7.1f} "
            f"{figures[f'hash_{seconds}s_median_s']:>12.3f}"
        )
    return figures


def main() -> None:
    """`python -m benchmarks.verify [--quick]`."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.verify", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the 120 s run only")
    run(quick=parser.parse_args().quick)


if __name__ == "__main__":
    main()
