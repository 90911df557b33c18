"""verify on a real recorded run: the pipeline, the embedded server (port 0), two SDK agents, 6 s.

The run is recorded once per session (the `real_run` fixture, tests/verify/real_runs.py), then
signed and re-checked here; the raw latency of every burst is recomputed with plain csv/numpy.
A second real run, with a 2 s outage, checks that bursts heard from part-way are not timed.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

import verify
from tests.verify.real_runs import DURATION_S, record


@pytest.fixture
def signed_real_run(real_run: Path, tmp_path: Path) -> tuple[Path, verify.ReportResult]:
    """A private copy of the real run, signed by a fresh key."""
    run = Path(shutil.copytree(real_run, tmp_path / real_run.name))
    return run, verify.write_report(run, key_path=tmp_path / "key.pem")


def test_real_run_passes_and_checks_ok(signed_real_run: tuple[Path, verify.ReportResult]) -> None:
    """A real 6 s conversation passes its verdict and re-checks OK."""
    run, result = signed_real_run
    assert result.passed, result.failures
    [checked] = verify.check(run)
    assert checked.ok, checked.reason


def test_real_run_figures_are_sane(signed_real_run: tuple[Path, verify.ReportResult]) -> None:
    """Every burst sent is detected at the right tone; PCM and RTP figures are consistent."""
    _, result = signed_real_run
    for d in result.report["directions"]:
        assert d["bursts_sent"] >= DURATION_S - 2
        assert d["bursts_detected"] == d["bursts_sent"]
        assert d["tone_hz"] == pytest.approx(d["tone_expected_hz"], abs=1.0)
        assert d["bytes_received"] == 960 * d["frames_received"]
        assert d["bytes_sent"] == 960 * d["frames_sent"]
        assert 0.0 < d["latency_ms"]["min"] <= d["latency_ms"]["median"] < 500.0
        assert d["rtc"]["available"] and d["rtc"]["packets_received"] > 0
        assert d["rtc"]["encoded_bytes_received"] < d["bytes_received"]  # Opus, not PCM
        assert 0.0 < d["rtc"]["jitter_buffer_target_ms"] < d["latency_ms"]["median"]
        # the SDK's figure is a mean over the run, which a stall's fuller buffer can lift past
        # the latency's median: below the largest latency is what must hold
        assert 0.0 < d["rtc"]["jitter_buffer_ms"] < d["latency_ms"]["max"]
        # nothing impaired: nothing missing beyond what a busy machine's jitter buffer
        # stretches away (20-45 ms seen under load); a real outage is seconds
        assert d["gap_max_ms"] < 100.0, d["gaps"]


def _rows(path: Path) -> np.ndarray:
    with path.open() as f:
        return np.array([[int(v) for v in row.values()] for row in csv.DictReader(f)])


def test_real_run_raw_latency_recomputed_independently(
    signed_real_run: tuple[Path, verify.ReportResult],
) -> None:
    """Each burst's raw latency equals a plain numpy recomputation from the CSVs and onsets."""
    run, result = signed_real_run
    for d in result.report["directions"]:
        sent = _rows(run / d["files"]["sent"])
        arrivals = _rows(run / d["files"]["arrivals"])
        bursts = {int(r[0]): int(r[2]) for r in _rows_mixed(run / d["files"]["bursts"])}
        ref = d["onset_reference_samples"]
        for b in d["bursts"]:
            s = bursts[b["burst"]] + ref
            i = np.searchsorted(sent[:, 1], np.floor(s), "right") - 1
            t_tx = sent[i, 3] + (s - sent[i, 1]) / 48_000 * 1e9
            o = b["onset_sample"]
            j = np.searchsorted(arrivals[:, 1], np.floor(o), "right") - 1
            t_rx = arrivals[j, 3] + (o - arrivals[j, 1]) / 48_000 * 1e9
            assert (t_rx - t_tx) / 1e6 == pytest.approx(b["latency_raw_ms"], abs=0.01)


def _rows_mixed(path: Path) -> list[list[float]]:
    with path.open() as f:
        return [[float(v) for v in row.values()] for row in csv.DictReader(f)]


def test_real_run_tampered_wav_fails(signed_real_run: tuple[Path, verify.ReportResult]) -> None:
    """One changed byte in a real recording is a FAIL naming that WAV."""
    run, _ = signed_real_run
    wav = run / "customer-from-support.wav"
    data = bytearray(wav.read_bytes())
    data[len(data) // 3] ^= 0x10
    wav.write_bytes(bytes(data))
    [checked] = verify.check(run)
    assert not checked.ok
    assert "customer-from-support.wav has changed since it was signed" in checked.reason


def test_real_outage_leaves_no_latency_from_a_resumed_burst(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Real outage 4-6 s, 0.9 s bursts: the burst the stream resumes in is truncated, not timed.

    The outage ends about half-way through a burst (bursts start ~0.5 s after a stream's first
    packet, every 1.0 s); timed, that burst would read ~500 ms above the others.
    """
    config = {
        "mode": "duplex",
        "burst": {"duration_s": 0.9, "period_s": 1.0, "ramp_s": 0.005, "amplitude": 0.5},
    }
    run = record(tmp_path_factory.mktemp("outage"), 10, config, ((4.0, 2.0),))
    figures = verify.analyse(run)
    for d in figures["directions"]:
        assert d["bursts_truncated"] >= 1, d["bursts"]
        latency = d["latency_ms"]
        assert latency["max"] < latency["median"] + 200.0, d["bursts"]  # not ~ +500
        for b in d["bursts"]:
            assert ("latency_ms" in b) == (b["state"] in ("detected", "late")), b
        assert d["bursts_with_glitches"] >= d["bursts_truncated"]
