"""Bursts heard only from part-way through: "truncated", heard but not timed.

Synthesised runs (benchmarks/_synth.py) cut a stretch out of what the receiver heard: silence,
then the rest of the burst abruptly. The look-alikes keep their latency: a tail cut (the onset is
right, the burst short), a dropout inside a burst (the first part timed, the second a fragment),
and a burst that really arrived later (late at both ends).
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
from verify.figures import analyse_run
from verify.report import report_schema

MakeRun = Callable[..., Path]
DELAY_MS = 42.37  # synth's customer -> support delay


def _direction(figures: dict[str, Any], sender: str) -> dict[str, Any]:
    return next(d for d in figures["directions"] if d["from"] == sender)


def _burst(d: dict[str, Any], burst: int) -> dict[str, Any]:
    return next(b for b in d["bursts"] if b["burst"] == burst)


def _start_s(burst: int, spec: synth.Spec) -> float:
    """When the customer's burst `burst` starts in the sender's stream (s)."""
    return dict(synth.schedule(spec, "customer"))[burst] / synth.RATE


def _head_cut(spec: synth.Spec, burst: int, cut_s: float) -> synth.Spec:
    """`spec` with the first `cut_s` of the customer's `burst` never heard (from the pause)."""
    start = _start_s(burst, spec)
    cut = synth.Direction(outages=((start - 0.05, 0.05 + cut_s),))
    return dataclasses.replace(spec, customer=cut)


@pytest.mark.parametrize(("burst_s", "cut_s"), [(0.3, 0.15), (0.9, 0.45)])
def test_first_half_cut_is_truncated(make_run: MakeRun, burst_s: float, cut_s: float) -> None:
    """A burst whose first half is cut out is truncated: level and SNR, no latency, one glitch."""
    clean = synth.Spec(duration_s=8.0, burst_s=burst_s)
    run = make_run(_head_cut(clean, 2, cut_s))
    analysis = analyse_run(run)
    d = _direction(analysis.figures, "customer")
    cut = _burst(d, 2)
    assert cut["state"] == "truncated"
    assert "latency_ms" not in cut and "latency_raw_ms" not in cut
    assert cut["level_dbfs"] == pytest.approx(-6.02, abs=0.2) and cut["snr_db"] > 30.0
    # heard from where the audio resumed: timed, it would be `cut_s` too late
    expected_onset = _start_s(2, clean) * synth.RATE + (DELAY_MS - clean.start_ms) * 48
    assert cut["onset_sample"] - expected_onset == pytest.approx(cut_s * synth.RATE, abs=150)
    assert d["bursts_truncated"] == 1
    assert d["bursts_detected"] == d["bursts_sent"] - 1
    assert d["bursts_lost"] == d["bursts_late"] == 0
    assert cut["glitches"] == d["glitches"] == d["bursts_with_glitches"] == 1
    assert d["latency_ms"]["count"] == d["bursts_detected"]
    timed = [b["latency_ms"] for b in d["bursts"] if b["state"] == "detected"]
    assert d["latency_ms"]["max"] == max(timed) == pytest.approx(DELAY_MS, abs=0.1)
    assert d["latency_raw_ms"]["max"] == pytest.approx(DELAY_MS, abs=0.1)
    untouched = _direction(
        verify.analyse(make_run(clean, name="20261123T221900Z-1a2b3c4e")), "customer"
    )
    assert d["latency_ms"]["max"] <= untouched["latency_ms"]["max"]
    # the missing start is a gap at the burst's first sample, of the cut's length
    [gap] = d["gaps"]
    assert gap["burst"] == 2
    assert gap["start_s"] == pytest.approx(_start_s(2, clean), abs=0.001)
    assert gap["duration_ms"] == pytest.approx(cut_s * 1000.0, abs=6.0)
    [detail] = [x for x in analysis.details if x.label.startswith("customer")]
    assert detail.states.count("truncated") == 1 and "fragment" not in detail.states
    assert _direction(analysis.figures, "support")["bursts_truncated"] == 0


def test_tail_cut_keeps_its_latency(make_run: MakeRun) -> None:
    """A burst whose second half is cut (the outage began mid-burst) is detected and timed."""
    spec = synth.Spec()
    start = _start_s(2, spec)
    spec.customer = synth.Direction(outages=((start + 0.15, 0.4),))
    d = _direction(verify.analyse(make_run(spec)), "customer")
    cut = _burst(d, 2)
    assert cut["state"] == "detected"
    assert cut["latency_ms"] == pytest.approx(DELAY_MS, abs=0.1)
    assert cut["glitches"] == 1
    assert d["bursts_truncated"] == 0 and d["bursts_detected"] == d["bursts_sent"]


