"""Figures against known truth: synthesised runs with injected delay, loss, repeats, lateness.

The truth comes from how the run was made (benchmarks/_synth.py); frame and byte counts are also
recomputed here with the csv module and plain numpy, independently of verify's readers.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import jsonschema
import numpy as np
import pytest

import verify
from benchmarks import _synth as synth
from verify.report import report_schema

MakeRun = Callable[..., Path]


def _direction(figures: dict, sender: str) -> dict:
    return next(d for d in figures["directions"] if d["from"] == sender)


def test_injected_delay_recovered(make_run: MakeRun) -> None:
    """Each direction's latency equals the injected delay within 0.1 ms, by both methods."""
    spec = synth.Spec(
        customer=synth.Direction(delay_ms=42.37), support=synth.Direction(delay_ms=131.05)
    )
    figures = verify.analyse(make_run(spec))
    for sender, delay in (("customer", 42.37), ("support", 131.05)):
        d = _direction(figures, sender)
        assert d["bursts_detected"] == d["bursts_sent"] > 0
        for method in ("latency_ms", "latency_raw_ms"):
            for stat in ("min", "median", "p95", "max"):
                assert d[method][stat] == pytest.approx(delay, abs=0.1), (sender, method, stat)
        per_burst = [b["latency_ms"] for b in d["bursts"]]
        assert np.allclose(per_burst, delay, atol=0.1)
    assert figures["latency_method"] == "fit"


def test_fit_removes_event_loop_jitter(make_run: MakeRun) -> None:
    """With jittered arrival times, the fitted figure stays on the truth while raw ones scatter."""
    jittery = synth.Direction(delay_ms=60.0, jitter_ms=3.0, outliers=0.05)
    spec = synth.Spec(duration_s=10.0, customer=jittery, support=jittery, seed=7)
    d = _direction(verify.analyse(make_run(spec)), "customer")
    fit = np.array([b["latency_ms"] for b in d["bursts"]])
    raw = np.array([b["latency_raw_ms"] for b in d["bursts"]])
    # the fit's median intercept keeps a fraction of the (one-sided) event-loop delay
    assert np.abs(fit - 60.0).max() < 1.5
    assert np.abs(fit - 60.0).mean() < 0.5 * np.abs(raw - 60.0).mean()
    assert d["latency_ms"]["jitter"] < d["latency_raw_ms"]["jitter"]


def test_lost_bursts_counted(make_run: MakeRun) -> None:
    """Bursts never heard are lost, named per burst, and fail the verdict."""
    spec = synth.Spec(customer=synth.Direction(lost=(1, 3)))
    figures = verify.analyse(make_run(spec))
    d = _direction(figures, "customer")
    assert d["bursts_lost"] == 2
    assert d["bursts_detected"] == d["bursts_sent"] - 2
    assert [b["burst"] for b in d["bursts"] if b["state"] == "lost"] == [1, 3]
    assert _direction(figures, "support")["bursts_lost"] == 0


def test_repeated_and_late_counted_separately(make_run: MakeRun) -> None:
    """A burst heard twice is repeated; one beyond the matching window is late, not detected."""
    spec = synth.Spec(
        thresholds={"match_window_ms": 200},
        customer=synth.Direction(repeated=(1,), late_ms={3: 250.0}),
    )
    d = _direction(verify.analyse(make_run(spec)), "customer")
    assert d["bursts_repeated"] == 1
    assert d["bursts_late"] == 1
    assert d["bursts_lost"] == 0
    late = next(b for b in d["bursts"] if b["burst"] == 3)
    assert late["state"] == "late"
    assert late["latency_ms"] == pytest.approx(42.37 + 250.0, abs=0.1)
    assert d["bursts_detected"] == d["bursts_sent"] - 1


def test_counts_match_an_independent_reading(make_run: MakeRun) -> None:
    """Frames, PCM bytes and samples equal a plain csv/numpy reading of the same files."""
    run = make_run()
    figures = verify.analyse(run)
    for d in figures["directions"]:
        with (run / d["files"]["sent"]).open() as f:
            sent = list(csv.DictReader(f))
        with (run / d["files"]["arrivals"]).open() as f:
            arrivals = list(csv.DictReader(f))
        with (run / d["files"]["bursts"]).open() as f:
            bursts = list(csv.DictReader(f))
        wav_bytes = (run / d["files"]["wav"]).stat().st_size - 44  # the stdlib writes 44 bytes
        assert d["frames_sent"] == len(sent)
        assert d["bytes_sent"] == 2 * sum(int(r["samples"]) for r in sent)
        assert d["frames_received"] == len(arrivals)
        assert d["bytes_received"] == 2 * sum(int(r["samples"]) for r in arrivals) == wav_bytes
        assert d["bursts_sent"] == len(bursts)
        assert d["tone_hz"] == pytest.approx(float(bursts[0]["freq_hz"]), abs=0.5)
        assert d["rtc"]["packet_loss_pct"] == 0.0
        assert d["rtc"]["packets_received"] == d["frames_received"] // 2


