"""The probe's score in verify: segments placed by the bursts, re-checked within its tolerance,
short segments left out, missing probe files named, the pitch shift worded with likely rates."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import verify
from benchmarks import _synth as synth
from dsp import speech
from verify import quality
from verify.host import Disturbance, attribute
from verify.thresholds import Thresholds

RATE = 48_000
# The synthetic receivers hear white noise in the probe's pauses, which ViSQOL scores down.
SPEC = {"duration_s": 20.0, "probe_share": 1.0, "thresholds": {"min_mos": 0.0}}


@pytest.fixture(scope="module")
def probe_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A synthesised 20 s run with the probe in every segment, signed once; and its key."""
    root = tmp_path_factory.mktemp("probe")
    run = synth.make_run(root, synth.Spec(**SPEC))
    verify.write_report(run, key_path=root / "key.pem", html=False)
    return run, root / "key.pem"


@pytest.fixture
def probe_run(probe_template: tuple[Path, Path], tmp_path: Path) -> Path:
    """A private copy of the signed probe run."""
    return Path(shutil.copytree(probe_template[0], tmp_path / probe_template[0].name))


def _report(run: Path) -> dict:
    return json.loads((run / "report.json").read_bytes())


def test_each_direction_is_scored_per_segment(probe_run: Path) -> None:
    """Both directions: the segments the senders played (0, 1; the third is too short), each
    with its pieces and send time, the pitch 1.0, and the run re-checks OK."""
    for d in _report(probe_run)["directions"]:
        q = d["quality"]
        assert q["mapper"] == "exponential" and q["segment_s"] == 8.0
        assert [s["segment"] for s in q["segments"]] == [0, 1]
        assert all(s["pieces"] >= 7 and 1.0 <= s["mos"] <= 5.0 for s in q["segments"])
        assert q["segments"][1]["sent_s"] - q["segments"][0]["sent_s"] == pytest.approx(8, abs=1)
        assert q["mos"] == pytest.approx(np.mean([s["mos"] for s in q["segments"]]), abs=1e-3)
        assert q["pitch_ratio"] == pytest.approx(1.0, abs=0.003)
    assert verify.check(probe_run)[0].ok


@pytest.mark.parametrize(("shift", "ok"), [(0.005, True), (0.05, False)])
def test_a_changed_score_fails_beyond_the_tolerance(
    probe_template: tuple[Path, Path], probe_run: Path, shift: float, ok: bool
) -> None:
    """A re-signed report whose segment MOS moved within 0.01 re-checks OK; beyond, it FAILs."""
    report = _report(probe_run)
    segment = report["directions"][1]["quality"]["segments"][0]
    segment["mos"] = round(segment["mos"] + shift, 3)
    synth.resign(probe_run, report, probe_template[1])
    (result,) = verify.check(probe_run)
    assert result.ok is ok, result.reason
    if not ok:
        assert "figure directions[1].quality.segments[0].mos is" in result.reason


def test_missing_probe_file_fails_naming_it(probe_run: Path) -> None:
    """probe.wav removed: the re-check FAILs naming it, and nothing is scored."""
    (probe_run / "probe.wav").unlink()
    (result,) = verify.check(probe_run)
    assert not result.ok and "evidence file probe.wav is missing" in result.reason


def test_short_segments_are_left_out_and_silence_scores_the_floor() -> None:
    """Under MIN_SEGMENT_S of probe a segment is not scored; a segment heard as silence is 1.0."""
    probe = speech.to_int16(speech.artificial_voice(1, 10.0, RATE))
    piece = RATE // 2
    n = 6  # 3 s of probe in segment 0, 1.5 s in segment 1
    table = quality.Pieces(
        np.arange(n),
        np.array([0, 0, 0, 0, 0, 0]),
        np.arange(n) * RATE,
        np.full(n, piece),
        np.arange(n) * piece,
    )
    short = table.first(3)
    anchors = (np.array([0.0]), np.array([0.0]))
    silent = np.zeros(n * RATE, dtype=np.int16)
    segments = quality.score(silent, probe, table, anchors, RATE)
    assert segments == [{"segment": 0, "pieces": 6, "mos": 1.0, "pitch_ratio": None}]
    assert quality.score(silent, probe, short, anchors, RATE) == []


def _segment(k: int, mos: float = 4.9, ratio: float | None = 1.0) -> dict:
    return {"segment": k, "pieces": 8, "mos": mos, "sent_s": 1.0 + 8 * k, "pitch_ratio": ratio}


def _judged(segments: list[dict], *spans: Disturbance) -> dict:
    q = quality.figures(segments, 8.0)
    quality.judge(q, list(spans))
    return q


@pytest.mark.parametrize(
    ("ratio", "rates"),
    [(0.9186, "24 kHz audio played as 22.05 kHz"), (1.088, "22.05 kHz audio played as 24 kHz"),
     (44.1 / 48, "48 kHz audio played as 44.1 kHz")],
)  # fmt: skip
def test_pitch_shift_fails_naming_the_likely_rates(ratio: float, rates: str) -> None:
    """A pitch beyond max_pitch_shift_pct in every judged segment is one failure line naming
    direction, shift and rates; it is never put down to the host."""
    q = _judged([_segment(0, ratio=ratio), _segment(2, ratio=ratio * 1.001)])
    (failure,) = quality.failures("support->customer", q, Thresholds())
    assert failure.line.startswith("support->customer: the probe arrives pitched")
    assert "the same in all 2 judged segments" in failure.line
    assert rates in failure.line and not failure.host_may_explain


def test_a_shift_in_one_segment_is_no_rate_mismatch() -> None:
    """A rate mismatch is constant over a run: one segment at 1.3 among segments at 1.0 names
    no sample rate."""
    q = _judged([_segment(0), _segment(1, ratio=1.3), _segment(2)])
    assert q["pitch_ratio"] == 1.0
    assert quality.failures("customer->support", q, Thresholds()) == []