def test_dropout_inside_a_burst_keeps_the_first_parts_latency(make_run: MakeRun) -> None:
    """A 200 ms dropout splits a burst: the first part is timed, the second is a fragment."""
    spec = synth.Spec(duration_s=8.0, burst_s=0.9)
    spec.customer = synth.Direction(outages=((_start_s(2, spec) + 0.3, 0.2),))
    analysis = analyse_run(make_run(spec))
    d = _direction(analysis.figures, "customer")
    split = _burst(d, 2)
    assert split["state"] == "detected"
    assert split["latency_ms"] == pytest.approx(DELAY_MS, abs=0.1)
    [detail] = [x for x in analysis.details if x.label.startswith("customer")]
    assert detail.states.count("fragment") == 1 and "truncated" not in detail.states
    assert d["bursts_truncated"] == 0 and d["bursts_detected"] == d["bursts_sent"]
    assert d["latency_ms"]["max"] == pytest.approx(DELAY_MS, abs=0.1)


def test_burst_that_really_arrived_later_keeps_its_latency(make_run: MakeRun) -> None:
    """A whole burst 30 ms later than its neighbours is late at both ends: timed, not truncated."""
    spec = synth.Spec(customer=synth.Direction(late_ms={3: 30.0}))
    d = _direction(verify.analyse(make_run(spec)), "customer")
    assert _burst(d, 3)["state"] == "detected"
    assert _burst(d, 3)["latency_ms"] == pytest.approx(DELAY_MS + 30.0, abs=0.1)
    assert d["bursts_truncated"] == 0


def test_truncated_beyond_the_matching_window_is_not_late(make_run: MakeRun) -> None:
    """Heard from 150 ms in with a 100 ms window: truncated, neither late nor lost."""
    spec = _head_cut(synth.Spec(thresholds={"match_window_ms": 100}), 2, 0.15)
    d = _direction(verify.analyse(make_run(spec)), "customer")
    assert _burst(d, 2)["state"] == "truncated"
    assert d["bursts_late"] == d["bursts_lost"] == 0 and d["bursts_truncated"] == 1


def test_clean_run_has_no_truncated_burst(make_run: MakeRun) -> None:
    """Nothing cut, with noise and event-loop jitter: no burst is truncated, every one timed."""
    jittery = synth.Direction(delay_ms=80.0, jitter_ms=3.0, outliers=0.05)
    spec = synth.Spec(
        duration_s=8.0, burst_s=0.9, noise=300.0, customer=jittery, support=jittery, seed=3
    )
    analysis = analyse_run(make_run(spec))
    for d in analysis.figures["directions"]:
        assert d["bursts_truncated"] == 0
        assert d["bursts_detected"] == d["bursts_sent"]
    assert not any("truncated" in x.states for x in analysis.details)


def test_truncated_in_schema_html_and_recheck(make_run: MakeRun, tmp_path: Path) -> None:
    """A truncated burst validates against the schema, shows in report.html and is re-checked."""
    spec = _head_cut(synth.Spec(), 2, 0.15)
    spec.customer.jitter_buffer_ms = 35.5
    run = make_run(spec)
    key = tmp_path / "k.pem"
    result = verify.write_report(run, key_path=key)
    assert result.passed, result.failures
    report = json.loads((run / "report.json").read_bytes())
    jsonschema.Draft202012Validator(report_schema()).validate(report)
    assert "bursts truncated" in (run / "report.html").read_text()
    [checked] = verify.check(run)
    assert checked.ok, checked.reason

    index = report["directions"].index(_direction(report, "customer"))
    report["directions"][index]["bursts_truncated"] = 0
    report["directions"][index]["bursts"][2]["state"] = "detected"
    report["directions"][index]["rtc"]["jitter_buffer_ms"] = 10.0
    synth.resign(run, report, key)
    [checked] = verify.check(run)
    assert not checked.ok
    assert (
        f'figure directions[{index}].bursts[2].state is "detected" in report.json, '
        '"truncated" recomputed from the evidence'
    ) in checked.reason
    assert (
        f"figure directions[{index}].bursts_truncated is 0 in report.json, "
        "1 recomputed from the evidence"
    ) in checked.reason
    assert (
        f"figure directions[{index}].rtc.jitter_buffer_ms is 10.0 in report.json, "
        "35.5 recomputed from the evidence"
    ) in checked.reason


def test_jitter_buffer_delay_from_the_receivers_stats(make_run: MakeRun) -> None:
    """jitter_buffer_ms is delay / emitted samples of the receiver's stats; None when absent."""
    spec = synth.Spec(customer=synth.Direction(jitter_buffer_ms=35.5))
    figures = verify.analyse(make_run(spec))
    rtc = _direction(figures, "customer")["rtc"]
    assert rtc["jitter_buffer_ms"] == pytest.approx(35.5, abs=1e-4)
    assert rtc["jitter_buffer_target_ms"] == pytest.approx(17.75, abs=1e-4)
    other = _direction(figures, "support")["rtc"]
    assert other["jitter_buffer_ms"] is None and other["jitter_buffer_target_ms"] is None
