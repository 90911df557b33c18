"""What scoring the speech-like probe costs `python -m verify`, and the codec's own ceiling.

Cost: one 120 s run synthesised twice (benchmarks/_synth.py), with the probe at its default
share (0.5) and without it, each signed once and re-checked (`verify.check`: every figure
recomputed) after one warm-up; medians over repeats. The difference is what the probe adds:
goal <= 5 s of wall time on a 2-core machine (the directions are scored in forked worker
processes side by side). CPU seconds (this process and its workers) per minute of probe audio
scored give the cost independent of other load.

Ceiling: the probe as a sender plays it (120 s, every segment), through a real Opus encode and
decode (PyAV libopus at 32 kbit/s, as WebRTC sends voice) and nothing else, scored by
`verify.quality` with the pieces placed by the detected bursts: the best MOS a run can show.

Loss ladder (the score validated against injected ground truth): real ``python -m pipeline``
runs on the embedded server (``benchmarks._runs``) with the probe in every segment (share 1.0),
at 0, 2, 5 and 10 % random loss on both directions (``"impairment": {"loss_pct": L, "seed": 1}``;
0 has no impairment block at all), the agents publishing without RED (``"red": false``);
full: one 60 s run per level, quick: 20 s runs at 0 and 10 %
(one pass; ``--repeats N`` here for more, each pass in the order reverse of the one before).
Per level and direction, from each ``report.json``: the mean MOS (the mean of the runs' means),
the lowest segment, the standard error of the mean over the segments, and the packet loss the
receiver measured; each run's segment scores are kept. Goals: the clean MOS of both directions
>= 4.0 (``clean_mos``: the lower); the MOS does not rise from one level to the next in either
direction (``rises``: 0). Each step is reported with its size and its noise, twice the standard
error of the difference; ``rises_beyond_noise`` counts the rises larger than that. With RED the
SDK recovers most single losses before the decoder and the steps from 0 to 5 % were hundredths,
inside the noise; without it they are 0.03-0.15 (README, "How it sounds").

    python -m benchmarks.quality [--quick] [--repeats N]
"""

from __future__ import annotations

import argparse
import itertools
import math
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import dsp
from benchmarks import _synth as synth
from benchmarks._opus import opus_round_trip
from benchmarks._runs import pipeline_run, remove
from benchmarks.verify import _cpu_s
from echoproof.contract import SAMPLE_RATE
from pipeline.script import total_frames
from pipeline.tones import probe
from pipeline.tones.schedule import burst_script, schedule
from verify import check, quality, write_report

GOAL_ADDED_S = 5.0
DURATION_S = 120.0
GOAL_CLEAN_MOS = 4.0
LADDER_PCT = (0.0, 2.0, 5.0, 10.0)
LADDER_QUICK_PCT = (0.0, 10.0)
LADDER_S = 60.0
LADDER_QUICK_S = 20.0
LADDER_SEED = 1
REPEATS = 1
NOISE_SE = 2.0  # a step is noise when within this many standard errors of the difference


