"""Long runs at flat cost: the capture's memory over a real run, and verify over long runs.

1. **Capture memory.** One real ``python -m pipeline`` run of 10 minutes (quick: 2), embedded
   server, ``--no-verify`` (verify's own memory is part 2), as ``config.json`` has it (probe
   included). The capture process's RSS is read every 30 s; its slope is the least-squares line
   through the readings from the first minute's end to the end of the talk, in MB per minute.
   Goal: at most 0.35 MB per minute (20 MB an hour).
2. **verify over long runs.** Synthetic runs (``benchmarks/_synth.py``, probe share 0.5 as
   ``config.json`` has it) of 10 minutes and 1 hour (quick: 10 minutes), each re-checked by
   ``python -m verify DIR --key PUB`` in a process of its own: wall seconds, CPU seconds of the
   whole process tree, and the peak of the tree's summed PSS (the memory it takes: its forked
   workers share most of their parent's pages, which summed RSS would count once per process;
   that is given too), read every 50 ms. Medians over 3
   repeats at 10 minutes and 2 at 1 hour, after one warm-up. Goals for the hour: wall at most
   30 s on 2 cores, peak at most 500 MiB; both lengths are measured to show the slope.

    python -m benchmarks.long_runs [--quick]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

import verify
from benchmarks import _runs, _synth

CAPTURE_SLOPE_GOAL_MB_PER_MIN = 0.35
VERIFY_GOALS = {"wall_s": 30.0, "peak_mib": 500.0}  # for the hour
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss_mb(pid: int) -> float | None:
    """A process's resident memory, MB (10^6 bytes); None once it is gone."""
    try:
        resident = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return resident * _PAGE / 1e6


def _pss_mb(pid: int) -> float | None:
    """A process's proportional set size, MB: its own pages plus its share of those it shares
    (a forked worker shares most of its parent's); None once it is gone. Summed over a process
    tree it is the memory the tree takes, where summed RSS counts shared pages once per
    process."""
    try:
        for row in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if row.startswith("Pss:"):
                return int(row.split()[1]) * 1024 / 1e6
    except (OSError, IndexError, ValueError):
        return None
    return None


def _tree(root: int) -> list[int]:
    """`root` and every live process under it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def capture_memory(quick: bool, work: Path) -> dict[str, Any]:
    """Part 1: the capture process's RSS over a real run, and its slope."""
    duration_s = 120.0 if quick else 600.0
    readings: list[tuple[float, float]] = []  # (elapsed s, MB)

    def watch(pid: int, elapsed_s: float) -> None:
        mb = _rss_mb(pid)
        if mb is not None:
            readings.append((elapsed_s, mb))
            print(f"  capture at {elapsed_s:5.0f} s: {mb:6.1f} MB", flush=True)

    done = _runs.pipeline_run(
        {}, duration_s, work / "out", work, args=("--no-verify",), watch=watch
    )
    # The talk starts once both agents joined (a few seconds in); from then on the run only
    # records. Readings after the talk's end include leaving and closing the files.
    fit = [(t, mb) for t, mb in readings if 60.0 <= t <= duration_s]
    slope = float(np.polyfit([t / 60 for t, _ in fit], [mb for _, mb in fit], 1)[0])
    _runs.remove(work / "out")
    return {
        "duration_s": duration_s,
        "run_status": _runs.exit_status(done.returncode),
        "readings": [[round(t, 1), round(mb, 1)] for t, mb in readings],
        "first_mb": round(fit[0][1], 1),
        "last_mb": round(fit[-1][1], 1),
        "slope_mb_per_min": round(slope, 3),
        "slope_goal_ratio": round(slope / CAPTURE_SLOPE_GOAL_MB_PER_MIN, 2),
    }


def _cpu_children_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _time_verify(run_dir: Path, public_key: Path) -> dict[str, float]:
    """One ``python -m verify`` of `run_dir`: wall s, CPU s of its tree, and the peaks of the
    tree's summed PSS (`peak_mib`) and summed RSS (`peak_rss_mib`), MiB."""
    peak = peak_rss = 0.0
    cpu = _cpu_children_s()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "verify", str(run_dir), "--key", str(public_key)],
        cwd=_runs.ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak, peak_rss
        while not stop.wait(0.05):
            tree = _tree(proc.pid)
            peak = max(peak, sum(mb for pid in tree if (mb := _pss_mb(pid)) is not None))
            peak_rss = max(peak_rss, sum(mb for pid in tree if (mb := _rss_mb(pid)) is not None))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - started
    stop.set()
    sampler.join()
    if proc.returncode not in (0, 1):  # 1: the synthetic probe's MOS may miss the threshold
        raise RuntimeError(f"verify exited {proc.returncode}: {err.decode()[-400:]}")
    return {
        "wall_s": wall,
        "cpu_s": _cpu_children_s() - cpu,
        "peak_mib": peak * 1e6 / 2**20,
        "peak_rss_mib": peak_rss * 1e6 / 2**20,
    }


def verify_long(quick: bool, work: Path) -> dict[str, Any]:
    """Part 2: verify's wall, CPU and peak memory at 10 minutes and 1 hour."""
    out: dict[str, Any] = {}
    key = work / "signing-key.pem"
    for seconds, repeats in ((600, 3),) if quick else ((600, 3), (3600, 2)):
        run_dir = _synth.make_run(
            work / f"{seconds}s", _synth.Spec(duration_s=float(seconds), probe_share=0.5)
        )
        verify.write_report(run_dir, key_path=key, html=False)
        _time_verify(run_dir, key.with_name("signing-key.pub.pem"))  # warm-up: page cache
        times = [
            _time_verify(run_dir, key.with_name("signing-key.pub.pem")) for _ in range(repeats)
        ]
        figures = {k: round(statistics.median(t[k] for t in times), 2) for k in times[0]}
        if seconds == 3600:
            for k, goal in VERIFY_GOALS.items():
                figures[f"{k}_goal_ratio"] = round(figures[k] / goal, 3)
        print(f"  verify {seconds:>5} s run: {figures}", flush=True)
        out[f"{seconds}s"] = figures
        shutil.rmtree(run_dir)
    return out


def run(quick: bool = False) -> dict[str, Any]:
    """Both parts' figures."""
    work = Path(tempfile.mkdtemp(prefix="echoproof-bench-long-"))
    try:
        figures = {
            "verify": verify_long(quick, work / "verify"),
            "capture": capture_memory(quick, _fresh(work / "capture")),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    capture = figures["capture"]
    print(
        f"capture RSS {capture['first_mb']} -> {capture['last_mb']} MB over "
        f"{capture['duration_s']:g} s: {capture['slope_mb_per_min']} MB/min "
        f"(goal <= {CAPTURE_SLOPE_GOAL_MB_PER_MIN})"
    )
    return figures


def _fresh(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def main() -> None:
    """`python -m benchmarks.long_runs [--quick]`."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.long_runs", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a 2-minute capture, 10-min verify")
    run(quick=parser.parse_args().quick)


if __name__ == "__main__":
    main()
