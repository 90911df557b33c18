"""Gaps against known truth: stretches of the sender's stream cut out of what the receiver heard.

The synthesised sender clock is T0 + sample / 48 kHz, so a cut starting at sender time S must be
reported at `start_s` S; its length is the cut's length (benchmarks/_synth.py).
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


def test_outage_is_one_gap_at_the_right_time_and_direction(make_run: MakeRun) -> None:
    """A 2.000 s outage across three bursts is one 2000 +- 10 ms gap at its start, one way only."""
    spec = _train(customer=synth.Direction(outages=((2.25, 2.0),)))
    figures = verify.analyse(make_run(spec))
    d = _direction(figures, "customer")
    [gap] = d["gaps"]
    assert gap["duration_ms"] == pytest.approx(2000.0, abs=10.0)
    assert gap["start_s"] == pytest.approx(2.25, abs=0.005)
    assert gap["bursts"] == [2, 3, 4]
    assert d["gap_total_ms"] == d["gap_max_ms"] == gap["duration_ms"]
    assert d["bursts_lost"] == 1  # burst 3 entirely; 2 and 4 were heard in part
    other = _direction(figures, "support")
    assert other["gaps"] == [] and other["gap_total_ms"] == other["gap_max_ms"] == 0.0


def test_concealment_fade_is_part_of_the_gap(make_run: MakeRun) -> None:
    """A tone fading out over 40 ms after the cut (concealment) does not shorten the gap."""
    cut = synth.Direction(outages=((2.25, 2.0),), outage_fade_s=0.04)
    [gap] = _direction(verify.analyse(make_run(_train(customer=cut))), "customer")["gaps"]
    assert gap["start_s"] == pytest.approx(2.25, abs=0.008)
    assert gap["duration_ms"] == pytest.approx(2000.0, abs=10.0)


def test_outage_starting_in_a_pause_starts_at_the_next_burst(make_run: MakeRun) -> None:
    """Audio missing only during a pause is no gap: the gap begins where the next burst began."""
    spec = _train(support=synth.Direction(delay_ms=57.81, outages=((3.65, 1.3),)))
    d = _direction(verify.analyse(make_run(spec)), "support")
    [gap] = d["gaps"]
    # support bursts start at 0.7 + k s (+ 7 k samples); burst 3 starts at 3.7 s + 21 samples
    assert gap["start_s"] == pytest.approx(3.7 + 21 / 48_000, abs=0.001)
    assert gap["duration_ms"] == pytest.approx((4.95 - 3.7) * 1000 - 21 / 48, abs=5.0)
    assert gap["bursts"] == [3, 4]


def test_short_dropout_inside_a_burst(make_run: MakeRun) -> None:
    """A 30 ms dropout is one 30 ms gap and one glitch; a 10 ms one is a glitch but no gap."""
    spec = synth.Spec(customer=synth.Direction(outages=((2.35, 0.03), (4.3, 0.01))))
    d = _direction(verify.analyse(make_run(spec)), "customer")
    [gap] = d["gaps"]
    assert gap["duration_ms"] == pytest.approx(30.0, abs=2.0)
    assert gap["start_s"] == pytest.approx(2.35, abs=0.002)
    assert gap["bursts"] == [2]
    assert d["glitches"] == 2
    assert [b["glitches"] for b in d["bursts"] if b["burst"] in (2, 4)] == [1, 1]
    assert d["bursts_detected"] == d["bursts_sent"]


def test_lost_burst_is_a_gap_of_its_length(make_run: MakeRun) -> None:
    """A burst never heard is a gap from its first to its last sample, not a glitch."""
    d = _direction(
        verify.analyse(make_run(synth.Spec(customer=synth.Direction(lost=(3,))))), "customer"
    )
    [gap] = d["gaps"]
    length_ms = synth.burst_len() / 48.0
    assert gap["duration_ms"] == pytest.approx(length_ms, abs=0.01)
    assert gap["start_s"] == pytest.approx(3.2 + 21 / 48_000, abs=1e-6)
    assert gap["bursts"] == [3] and d["glitches"] == 0


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
    assert f"customer → support: {found:.1f} ms from 2.250 s (bursts 2, 3, 4)" in page
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
