"""Readers of the run folder (WAV, timing and burst CSVs, manifest): bad input in one sentence."""

from __future__ import annotations

import json
import struct
import wave
from pathlib import Path

import numpy as np
import pytest

from verify import EvidenceError
from verify import evidence as ev


def _wav(path: Path, samples: np.ndarray, rate: int = 48_000, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())
    return path


def test_wav_round_trip(tmp_path: Path) -> None:
    """The samples written by the stdlib wave module come back unchanged."""
    x = np.arange(-500, 500, dtype=np.int16)
    assert np.array_equal(ev.read_wav(_wav(tmp_path / "a.wav", x)), x)


def test_wav_with_extra_chunk(tmp_path: Path) -> None:
    """Chunks other than fmt and data (LIST, PEAK...) are skipped."""
    x = np.arange(10, dtype=np.int16)
    raw = _wav(tmp_path / "a.wav", x).read_bytes()
    extra = b"LIST" + struct.pack("<I", 5) + b"abcde\x00"
    patched = raw[:12] + extra + raw[12:]
    patched = patched[:4] + struct.pack("<I", len(patched) - 8) + patched[8:]
    (tmp_path / "b.wav").write_bytes(patched)
    assert np.array_equal(ev.read_wav(tmp_path / "b.wav"), x)


def test_wav_other_rate(tmp_path: Path) -> None:
    """A 44.1 kHz WAV is refused, naming the file and both rates."""
    path = _wav(tmp_path / "a.wav", np.zeros(10, np.int16), rate=44_100)
    with pytest.raises(EvidenceError, match=r"a\.wav is sampled at 44100 Hz, expected 48000 Hz"):
        ev.read_wav(path)


def test_wav_stereo(tmp_path: Path) -> None:
    """A stereo WAV is refused."""
    path = _wav(tmp_path / "a.wav", np.zeros(10, np.int16), channels=2)
    with pytest.raises(EvidenceError, match="has 2 channels, expected 1"):
        ev.read_wav(path)


def test_wav_truncated(tmp_path: Path) -> None:
    """A WAV shorter than its header says is refused with both sizes."""
    path = _wav(tmp_path / "a.wav", np.zeros(100, np.int16))
    path.write_bytes(path.read_bytes()[:-50])
    with pytest.raises(EvidenceError, match="truncated: its header announces 200 bytes"):
        ev.read_wav(path)


def test_wav_not_riff(tmp_path: Path) -> None:
    """A file that is not RIFF/WAVE is refused."""
    (tmp_path / "a.wav").write_bytes(b"OggS" + bytes(100))
    with pytest.raises(EvidenceError, match="not a RIFF/WAVE file"):
        ev.read_wav(tmp_path / "a.wav")


def _csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_timing_parsed(tmp_path: Path) -> None:
    """A timing CSV gives its columns as int64 arrays."""
    path = _csv(tmp_path / "x.sent.csv", "frame,sample,samples,t_ns\n0,0,480,10\n1,480,480,20\n")
    timing = ev.read_timing(path)
    assert timing.t_ns.tolist() == [10, 20] and timing.total_samples == 960


def test_a_long_timing_csv_is_parsed_in_blocks(tmp_path: Path) -> None:
    """An hour's 360,000 rows are parsed a block of lines at a time: 120,000 rows (five blocks)
    come back whole, blank lines skipped, and a bad row in a later block is named by its line."""
    n = np.arange(120_000)
    t0 = 1_700_000_000_000_000_000
    rows = [f"{i},{480 * i},480,{t0 + 10_000_000 * i}" for i in n.tolist()]
    rows.insert(60_000, "")
    text = "frame,sample,samples,t_ns\n" + "\n".join(rows) + "\n"
    assert len(text) > 4 * (1 << 20)
    timing = ev.read_timing(_csv(tmp_path / "x.sent.csv", text))
    assert np.array_equal(timing.t_ns, t0 + 10_000_000 * n)
    assert np.array_equal(timing.sample, 480 * n)
    rows[100_000] = "99999,47999520,480"
    with pytest.raises(EvidenceError, match="line 100002 has 3 fields, expected 4"):
        ev.read_timing(
            _csv(tmp_path / "y.sent.csv", "frame,sample,samples,t_ns\n" + "\n".join(rows))
        )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "frame,sample,t_ns\n",
            "header is 'frame,sample,t_ns', expected 'frame,sample,samples,t_ns'",
        ),
        ("frame,sample,samples,t_ns\n0,0,480,1x\n", "line 2 holds '1x', expected an integer"),
        ("frame,sample,samples,t_ns\n0,0,480\n", "line 2 has 3 fields, expected 4"),
        ("frame,sample,samples,t_ns\n0,0,480,5\n2,480,480,6\n", "line 3: frame is 2, expected 1"),
        ("frame,sample,samples,t_ns\n0,0,480,5\n1,400,480,6\n", "line 3: sample is 400"),
        ("frame,sample,samples,t_ns\n0,0,480,5\n1,480,480,4\n", "line 3: t_ns 4 is earlier"),
        ("frame,sample,samples,t_ns\n0,0,0,5\n", "samples is 0, expected a positive count"),
    ],
)
def test_timing_errors(tmp_path: Path, text: str, message: str) -> None:
    """Every malformed timing CSV names the file, the line and what was expected."""
    with pytest.raises(EvidenceError, match=message):
        ev.read_timing(_csv(tmp_path / "x.sent.csv", text))


def test_schedule_errors(tmp_path: Path) -> None:
    """A burst schedule out of order or malformed is refused naming the line."""
    head = "burst,freq_hz,start_sample,samples\n"
    with pytest.raises(EvidenceError, match="line 3: burst starts at sample 10"):
        ev.read_schedule(_csv(tmp_path / "b.csv", head + "0,440,100,50\n1,440,10,50\n"))
    with pytest.raises(EvidenceError, match="line 2 holds 'abc', expected a number"):
        ev.read_schedule(_csv(tmp_path / "b.csv", head + "0,abc,100,50\n"))


def test_manifest_errors(tmp_path: Path) -> None:
    """A manifest that is corrupt or breaks the contract is refused in one sentence."""
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(EvidenceError, match=r"manifest\.json is not valid JSON"):
        ev.read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"schema": "other/1"}))
    with pytest.raises(EvidenceError, match="schema is 'other/1', expected"):
        ev.read_manifest(tmp_path)
    with pytest.raises(EvidenceError, match=r"manifest\.json is missing"):
        ev.read_manifest(tmp_path / "nowhere")


def test_timing_partial_last_line(tmp_path: Path) -> None:
    """A line cut by a killed writer is refused, unless the run did not complete."""
    path = _csv(tmp_path / "x.sent.csv", "frame,sample,samples,t_ns\n0,0,480,5\n1,480,4")
    with pytest.raises(EvidenceError, match="line 3 has 3 fields, expected 4"):
        ev.read_timing(path)
    assert len(ev.read_timing(path, partial_tail=True)) == 1
