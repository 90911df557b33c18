"""Gaps against known truth: audio of heard bursts cut out of what the receiver heard.

The synthesised sender clock is T0 + sample / 48 kHz, so a cut starting at sender time S must be
reported at `start_s` S; its length is the part of the cut that held burst audio
(benchmarks/_synth.py). Holes in different bursts are different gaps; a burst never heard is
lost, not a gap; the pauses between bursts are never part of one.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import verify
from benchmarks import _synth as synth
from verify.report import report_schema

MakeRun = Callable[..., Path]


def _train(**fields: Any) -> synth.Spec:
    """Nearly continuous bursts: 0.9 s in every 1.0 s, as the impairment benchmark's outage case."""
    return dataclasses.replace(synth.Spec(duration_s=8.0, burst_s=0.9, period_s=1.0), **fields)


def _direction(figures: dict, sender: str) -> dict:
    return next(d for d in figures["directions"] if d["from"] == sender)


def _burst_start_s(spec: synth.Spec, role: str, burst: int) -> float:
    return dict(synth.schedule(spec, role))[burst] / synth.RATE


def _burst_end_s(spec: synth.Spec, role: str, burst: int) -> float:
    return _burst_start_s(spec, role, burst) + synth.burst_len(spec.burst_s) / synth.RATE


def test_an_outage_over_three_bursts_is_a_gap_in_each_heard_one(make_run: MakeRun) -> None:
    """A 2 s outage across bursts 2-4: the tail of burst 2 and the head of burst 4 are gaps of
    the audio missing from each, burst 3 is lost, and the pauses between count nowhere."""
    spec = _train(customer=synth.Direction(outages=((2.25, 2.0),)))
    figures = verify.analyse(make_run(spec))
    d = _direction(figures, "customer")
    tail, head = d["gaps"]
    assert (tail["burst"], head["burst"]) == (2, 4)
    assert tail["start_s"] == pytest.approx(2.25, abs=0.005)
    assert tail["duration_ms"] == pytest.approx(
        (_burst_end_s(spec, "customer", 2) - 2.25) * 1000, abs=10.0
    )
    head_start = _burst_start_s(spec, "customer", 4)
    assert head["start_s"] == pytest.approx(head_start, abs=0.001)
    assert head["duration_ms"] == pytest.approx((4.25 - head_start) * 1000, abs=10.0)
    assert d["gap_total_ms"] == pytest.approx(tail["duration_ms"] + head["duration_ms"], abs=0.01)
    assert d["gap_max_ms"] == tail["duration_ms"]
    assert d["bursts_lost"] == 1  # burst 3 entirely; 2 and 4 were heard in part
    other = _direction(figures, "support")
    assert other["gaps"] == [] and other["gap_total_ms"] == other["gap_max_ms"] == 0.0


def test_concealment_fade_is_part_of_the_gap(make_run: MakeRun) -> None:
    """A tone fading out over 40 ms after the cut (concealment) does not shorten the gap."""
    spec = _train(customer=synth.Direction(outages=((2.25, 2.0),), outage_fade_s=0.04))
    tail = _direction(verify.analyse(make_run(spec)), "customer")["gaps"][0]
    assert tail["start_s"] == pytest.approx(2.25, abs=0.008)
    assert tail["duration_ms"] == pytest.approx(
        (_burst_end_s(spec, "customer", 2) - 2.25) * 1000, abs=10.0
    )


def test_outage_starting_in_a_pause_starts_at_the_next_burst(make_run: MakeRun) -> None:
    """Audio missing only during a pause is no gap: burst 3, inside the outage, is lost, and the
    gap is the head of burst 4, from its first sample to where the audio resumed."""
    spec = _train(support=synth.Direction(delay_ms=57.81, outages=((3.65, 1.3),)))
    d = _direction(verify.analyse(make_run(spec)), "support")
    [head] = d["gaps"]
    # support bursts start at 0.7 + k s (+ 7 k samples): burst 3 spans 3.7-4.6 s
    assert d["bursts_lost"] == 1 and head["burst"] == 4
    start = _burst_start_s(spec, "support", 4)
    assert head["start_s"] == pytest.approx(start, abs=0.001)
    assert head["duration_ms"] == pytest.approx((4.95 - start) * 1000, abs=5.0)


