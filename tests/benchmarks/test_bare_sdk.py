"""The bare SDK's measurement (onsets, matching, summary) and capacity's search taking turns."""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks import _bare_sdk as bare
from benchmarks import capacity

THRESHOLD = bare.ONSET_FRACTION * bare.AMPLITUDE * 32767
QUIET = int(bare.QUIET_S * bare.RATE)


def test_onsets_of_the_burst_signal() -> None:
    """One onset per burst, a few samples into its ramp, none inside a burst's zero crossings."""
    samples = bare._signal(440.0, 0.5, 5.0)
    found = bare.onsets(samples, THRESHOLD, QUIET)
    starts = np.arange(5) * bare.RATE + bare.RATE // 2  # 0.5 .. 4.5 s
    assert found.size == 5
    assert np.all((found - starts >= 0) & (found - starts < 0.002 * bare.RATE))


def test_onsets_need_a_quiet_stretch_before() -> None:
    """A loud sample right after another loud stretch is not a new onset."""
    x = np.zeros(bare.RATE, dtype=np.int16)
    x[1000:1100] = 30000
    x[1200:1300] = 30000  # 100 samples after: the same burst
    x[1300 + QUIET + 5] = -30000  # after a full quiet stretch: a new onset
    assert bare.onsets(x, THRESHOLD, QUIET).tolist() == [1000, 1300 + QUIET + 5]


def test_sample_times_add_the_offset_in_the_frame() -> None:
    """A sample's time is its frame's time plus its offset at 48 kHz."""
    frame_start = np.array([0, 480, 960])
    frame_ns = np.array([1_000_000_000, 1_030_000_000, 1_040_000_000])
    times = bare.sample_times_ns(np.array([0, 240, 480, 1000]), frame_start, frame_ns)
    assert times.tolist() == [1_000_000_000, 1_005_000_000, 1_030_000_000, 1_040_833_333]


def test_bursts_match_the_first_onset_after_them() -> None:
    """Each sent burst takes the next onset within the window; an early one is skipped, a missing
    one is lost."""
    ms = 1_000_000
    sent = np.array([1000, 2000, 3000, 4000]) * ms
    heard = np.array([500, 1050, 2060, 4070]) * ms  # 500: before any burst; 3000 never heard
    assert bare.match_bursts(sent, heard, 1000 * ms) == [50.0, 60.0, None, 70.0]


def test_summary_of_a_synthetic_run() -> None:
    """Recorders holding the sent signal 40 ms late give 40 ms per burst, none lost, complete."""
    signals = [bare._signal(440.0, 0.5, 4.0), bare._signal(550.0, 1.0, 4.0)]
    frames = signals[0].size // bare.FRAME
    sent_ns = [np.arange(frames, dtype=np.int64) * 10_000_000 for _ in signals]
    recorders = []
    for i in (1, 0):  # agent 0 hears agent 1's signal and the other way round
        recorder = bare.Recorder(6.0)
        recorder.since_ns = 0
        for k in range(frames):
            chunk = signals[i][k * bare.FRAME : (k + 1) * bare.FRAME]
            recorder.add(chunk.tobytes(), k * 10_000_000 + 40_000_000)
        recorders.append(recorder)
    summary = bare.summarise(signals, sent_ns, recorders, [True, True])
    assert summary["conversations_complete"] == 1
    assert summary["bursts_lost"] == 0
    assert summary["bursts_sent"] == 7  # 440 Hz at 0.5 .. 3.5 s, 550 Hz at 1 .. 3 s
    assert {x for d in summary["directions"] for x in d["latencies_ms"]} == {40.0}
    figures = capacity._bare_figures([summary])
    assert (figures["incomplete"], figures["latency_p95_ms"]) == (0, 40.0)


def test_recorder_drops_frames_before_the_audio() -> None:
    """Frames that arrive before the audio starts, or beyond the buffer, are not kept."""
    recorder = bare.Recorder(0.02)
    recorder.add(np.ones(480, dtype=np.int16).tobytes(), 5)  # since_ns not set yet
    recorder.since_ns = 10
    recorder.add(np.ones(480, dtype=np.int16).tobytes(), 5)
    for at in (10, 20, 30):
        recorder.add(np.full(480, 7, dtype=np.int16).tobytes(), at)
    assert (recorder.samples, recorder.frames) == (960, 2)
    assert recorder.frame_ns[:2].tolist() == [10, 20]


def test_searches_take_turns() -> None:
    """Two searches alternate trial by trial and each finds its own largest clean N."""
    calls: list[tuple[str, int]] = []

    def trial_for(kind: str, limit: int) -> capacity.Trial:
        def trial(n: int, duration_s: float, limit_ms: float, p95: str) -> dict[str, Any]:
            calls.append((kind, n))
            return {"clean": n <= limit, "duration_s": duration_s}

        return trial

    reference = {"clean": True, "latency_p95_ms": 50.0, "latency_p95_settled_ms": 50.0}
    found = capacity._interleave(
        {
            "pipeline": (capacity._search(reference, 4.0, 60.0, 15.0, 1e12, 2), trial_for("p", 5)),
            "bare": (capacity._search(reference, 4.0, 60.0, 15.0, 1e12, 2), trial_for("b", 6)),
        }
    )
    assert (found["pipeline"]["capacity_pairs"], found["bare"]["capacity_pairs"]) == (5, 6)
    kinds = [kind for kind, _ in calls]
    assert kinds[:4] == ["p", "b", "p", "b"]