def test_segments_a_stall_disturbed_are_left_out_of_the_pitch() -> None:
    """Segments overlapping a disturbance of 60 ms or more (or a freeze) are named as left out
    and do not move the ratio; a shorter stall leaves them in."""
    freeze = Disturbance(16.0, 22.0, 490.0, True, "frozen")
    q = _judged([_segment(0), _segment(2, ratio=1.31), _segment(3)], freeze)
    assert [s["disturbed"] for s in q["segments"]] == [False, True, False]  # 3 starts at 25 s
    assert q["pitch_segments_left_out"] == [2] and q["pitch_ratio"] == 1.0
    assert quality.failures("customer->support", q, Thresholds()) == []
    short = Disturbance(16.0, 22.0, 40.0, False, "a 40 ms stall")
    assert _judged([_segment(0), _segment(2, ratio=1.31)], short)["pitch_segments_left_out"] == []


def test_a_shift_seen_only_while_disturbed_is_the_hosts_to_explain() -> None:
    """With every segment disturbed, a consistent shift names no sample rate: the failure says
    there was nothing left to judge, and the disturbance may explain it."""
    stall = Disturbance(0.0, None, 300.0, False, "a stall")
    q = _judged([_segment(0, ratio=0.8), _segment(1, ratio=0.8)], stall)
    assert q["pitch_ratio"] is None
    (failure,) = quality.failures("customer->support", q, Thresholds())
    assert "sample-rate mismatch" in failure.line and "kHz" not in failure.line
    assert failure.host_may_explain and failure.direction == "customer->support"
    assert attribute([failure], {"customer->support": [stall]}) == [stall]


def test_low_mos_fails_with_the_lowest_segment() -> None:
    """A mean MOS under min_mos fails, naming the lowest segment and when it was sent."""
    q = _judged([_segment(0, mos=4.2), _segment(2, mos=3.1)])
    (failure,) = quality.failures("customer->support", q, Thresholds())
    assert failure.line == (
        "customer->support: speech quality MOS 3.65 (ViSQOL; lowest 3.1 at 17 s) is below the "
        "minimum 4.5"
    )
    assert failure.windows is not None and len(failure.windows) == 2


def test_no_probe_no_quality(make_run: Callable[..., Path]) -> None:
    """A run made without a probe has no quality block and no quality threshold applies."""
    report = verify.analyse(make_run())
    assert all("quality" not in d for d in report["directions"])


def _segments(mos: list[float]) -> list[dict]:
    return [{"segment": i, "mos": m} for i, m in enumerate(mos)]


def test_a_recheck_samples_the_lowest_and_a_seeded_draw() -> None:
    """Up to RECHECK_ALL_UP_TO segments: all; beyond, the lowest RECHECK_LOWEST and a draw of
    RECHECK_DRAWN that the seed decides, the rest carried."""
    few = quality.Recheck(1, {"a->b": _segments([3.0] * quality.RECHECK_ALL_UP_TO)})
    assert few.sample("a->b") is None and few.sample("b->a") is None
    mos = [4.0 + i / 100 for i in range(40)]
    mos[17], mos[33] = 1.5, 2.0  # two bad segments among good ones
    signed = {"a->b": _segments(mos)}
    sample = quality.Recheck(7, signed).sample("a->b")
    assert sample is not None
    chosen, carried = sample
    lowest = sorted(range(40), key=lambda i: mos[i])[: quality.RECHECK_LOWEST]
    assert {17, 33} <= set(lowest) <= chosen
    assert len(chosen) == quality.RECHECK_LOWEST + quality.RECHECK_DRAWN
    assert sorted([*chosen, *(s["segment"] for s in carried)]) == list(range(40))
    assert quality.Recheck(7, signed).sample("a->b") == sample  # the seed decides alone
    draws = {frozenset(quality.Recheck(seed, signed).sample("a->b")[0]) for seed in range(5)}
    assert len(draws) > 1


def test_a_long_probe_is_rechecked_on_a_sample_and_in_full_on_request(tmp_path: Path) -> None:
    """20 segments per direction: the re-check scores 16 again (a changed score among them
    FAILs) and carries the others' signed scores; --full scores every one again, so that a
    changed carried score FAILs too."""
    run = synth.make_run(tmp_path / "runs", synth.Spec(**{**SPEC, "duration_s": 164.0}))
    key = tmp_path / "key.pem"
    verify.write_report(run, key_path=key, html=False)
    report = _report(run)
    n = len(report["directions"][0]["quality"]["segments"])
    assert n > quality.RECHECK_ALL_UP_TO
    (result,) = verify.check(run)
    assert result.ok, result.reason
    assert set(result.quality_rechecked) == {"customer->support", "support->customer"}
    sampled = result.quality_rechecked["customer->support"]
    assert len(sampled["scored"]) == quality.RECHECK_LOWEST + quality.RECHECK_DRAWN
    assert sampled["of"] == n
    (full,) = verify.check(run, full=True)
    assert full.ok and full.quality_rechecked == {}

    # a carried segment's score changed and re-signed: only --full scores it again
    segments = report["directions"][0]["quality"]["segments"]
    index = next(i for i, s in enumerate(segments) if s["segment"] not in sampled["scored"])
    segments[index]["mos"] = round(segments[index]["mos"] + 0.05, 3)
    report["directions"][0]["quality"]["mos"] = round(
        float(np.mean([s["mos"] for s in segments])), 3
    )
    synth.resign(run, report, key)
    (changed,) = verify.check(run, full=True)
    assert not changed.ok
    assert f"figure directions[0].quality.segments[{index}].mos is" in changed.reason