def test_short_dropout_inside_a_burst(make_run: MakeRun) -> None:
    """A 30 ms dropout is one 30 ms gap and one glitch; a 10 ms one is a glitch but no gap."""
    spec = synth.Spec(customer=synth.Direction(outages=((2.35, 0.03), (4.3, 0.01))))
    d = _direction(verify.analyse(make_run(spec)), "customer")
    [gap] = d["gaps"]
    assert gap["duration_ms"] == pytest.approx(30.0, abs=2.0)
    assert gap["start_s"] == pytest.approx(2.35, abs=0.002)
    assert gap["burst"] == 2
    assert d["glitches"] == 2
    assert [b["glitches"] for b in d["bursts"] if b["burst"] in (2, 4)] == [1, 1]
    assert d["bursts_detected"] == d["bursts_sent"]


def test_a_lost_burst_is_no_gap(make_run: MakeRun) -> None:
    """A burst never heard is lost, not a gap: gaps are audio missing inside heard bursts."""
    d = _direction(
        verify.analyse(make_run(synth.Spec(customer=synth.Direction(lost=(3,))))), "customer"
    )
    assert d["bursts_lost"] == 1
    assert d["gaps"] == [] and d["glitches"] == 0


def test_neighbouring_holes_are_separate_gaps(make_run: MakeRun) -> None:
    """Two cuts in two neighbouring bursts are two gaps, each as long as its cut: the pause
    between them counts in neither."""
    spec = _train(customer=synth.Direction(outages=((2.5, 0.1), (3.3, 0.12))))
    gaps = _direction(verify.analyse(make_run(spec)), "customer")["gaps"]
    assert [g["burst"] for g in gaps] == [2, 3]
    assert [g["start_s"] for g in gaps] == [
        pytest.approx(2.5, abs=0.002),
        pytest.approx(3.3, abs=0.002),
    ]
    assert [g["duration_ms"] for g in gaps] == [
        pytest.approx(100, abs=2),
        pytest.approx(120, abs=2),
    ]


def test_clean_run_has_no_gaps(make_run: MakeRun) -> None:
    """A run with nothing cut has no gaps in either direction, despite noise and jitter."""
    jittery = synth.Direction(delay_ms=80.0, jitter_ms=3.0, outliers=0.05)
    spec = _train(noise=300.0, customer=jittery, support=jittery, seed=3)
    for d in verify.analyse(make_run(spec))["directions"]:
        assert d["gaps"] == [] and d["gap_total_ms"] == d["gap_max_ms"] == 0.0


def test_gap_threshold_names_direction_figure_value_limit(
    make_run: MakeRun, tmp_path: Path
) -> None:
    """max_gap_ms fails the verdict with one line; raising it in config.thresholds passes."""
    spec = _train(customer=synth.Direction(outages=((2.25, 2.0),)))
    result = verify.write_report(make_run(spec), key_path=tmp_path / "k.pem", html=False)
    gap = _direction(result.report, "customer")["gap_max_ms"]
    assert [f for f in result.failures if "gap" in f] == [
        f"customer->support: gap max {gap:g} ms (at 2.25029 s) exceeds the maximum 200 ms"
    ]
    spec.thresholds = {"max_gap_ms": 2500, "max_bursts_lost": 1}
    result = verify.write_report(
        make_run(spec, name="20261123T221900Z-1a2b3c4e"), key_path=tmp_path / "k.pem", html=False
    )
    assert result.passed, result.failures


def test_gaps_in_schema_html_and_recheck(make_run: MakeRun, tmp_path: Path) -> None:
    """Gaps validate against the schema, get a line each in report.html, and are re-checked."""
    spec = _train(
        thresholds={"max_gap_ms": 2500, "max_bursts_lost": 1},
        customer=synth.Direction(outages=((2.25, 2.0),)),
    )
    run = make_run(spec)
    key = tmp_path / "k.pem"
    verify.write_report(run, key_path=key)
    report = json.loads((run / "report.json").read_bytes())
    jsonschema.Draft202012Validator(report_schema()).validate(report)
    page = (run / "report.html").read_text()
    found = _direction(report, "customer")["gaps"][0]["duration_ms"]
    assert f"customer → support: {found:.1f} ms from 2.250 s (burst 2)" in page
    [checked] = verify.check(run)
    assert checked.ok, checked.reason

    index = report["directions"].index(_direction(report, "customer"))
    report["directions"][index]["gaps"][0]["duration_ms"] = 500.0
    synth.resign(run, report, key)
    [checked] = verify.check(run)
    assert not checked.ok
    assert (
        f"figure directions[{index}].gaps[0].duration_ms is 500.0 in report.json, "
        f"{json.dumps(found)} recomputed from the evidence"
    ) in checked.reason