def test_snr_and_level(make_run: MakeRun) -> None:
    """Level is the burst amplitude in dBFS; SNR follows the injected noise."""
    d = _direction(verify.analyse(make_run(synth.Spec(noise=100.0))), "customer")
    assert d["level_dbfs"] == pytest.approx(20 * np.log10(0.5), abs=0.1)
    expected_snr = 10 * np.log10((0.5 * 32767) ** 2 / 2 / 100.0**2)
    assert d["snr_db"] == pytest.approx(expected_snr, abs=1.0)


def test_glitch_inside_burst(make_run: MakeRun) -> None:
    """A 20 ms dropout inside a burst is counted as a glitch of that burst."""
    run = make_run()
    figures = verify.analyse(run)
    d = _direction(figures, "customer")
    first = d["bursts"][0]
    path = run / d["files"]["wav"]
    raw = bytearray(path.read_bytes())
    start = 44 + 2 * (int(first["onset_sample"]) + 4800)
    raw[start : start + 2 * 960] = bytes(2 * 960)
    path.write_bytes(bytes(raw))
    assert d["glitches"] == 0
    d = _direction(verify.analyse(run), "customer")
    assert d["glitches"] == d["bursts_with_glitches"] == d["bursts"][0]["glitches"] == 1
    assert d["bursts_repeated"] == 0 and d["bursts_detected"] == d["bursts_sent"]


def test_report_matches_published_schema(signed_run: Path) -> None:
    """report.json validates against verify/report.schema.json with jsonschema."""
    report = json.loads((signed_run / "report.json").read_bytes())
    jsonschema.Draft202012Validator.check_schema(report_schema())
    jsonschema.Draft202012Validator(report_schema()).validate(report)
    for d in report["directions"]:
        for key in ("frames_sent", "frames_received", "bytes_sent", "bytes_received"):
            assert isinstance(d[key], int)
        assert set(d["latency_ms"]) >= {"min", "median", "p95", "max"}


def test_report_is_canonical_and_complete(signed_run: Path) -> None:
    """report.json is canonical JSON and hashes every evidence file."""
    payload = (signed_run / "report.json").read_bytes()
    report = json.loads(payload)
    assert verify.canonical_json(report) == payload
    evidence = {p.name for p in signed_run.iterdir()} - {
        "report.json",
        "report.dsse.json",
        "signer.pub.pem",
        "report.html",
    }
    evidence = {n for n in evidence if not n.endswith(".png")}
    assert set(report["evidence"]) == evidence
    assert report["verdict"] == {
        "passed": True,
        "status": "passed",
        "failures": [],
        "host_stalls": [],
        "reason": None,
    }
    assert report["status"] == "complete"


def test_interrupted_run_fails_verdict(make_run: MakeRun, tmp_path: Path) -> None:
    """A run whose status is interrupted gets a failed verdict that says so."""
    run = make_run(synth.Spec(status="interrupted"))
    result = verify.write_report(run, key_path=tmp_path / "k.pem", html=False)
    assert not result.passed
    assert result.failures[0] == (
        "run status is interrupted, expected complete: interrupted by SIGTERM"
    )


def test_thresholds_from_manifest_name_figure_and_limit(make_run: MakeRun, tmp_path: Path) -> None:
    """Thresholds in config.thresholds apply; each failure names direction, figure, value, limit."""
    run = make_run(synth.Spec(thresholds={"max_latency_median_ms": 50.0, "min_snr_db": 80.0}))
    result = verify.write_report(run, key_path=tmp_path / "k.pem", html=False)
    assert "support->customer: latency median 57.81 ms exceeds the maximum 50 ms" in (
        result.failures
    )
    assert not any(f.startswith("customer->support: latency") for f in result.failures)
    assert any(
        f.startswith("customer->support: SNR") and f.endswith("below the minimum 80 dB")
        for f in result.failures
    )
    assert result.report["thresholds"]["max_latency_median_ms"] == 50.0


def test_html_and_plots_written(signed_run: Path) -> None:
    """report.html references PNG plots that exist and are PNG files, the timeline first."""
    page = (signed_run / "report.html").read_text()
    pngs = sorted(p for p in signed_run.iterdir() if p.suffix == ".png")
    assert len(pngs) == 4
    assert page.index('src="timeline.png"') < page.index('src="latency.png"')
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f'src="{png.name}"' in page
    assert "Verdict: PASSED" in page


def test_process_pool_path_gives_same_figures(
    make_run: MakeRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Long runs analyse directions in forked processes: the figures are the same as threads'."""
    from verify import figures

    run = make_run()
    threaded = verify.analyse(run)
    monkeypatch.setattr(figures, "PROCESS_POOL_BYTES", 0)
    assert verify.analyse(run) == threaded


def test_killed_writer_still_gives_a_report(make_run: MakeRun, tmp_path: Path) -> None:
    """A run left `running` with a cut CSV line and extra WAV samples still gets a failed report."""
    run = make_run(synth.Spec(status="running"))
    arrivals = run / "support-from-customer.arrivals.csv"
    arrivals.write_bytes(arrivals.read_bytes()[:-9])  # the last row cut mid-line
    result = verify.write_report(run, key_path=tmp_path / "k.pem", html=False)
    assert not result.passed
    assert result.failures[0].startswith("run status is running, expected complete")
    d = _direction(result.report, "customer")
    assert d["frames_received"] == d["samples_received"] // 480 == 596
    [checked] = verify.check(run)
    assert not checked.ok and "run status is running" in checked.reason
