"""The speech-like probe on the capture side: where the pieces go, what they sound like, `--probe
FILE`; then real runs on the embedded server, scored by verify."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
from scipy.signal import resample_poly

import dsp
import verify
from benchmarks import _synth as synth
from benchmarks._opus import opus_round_trip
from dsp import speech
from echoproof.contract import SAMPLE_RATE
from pipeline.config.faults import RATE_FAULT_ENV, RateFault
from pipeline.errors import ConfigError
from pipeline.script import Script, total_frames
from pipeline.tones import probe
from pipeline.tones.schedule import Burst, burst_script, schedule
from tests.conftest import scaled
from tests.pipeline.conftest import LiveServer, run_cli, write_config
from verify import quality


def _bursts(role: str, duration_s: float) -> list[Burst]:
    tone = 440.0 if role == "customer" else 550.0
    return schedule(
        role, mode="turns", tone_hz=tone, duration_s=duration_s,
        burst_samples=len(_waveform(tone)), period_s=1.0,
    )  # fmt: skip


def _waveform(tone: float) -> np.ndarray:
    return dsp.burst(tone, 0.3, SAMPLE_RATE, amplitude=0.5, ramp_s=0.005)


def _stream(role: str, duration_s: float, played: Script[probe.Piece] | None) -> np.ndarray:
    """What `role` sends in `duration_s`: its bursts, and the probe when `played` is given."""
    bursts = _bursts(role, duration_s)
    script = burst_script(bursts, _waveform(bursts[0].freq_hz), played)
    return np.concatenate([script.frame(n) for n in range(total_frames(duration_s))])


def test_pieces_lie_between_bursts_clear_by_the_guard() -> None:
    """Every piece sits in a gap of its sender's bursts, GUARD_S from either; segments 0, 2, 4
    carry it at share 0.5 and every segment at 1; the probe signal is played on, piece by piece."""
    bursts = _bursts("support", 60.0)
    pieces = probe.plan(bursts, 0.5, 1_000_000)
    guard = round(probe.GUARD_S * SAMPLE_RATE)
    for p in pieces:
        before = max(b.end_sample for b in bursts if b.start_sample < p.start_sample)
        after = min(b.start_sample for b in bursts if b.start_sample > p.start_sample)
        assert p.start_sample - before >= guard and after - p.end_sample >= guard
    assert sorted({p.segment for p in pieces}) == [0, 2, 4, 6]
    assert all(b.probe_sample == a.probe_sample + a.samples for a, b in itertools.pairwise(pieces))
    every = probe.plan(bursts, 1.0, 1_000_000)
    assert sorted({p.segment for p in every}) == list(range(8))


def test_probe_leaves_the_burst_figures_unchanged() -> None:
    """Through Opus, each burst is detected at the same onset, level and SNR with the probe
    between the bursts as without it, and nothing else is detected."""
    signal = probe.synthetic(1, (440.0, 550.0))
    pieces = probe.plan(_bursts("customer", 20.0), 1.0, len(signal))
    with_probe = opus_round_trip(
        _stream("customer", 20.0, probe.probe_script(pieces, signal, None))
    )
    without = opus_round_trip(_stream("customer", 20.0, None))
    assert np.any(with_probe != without)
    found = dsp.detect_bursts(with_probe, SAMPLE_RATE, 440.0, duration_s=0.3)
    clean = dsp.detect_bursts(without, SAMPLE_RATE, 440.0, duration_s=0.3)
    assert len(found) == len(clean) == len(_bursts("customer", 20.0))
    for a, b in zip(found, clean, strict=True):
        assert a.onset == pytest.approx(b.onset, abs=0.05)
        assert a.level_dbfs == pytest.approx(b.level_dbfs, abs=0.05)
        assert a.snr_db > 30


def test_rate_fault_plays_the_probe_low_and_slow() -> None:
    """24 kHz audio played as 22.05 kHz: the pieces arrive 8.1 % low, and score lower."""
    signal = probe.synthetic(2, (440.0, 550.0))
    pieces = probe.plan(_bursts("customer", 12.0), 1.0, len(signal))
    fault = RateFault("customer", 24_000, 22_050)
    heard = _stream("customer", 12.0, probe.probe_script(pieces, signal, fault))
    clean = _stream("customer", 12.0, probe.probe_script(pieces, signal, None))
    table = quality.Pieces(
        *(np.array([getattr(p, f) for p in pieces]) for f in probe.Piece.__dataclass_fields__)
    )
    anchors = (np.array([0.0]), np.array([0.0]))
    bad = quality.score(heard, signal, table, anchors, SAMPLE_RATE)
    good = quality.score(clean, signal, table, anchors, SAMPLE_RATE)
    assert [s["pitch_ratio"] for s in bad] == [pytest.approx(22_050 / 24_000, abs=0.003)]
    assert [s["pitch_ratio"] for s in good] == [pytest.approx(1.0, abs=0.003)]
    assert bad[0]["mos"] < good[0]["mos"] - 0.5


def test_probe_file_is_read_with_soundfile_and_resampled(tmp_path: Path) -> None:
    """A 16 kHz FLAC comes out at 48 kHz, as long, with the tones' bands removed; other
    formats and unreadable files are refused in one sentence."""
    voice = speech.artificial_voice(4, 3.0, 16_000)
    path = tmp_path / "me.flac"
    soundfile.write(str(path), voice, 16_000, subtype="PCM_16")
    signal = probe.load_file(path, (440.0, 550.0))
    assert signal.dtype == np.int16 and len(signal) == 3 * SAMPLE_RATE
    back = resample_poly(signal / 32768, 1, 3)
    assert np.corrcoef(back, speech.clear_tones(voice, 16_000, (440.0, 550.0)))[0, 1] > 0.99
    (tmp_path / "me.mp3").write_bytes(b"ID3")
    with pytest.raises(ConfigError, match="expected WAV, FLAC or OGG"):
        probe.load_file(tmp_path / "me.mp3", (440.0, 550.0))
    (tmp_path / "bad.wav").write_bytes(b"RIFF" + bytes(40))
    with pytest.raises(ConfigError, match=r"bad\.wav cannot be read"):
        probe.load_file(tmp_path / "bad.wav", (440.0, 550.0))


async def _run(
    server: LiveServer,
    tmp_path: Path,
    *args: str,
    env: dict[str, str] | None = None,
    duration_s: float = 10,
    **fields: Any,
):
    config = write_config(
        tmp_path / "c.json",
        server.url,
        server.api_key,
        server.api_secret,
        signing_key=str(tmp_path / "key.pem"),
        **fields,
    )
    out = tmp_path / "recordings"
    done = await run_cli(
        "--config", str(config), "--duration", str(duration_s), "--out", str(out), *args,
        limit_s=scaled(120 + duration_s), env=env,
    )  # fmt: skip
    assert "Traceback" not in done.stderr
    (run,) = out.iterdir()
    return done, run, json.loads((run / "report.json").read_bytes())


async def test_real_run_with_a_probe_file_scores_and_rechecks(
    server: LiveServer, tmp_path: Path
) -> None:
    """`--probe FILE` on the embedded server: both directions score MOS >= 4.0 at pitch 1.0; a
    report re-signed with another MOS fails the re-check, naming the figure."""
    path = tmp_path / "me.flac"
    soundfile.write(str(path), speech.artificial_voice(5, 10.0, 16_000), 16_000)
    done, run, report = await _run(server, tmp_path, "--probe", str(path))
    assert done.code == 0, done.stderr[-2000:]
    manifest = json.loads((run / "manifest.json").read_bytes())
    assert manifest["probe"]["source"] == "file" and manifest["probe"]["name"] == "me.flac"
    for d in report["directions"]:
        q = d["quality"]
        assert q["segments_scored"] == 1 and q["segments"][0]["pieces"] >= 7
        assert q["mos"] >= 4.0, q
        (seg,) = q["segments"]
        if seg["disturbed"]:  # a host stall may have stretched it: left out of the ratio
            assert q["pitch_ratio"] is None and q["pitch_segments_left_out"], q
        else:
            assert q["pitch_ratio"] == pytest.approx(1.0, abs=0.005), q
        assert d["detections_unexpected"] == 0
    assert verify.check(run)[0].ok
    q = report["directions"][0]["quality"]
    q["mos"] = round(q["mos"] - 0.3, 3)
    synth.resign(run, report, tmp_path / "key.pem")
    (result,) = verify.check(run)
    assert not result.ok
    assert any("figure directions[0].quality.mos is" in r for r in result.reasons), result.reasons


async def test_real_run_with_a_sample_rate_error_fails_naming_it(
    server: LiveServer, tmp_path: Path
) -> None:
    """The Support agent plays its 24 kHz probe as 22.05 kHz: its direction scores lower and the
    verdict names the pitch shift and the likely rates, consistent over every judged segment (a
    rate mismatch is constant; three segments, so a host stall in one leaves others to judge);
    the tones still time every burst."""
    env = {RATE_FAULT_ENV: "support:24000:22050"}
    share = {"share": 1.0, "seed": 1, "file": None}
    done, _, report = await _run(server, tmp_path, env=env, duration_s=20, probe=share)
    assert done.code == 1, done.stderr[-2000:]
    by = {d["from"]: d for d in report["directions"]}
    assert by["support"]["quality"]["pitch_ratio"] == pytest.approx(0.919, abs=0.005)
    assert by["customer"]["quality"]["pitch_ratio"] == pytest.approx(1.0, abs=0.005)
    assert by["support"]["quality"]["mos"] < by["customer"]["quality"]["mos"] - 0.3
    assert by["support"]["bursts_lost"] == 0
    (line,) = [f for f in report["verdict"]["failures"] if "pitched" in f]
    assert line.startswith("support->customer: the probe arrives pitched 8.1 % low")
    assert "24 kHz audio played as 22.05 kHz" in line
    assert "pitched 8.1 % low" in done.stdout + done.stderr
