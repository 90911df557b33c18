"""The evidence writers: a WAV valid after every write (even after SIGKILL), CSVs, manifest."""

from __future__ import annotations

import asyncio
import csv
import json
import re
import signal
import sys
import wave
from pathlib import Path

import numpy as np

from pipeline.recording import evidence
from pipeline.recording.wav import HEADER_BYTES as WAV_HEADER
from tests.conftest import scaled
from tests.pipeline.conftest import REPO, cli_env


def _read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 48000)
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


def test_wav_header_is_valid_after_every_write(tmp_path: Path) -> None:
    """A second reader sees a valid WAV at every moment, lagging the writer by at most 100 ms."""
    path = tmp_path / "a.wav"
    writer = evidence.WavWriter(path)
    assert len(_read_wav(path)) == 0
    rng = np.random.default_rng(1)
    written = []
    for _ in range(25):
        chunk = rng.integers(-30000, 30000, 480).astype(np.int16)
        writer.write(chunk)
        written.append(chunk)
        seen, wrote = _read_wav(path), np.concatenate(written)
        assert len(wrote) - 4800 < len(seen) <= len(wrote)
        np.testing.assert_array_equal(seen, wrote[: len(seen)])
    writer.flush()
    np.testing.assert_array_equal(_read_wav(path), np.concatenate(written))
    writer.close()
    writer.close()  # safe twice
    assert writer.samples == 25 * 480
    np.testing.assert_array_equal(_read_wav(path), np.concatenate(written))


_KILLED_WRITER = """
import sys, numpy as np
from pipeline.recording.evidence import WavWriter
w = WavWriter(__import__("pathlib").Path(sys.argv[1]))
n = 0
while True:
    w.write(np.full(480, n % 1000, dtype=np.int16))
    n += 1
    if n == 60:
        print("ready", flush=True)
"""


async def test_wav_survives_sigkill(tmp_path: Path) -> None:
    """A process killed with SIGKILL mid-recording leaves a WAV whose header counts its data."""
    path = tmp_path / "killed.wav"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _KILLED_WRITER,
        str(path),
        cwd=REPO,
        env=cli_env(),
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert await asyncio.wait_for(proc.stdout.readline(), scaled(30)) == b"ready\n"
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    samples = _read_wav(path)
    assert len(samples) >= 50 * 480
    assert len(samples) % 480 == 0
    # The header is patched every 100 ms of audio, after the data reached the file: it never counts
    # more than is on disk, and at most 100 ms (plus the frame the kill interrupted) less.
    on_disk = (path.stat().st_size - WAV_HEADER) // 2
    assert on_disk - 4800 - 480 <= len(samples) <= on_disk
    frames = samples.reshape(-1, 480)
    assert (frames == np.arange(len(frames))[:, None] % 1000).all()


def test_timing_and_bursts_csv(tmp_path: Path) -> None:
    """CSV files carry the contract's headers and one row per write."""
    t = evidence.TimingWriter(tmp_path / "x.sent.csv")
    for i in range(120):
        t.write(i, i * 480, 480, 1000 + i)
    t.close()
    t.close()
    rows = list(csv.reader((tmp_path / "x.sent.csv").open()))
    assert rows[0] == ["frame", "sample", "samples", "t_ns"]
    assert rows[1:][-1] == ["119", str(119 * 480), "480", "1119"]
    assert len(rows) == 121
    b = evidence.BurstsWriter(tmp_path / "x.bursts.csv")
    b.write(0, 440.0, 24000, 14401)
    b.close()
    assert (tmp_path / "x.bursts.csv").read_text() == (
        "burst,freq_hz,start_sample,samples\n0,440,24000,14401\n"
    )


def test_manifest_is_rewritten_atomically(tmp_path: Path) -> None:
    """The manifest starts as running, ends with status and reason, and leaves no temp file."""
    manifest = evidence.Manifest("r", {}, [], {}, {"monotonic_ns": 0, "wall": "-"})
    m = evidence.ManifestFile(tmp_path / "manifest.json", manifest)
    assert json.loads((tmp_path / "manifest.json").read_text())["status"] == "running"
    m.finish("interrupted", "interrupted by SIGINT (Ctrl-C).")
    data = json.loads((tmp_path / "manifest.json").read_text())
    assert (data["status"], data["reason"]) == ("interrupted", "interrupted by SIGINT (Ctrl-C).")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", data["ended_at"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]


def test_names_and_run_id() -> None:
    """File names and the run id follow docs/evidence.md."""
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{8}", evidence.new_run_id())
    assert evidence.directions()[0] == {
        "from": "customer",
        "to": "support",
        "wav": "support-from-customer.wav",
        "arrivals": "support-from-customer.arrivals.csv",
        "sent": "customer.sent.csv",
        "bursts": "customer.bursts.csv",
    }


def test_event_log_lines(tmp_path: Path) -> None:
    """Each event is one JSON object with t_ns, agent and event; closed logs ignore late events."""
    log = evidence.EventLog(tmp_path / "events.jsonl")
    log.write("customer", "connected", room="r")
    log.close()
    log.write("customer", "late")
    (line,) = (tmp_path / "events.jsonl").read_text().splitlines()
    event = json.loads(line)
    assert {"t_ns", "agent", "event", "room"} == set(event)
    assert (event["agent"], event["event"]) == ("customer", "connected")