def _time_check(run: Path, repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of a re-check of `run` (after one warm-up)."""
    check(run)
    walls, cpus = [], []
    for _ in range(repeats):
        cpu, start = _cpu_s(), time.perf_counter()
        (result,) = check(run)
        walls.append(time.perf_counter() - start)
        cpus.append(_cpu_s() - cpu)
        if not result.ok:
            raise RuntimeError(f"benchmark run did not verify: {result.reason}")
    return statistics.median(walls), statistics.median(cpus)


def _scored_s(run: Path) -> float:
    """Seconds of probe audio the run's pieces hold, both directions."""
    from verify import evidence as ev

    return sum(
        float(ev.read_pieces(path)[3].sum()) / SAMPLE_RATE for path in run.glob("*.probe.csv")
    )


def ceiling(duration_s: float = DURATION_S) -> dict[str, float]:
    """MOS of the probe through Opus alone: per segment mean, lowest, and the pitch ratio."""
    tones = (440.0, 550.0)
    signal = probe.synthetic(1, tones)
    waveform = dsp.burst(tones[0], 0.3, SAMPLE_RATE, amplitude=0.5, ramp_s=0.005)
    bursts = schedule(
        "customer", mode="turns", tone_hz=tones[0], duration_s=duration_s,
        burst_samples=len(waveform), period_s=1.0,
    )  # fmt: skip
    pieces = probe.plan(bursts, 1.0, len(signal))
    script = burst_script(bursts, waveform, probe.probe_script(pieces, signal, None))
    sent = np.concatenate([script.frame(n) for n in range(total_frames(duration_s))])
    heard = opus_round_trip(sent)
    found = dsp.detect_bursts(heard, SAMPLE_RATE, tones[0], duration_s=0.3)
    starts = np.array([b.start_sample for b in bursts], dtype=np.float64)
    onsets = np.array([b.onset for b in found], dtype=np.float64)
    if len(onsets) != len(starts):
        raise RuntimeError(f"{len(onsets)} of {len(starts)} bursts found through Opus")
    table = quality.Pieces(
        *(np.array([getattr(p, f) for p in pieces]) for f in probe.Piece.__dataclass_fields__)
    )
    segments = quality.score(heard, signal, table, (starts, onsets - starts), SAMPLE_RATE)
    scores = [s["mos"] for s in segments]
    ratios = [s["pitch_ratio"] for s in segments if s["pitch_ratio"] is not None]
    return {
        "opus_mos_mean": round(float(np.mean(scores)), 3),
        "opus_mos_min": round(min(scores), 3),
        "opus_segments": len(scores),
        "opus_pitch_ratio": round(float(np.median(ratios)) if ratios else 0.0, 4),
    }


def ladder_config(loss_pct: float) -> dict[str, Any]:
    """The config blocks of a ladder run: the probe in every segment, the loss if any, and no
    RED: with it the SDK recovers most of a 2 or 5 % loss before the decoder, so the ladder would
    measure RED rather than what loss does to the voice (`python -m benchmarks impairment`)."""
    extra: dict[str, Any] = {"probe": {"share": 1.0, "seed": 1, "file": None}, "red": False}
    if loss_pct:
        extra["impairment"] = {"loss_pct": loss_pct, "seed": LADDER_SEED}
    return extra


def interleaved(levels: tuple[float, ...], repeats: int) -> list[float]:
    """The order of the runs: every level per pass, each pass the reverse of the one before."""
    order: list[float] = []
    for r in range(repeats):
        order += list(levels if r % 2 == 0 else reversed(levels))
    return order


def direction_figures(reports: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per direction (``customer_to_support``...) over one level's reports: the mean MOS (of the
    runs' means), the lowest segment, the standard error over segments, the mean packet loss."""
    found: dict[str, dict[str, list[float]]] = {}
    for report in reports:
        for d in report.get("directions", []):
            q = d.get("quality") or {}
            if q.get("mos") is None:
                continue
            into = found.setdefault(f"{d['from']}_to_{d['to']}", {"mos": [], "seg": [], "loss": []})
            into["mos"].append(float(q["mos"]))
            into["seg"] += [float(s["mos"]) for s in q.get("segments", [])]
            loss = (d.get("rtc") or {}).get("packet_loss_pct")
            if loss is not None:
                into["loss"].append(float(loss))
    figures = {}
    for name, f in sorted(found.items()):
        seg = f["seg"] or f["mos"]
        se = float(np.std(seg, ddof=1) / math.sqrt(len(seg))) if len(seg) > 1 else 0.0
        figures[name] = {
            "mos_mean": round(float(np.mean(f["mos"])), 3),
            "mos_min": round(min(seg), 3),
            "mos_se": round(se, 4),
            "segments": len(f["seg"]),
            "packet_loss_pct": round(float(np.mean(f["loss"])), 2) if f["loss"] else None,
        }
    return figures


def level_figures(directions: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One level: its directions, the lower of their mean MOS, their mean packet loss."""
    losses = [f["packet_loss_pct"] for f in directions.values() if f["packet_loss_pct"] is not None]
    return {
        "directions": directions,
        "lower_mos": min((f["mos_mean"] for f in directions.values()), default=None),
        "packet_loss_pct": round(float(np.mean(losses)), 2) if losses else None,
    }


def ladder_steps(levels: list[tuple[float, float, float]]) -> list[dict[str, Any]]:
    """Each step of (loss %, mean MOS, standard error) in loss order: its size (MOS after -
    before), its noise (NOISE_SE x the standard error of the difference), whether it rises."""
    steps = []
    for (pct_a, mos_a, se_a), (pct_b, mos_b, se_b) in itertools.pairwise(levels):
        step = mos_b - mos_a
        noise = NOISE_SE * math.hypot(se_a, se_b)
        steps.append({
            "from_pct": pct_a, "to_pct": pct_b, "step": round(step, 4), "noise": round(noise, 4),
            "rises": step > 0, "beyond_noise": abs(step) > noise,
        })  # fmt: skip
    return steps


def judge_ladder(per_level: dict[float, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """The goals over the levels' direction figures: the clean MOS (the lower direction's),
    whether it is >= 4.0, every direction's steps, the rises and those beyond noise."""
    out: dict[str, Any] = {}
    clean = per_level.get(0.0, {})
    if clean:
        out["clean_mos"] = min(f["mos_mean"] for f in clean.values())
        out["clean_goal_met"] = int(out["clean_mos"] >= GOAL_CLEAN_MOS)
    steps: dict[str, list[dict[str, Any]]] = {}
    for name in sorted({n for figures in per_level.values() for n in figures}):
        levels = [
            (pct, f[name]["mos_mean"], f[name]["mos_se"])
            for pct, f in sorted(per_level.items())
            if name in f
        ]
        steps[name] = ladder_steps(levels)
    every = [s for direction in steps.values() for s in direction]
    out["steps"] = steps
    out["rises"] = sum(s["rises"] for s in every)
    out["rises_beyond_noise"] = sum(s["rises"] and s["beyond_noise"] for s in every)
    out["monotonic"] = int(out["rises"] == 0)
    return out


def ladder(quick: bool = False, repeats: int = REPEATS) -> dict[str, Any]:
    """Real runs at each loss level, `repeats` passes (see the module docstring); their figures,
    each run's segment scores, and the goals."""
    levels = LADDER_QUICK_PCT if quick else LADDER_PCT
    duration_s = LADDER_QUICK_S if quick else LADDER_S
    reports: dict[float, list[dict[str, Any]]] = {pct: [] for pct in levels}
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="echoproof-bench-ladder-") as tmp:
        work = Path(tmp)
        for i, pct in enumerate(interleaved(levels, repeats)):
            out = work / f"run-{i}"
            done = pipeline_run(ladder_config(pct), duration_s, out, work)
            report = done.report()
            runs.append({"loss_pct": pct, "exit_code": done.returncode, "wall_s": done.wall_s})
            if done.error or done.stderr_tail:
                runs[-1]["error"] = done.error or done.stderr_tail
            if report is not None:
                reports[pct].append(report)
            scored = {
                f"{d['from']}_to_{d['to']}": d["quality"]
                for d in (report or {}).get("directions", [])
                if (d.get("quality") or {}).get("mos") is not None
            }
            runs[-1]["segments_mos"] = {
                name: [s["mos"] for s in q.get("segments", [])] for name, q in scored.items()
            }
            shown = " / ".join(f"{q['mos']:.3f}" for q in scored.values()) or "no report"
            print(f"ladder: loss {pct:>4g} %  MOS {shown}  exit {done.returncode}  "
                  f"{done.wall_s:.0f} s", flush=True)  # fmt: skip
            remove(out)
    per_level = {pct: direction_figures(found) for pct, found in reports.items()}
    missing = [pct for pct, found in reports.items() if not found]
    result: dict[str, Any] = {
        "duration_s": duration_s,
        "repeats": repeats,
        "seed": LADDER_SEED,
        "runs": runs,
        "levels": {f"loss_{pct:g}": level_figures(figures) for pct, figures in per_level.items()},
        "missing_levels": missing,
        "levels_missing": len(missing),
        **judge_ladder(per_level),
    }
    _print_ladder(result)
    return result


def _print_ladder(result: dict[str, Any]) -> None:
    for level, figures in result["levels"].items():
        for name, f in figures["directions"].items():
            print(f"{level:>8} {name:<20} MOS {f['mos_mean']:.3f} (lowest {f['mos_min']:.3f},"
                  f" se {f['mos_se']:.3f})  loss {f['packet_loss_pct']} %")  # fmt: skip
    for name, steps in result["steps"].items():
        shown = ", ".join(
            f"{s['from_pct']:g}->{s['to_pct']:g} {s['step']:+.3f} (noise {s['noise']:.3f})"
            for s in steps
        )
        print(f"steps {name}: {shown}")
    if "clean_mos" in result:
        print(f"clean MOS {result['clean_mos']:.3f} (goal >= {GOAL_CLEAN_MOS:g}): "
              f"{'met' if result['clean_goal_met'] else 'MISSED'}")  # fmt: skip
    print(f"MOS non-increasing with loss: {'yes' if result['monotonic'] else 'NO'} "
          f"({result['rises']} rises, {result['rises_beyond_noise']} beyond noise)")  # fmt: skip


def run(quick: bool = False, ladder_repeats: int = REPEATS) -> dict[str, Any]:
    """Figures: re-check seconds with and without the probe, what it adds, CPU per scored minute,
    the Opus ceiling, and the loss ladder (`ladder_repeats` passes)."""
    repeats = 2 if quick else 3  # of each re-check
    figures: dict[str, Any] = {}
    root = Path(tempfile.mkdtemp(prefix="echoproof-bench-quality-"))
    try:
        # The synthetic receivers hear white noise at -61 dBFS in the probe's pauses, which
        # ViSQOL scores down: the threshold is off here, the cost is what is measured.
        thresholds = {"min_mos": 0.0}
        plain = synth.make_run(
            root / "plain", synth.Spec(duration_s=DURATION_S, thresholds=thresholds)
        )
        with_probe = synth.make_run(
            root / "probe",
            synth.Spec(duration_s=DURATION_S, thresholds=thresholds, probe_share=0.5),
        )
        for run_dir in (plain, with_probe):
            write_report(run_dir, key_path=root / "signing-key.pem", html=False)
        wall_plain, cpu_plain = _time_check(plain, repeats)
        wall_probe, cpu_probe = _time_check(with_probe, repeats)
        scored_min = _scored_s(with_probe) / 60
        figures["check_120s_without_probe_s"] = round(wall_plain, 3)
        figures["check_120s_with_probe_s"] = round(wall_probe, 3)
        figures["added_s"] = round(wall_probe - wall_plain, 3)
        figures["added_goal_ratio"] = round((wall_probe - wall_plain) / GOAL_ADDED_S, 3)
        figures["added_cpu_s"] = round(cpu_probe - cpu_plain, 3)
        figures["scored_audio_min"] = round(scored_min, 3)
        figures["cpu_s_per_scored_min"] = round((cpu_probe - cpu_plain) / scored_min, 3)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    figures.update(ceiling(30.0 if quick else DURATION_S))
    print(
        f"re-check of a 120 s run: {figures['check_120s_without_probe_s']:.2f} s without the "
        f"probe, {figures['check_120s_with_probe_s']:.2f} s with it (+{figures['added_s']:.2f} s, "
        f"goal <= {GOAL_ADDED_S:g} s); {figures['cpu_s_per_scored_min']:.2f} CPU s per minute of "
        f"probe scored ({figures['scored_audio_min']:.2f} min)"
    )
    print(
        f"Opus alone: MOS {figures['opus_mos_mean']:.3f} mean, {figures['opus_mos_min']:.3f} "
        f"lowest over {figures['opus_segments']:g} segments, pitch {figures['opus_pitch_ratio']}"
    )
    figures["ladder"] = ladder(quick, ladder_repeats)
    return figures


def main() -> None:
    """`python -m benchmarks.quality [--quick]`."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, a 30 s ceiling")
    parser.add_argument(
        "--repeats", type=int, default=REPEATS, help=f"loss ladder passes (default {REPEATS})"
    )
    args = parser.parse_args()
    run(quick=args.quick, ladder_repeats=args.repeats)


if __name__ == "__main__":
    main()
