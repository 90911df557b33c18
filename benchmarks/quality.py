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

    python -m benchmarks.quality [--quick]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import dsp
from benchmarks import _synth as synth
from benchmarks._opus import opus_round_trip
from benchmarks.verify import _cpu_s
from pipeline import probe
from pipeline.voice import SAMPLE_RATE, Voice, schedule, total_frames
from verify import check, quality, write_report

GOAL_ADDED_S = 5.0
DURATION_S = 120.0


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
    voice = Voice(bursts, waveform, probe.ProbeVoice(pieces, signal, None))
    sent = np.concatenate([voice.frame(n) for n in range(total_frames(duration_s))])
    heard = opus_round_trip(sent)
    found = dsp.detect_bursts(heard, SAMPLE_RATE, tones[0], duration_s=0.3)
    starts = np.array([b.start_sample for b in bursts], dtype=np.float64)
    onsets = np.array([b.onset for b in found], dtype=np.float64)
    if len(onsets) != len(starts):
        raise RuntimeError(f"{len(onsets)} of {len(starts)} bursts found through Opus")
    table = quality.Pieces(
        *(np.array([getattr(p, f) for p in pieces]) for f in probe.Piece.__dataclass_fields__)
    )
    segments, ratio = quality.score(heard, signal, table, (starts, onsets - starts), SAMPLE_RATE)
    scores = [s["mos"] for s in segments]
    return {
        "opus_mos_mean": round(float(np.mean(scores)), 3),
        "opus_mos_min": round(min(scores), 3),
        "opus_segments": len(scores),
        "opus_pitch_ratio": round(ratio or 0.0, 4),
    }


def run(quick: bool = False) -> dict[str, float]:
    """Figures: re-check seconds with and without the probe, what it adds, CPU per scored minute,
    and the Opus ceiling."""
    repeats = 2 if quick else 3
    figures: dict[str, float] = {}
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
    return figures


def main() -> None:
    """`python -m benchmarks.quality [--quick]`."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, a 30 s ceiling")
    run(quick=parser.parse_args().quick)


if __name__ == "__main__":
    main()
