"""The recordings' writer past the RIFF limit: the file turns into RF64 in place, stays readable
at every moment, and a real run whose recordings crossed the limit is re-checked by verify."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from pipeline.recording.wav import HEADER_BYTES, RIFF_LIMIT_ENV, WavWriter
from tests.conftest import scaled
from tests.pipeline.conftest import LiveServer, run_cli, write_config
from verify.evidence import read_wav

SECOND = 48_000


def _format(path: Path) -> str:
    return str(soundfile.info(str(path)).format)


def test_a_recording_turns_into_rf64_as_it_crosses_the_limit(tmp_path: Path) -> None:
    """Limit: 0.5 s of audio. Below it the file is a WAV (its JUNK chunk skipped by readers);
    past it, RF64; soundfile and verify read every sample back, at every step."""
    path = tmp_path / "a.wav"
    writer = WavWriter(path, limit=HEADER_BYTES - 8 + 2 * SECOND // 2)
    rng = np.random.default_rng(7)
    written = []
    for step in range(10):  # 0.1 s at a time, each step flushed as the 100 ms patch does
        chunk = rng.integers(-30000, 30000, SECOND // 10).astype(np.int16)
        writer.write(chunk)
        written.append(chunk)
        writer.flush()
        assert _format(path) == ("WAV" if step < 5 else "RF64"), step
        np.testing.assert_array_equal(read_wav(path), np.concatenate(written))
    writer.close()
    writer.close()  # safe twice
    assert writer.rf64 and path.stat().st_size == HEADER_BYTES + 2 * SECOND
    np.testing.assert_array_equal(read_wav(path), np.concatenate(written))


def test_an_empty_recording_is_a_valid_wav(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    WavWriter(path).close()
    assert _format(path) == "WAV" and read_wav(path).size == 0


async def test_a_run_whose_recordings_crossed_the_limit_is_rechecked(
    tmp_path: Path, server: LiveServer
) -> None:
    """A real 8 s run with the limit lowered to 2 s of audio: every recording is RF64, and
    `python -m verify` re-checks the run as it does any other (exit 0)."""
    config = write_config(
        tmp_path / "c.json",
        server.url,
        server.api_key,
        server.api_secret,
        signing_key=str(tmp_path / "key.pem"),
    )
    out = tmp_path / "r"
    done = await run_cli(
        "--config", str(config), "--duration", "8", "--out", str(out),
        env={RIFF_LIMIT_ENV: str(2 * 2 * SECOND)}, limit_s=scaled(120),
    )  # fmt: skip
    (run,) = out.iterdir()
    assert done.code in (0, 4), done.stdout + done.stderr  # 4: a starved host, said so
    manifest = json.loads((run / "manifest.json").read_text())
    for direction in manifest["directions"]:
        wav = run / direction["wav"]
        assert _format(wav) == "RF64", wav.name
        assert read_wav(wav).size > 5 * SECOND
    report = json.loads((run / "report.json").read_text())
    assert report["verdict"]["status"] in ("passed", "inconclusive"), report["verdict"]


@pytest.mark.parametrize("value", ["", "1"])
def test_the_limit_switch_is_bounded(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """Unset: the RIFF limit; set absurdly low: never below the header."""
    from pipeline.recording import wav

    monkeypatch.setenv(RIFF_LIMIT_ENV, value)
    assert wav.riff_limit() == (wav.RIFF_LIMIT if not value else HEADER_BYTES)
