"""A recording read a stretch at a time: its reads, its cut, its envelope, and a whole run's
figures and page made without reading more than a chunk of it at once."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

import verify
from benchmarks import _synth as synth
from dsp import source
from verify import evidence as ev
from verify import figures, waveform
from verify.recording import Recording


def _wav(path: Path, samples: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(ev.SAMPLE_RATE)
        w.writeframes(samples.astype("<i2").tobytes())
    return path


def test_reads_are_cut_to_the_file_and_to_its_cut(tmp_path: Path) -> None:
    """A stretch beyond either end is cut there; after `cut` nothing past it is read; closing
    twice is safe."""
    x = np.arange(-5000, 5000, dtype=np.int16)
    with Recording(_wav(tmp_path / "a.wav", x)) as r:
        assert r.size == x.size
        np.testing.assert_array_equal(r.read(-10, 5), x[:5])
        np.testing.assert_array_equal(r.read(9990, 20_000), x[9990:])
        assert r.read(20_000, 30_000).size == 0
        r.cut(100)
        np.testing.assert_array_equal(r.read(90, 200), x[90:100])
    r.close()


def test_the_envelope_is_each_stretchs_min_and_max(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read in chunks smaller than the file, the envelope equals the whole array's."""
    x = np.random.default_rng(0).integers(-30000, 30000, 100_003).astype(np.int16)
    monkeypatch.setattr(source, "CHUNK_SAMPLES", 1000)
    with Recording(_wav(tmp_path / "a.wav", x)) as r:
        low, high, per = r.envelope(1000)
    assert per == 100 and low.size == 1000
    body = x[: 1000 * per].reshape(1000, per)
    np.testing.assert_array_equal(low, body.min(axis=1))
    np.testing.assert_array_equal(high, body.max(axis=1))


def test_no_path_is_a_recording_of_nothing() -> None:
    """A missing file (the verdict names it) reads as nothing."""
    with Recording(None) as r:
        assert r.size == 0 and r.read(0, 10).size == 0
        assert r.envelope(1000)[0].size == 0


def test_a_run_is_verified_and_drawn_a_chunk_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With chunks of 2 s, a 12 s run with a probe gives the same figures and waveforms as
    with the usual minute, and no read of a received recording is longer than a chunk."""
    run = synth.make_run(tmp_path / "runs", synth.Spec(duration_s=12.0, probe_share=0.5))
    key = tmp_path / "signing-key.pem"
    report = verify.write_report(run, key_path=key, html=False).report
    assert max(d["samples_received"] for d in report["directions"]) > 10 * ev.SAMPLE_RATE
    drawn = [s.as_json() for s in waveform.streams(run, report)]

    chunk = 2 * ev.SAMPLE_RATE
    monkeypatch.setattr(source, "CHUNK_SAMPLES", chunk)  # the detector's, the waveform's
    lengths: list[int] = []
    read = Recording.read
    received = {d["files"]["wav"] for d in report["directions"]}

    def noted(r: Recording, start: int, stop: int) -> np.ndarray:
        out = read(r, start, stop)
        if r.name in received:  # the probe's reference is read whole: its length is fixed
            lengths.append(out.size)
        return out

    monkeypatch.setattr(Recording, "read", noted)
    # in this process, where the reads are noted (a probe run forks a worker per direction)
    monkeypatch.setattr(
        figures,
        "_map_directions",
        lambda tasks, long_run: list(map(figures._direction_task, tasks)),
    )
    again = figures.analyse(run)
    assert again == {k: report[k] for k in again}
    assert len(lengths) > 50 and max(lengths) <= chunk
    lengths.clear()
    assert [s.as_json() for s in waveform.streams(run, report)] == drawn
    assert 0 < max(lengths) <= chunk
