"""The agent-under-test side of the capture: --say files, turns, the worker process."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile

from pipeline.__main__ import main
from pipeline.agent.utterances import load, needed_s, tone, turn_script, turns
from pipeline.agent.worker import AgentWorker
from pipeline.config import from_dict
from pipeline.errors import ConfigError, ConnectError
from tests.conftest import scaled

LIVEKIT = {"url": "ws://127.0.0.1:7880", "api_key": "devkey", "api_secret": "s3cr3t-value"}


def test_say_without_agent_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """--say without --agent exits 2 with one sentence."""
    config = tmp_path / "config.json"
    config.write_text('{"livekit": {"url": "ws://127.0.0.1:1", "api_key": "k", "api_secret": "s"}}')
    code = main(["--config", str(config), "--say", "a.wav", "--out", str(tmp_path)])
    assert code == 2
    assert "--say needs --agent NAME" in capsys.readouterr().err


@pytest.mark.parametrize(("fmt", "rate"), [("WAV", 16_000), ("FLAC", 44_100), ("OGG", 24_000)])
def test_say_files_are_read_and_resampled(tmp_path: Path, fmt: str, rate: int) -> None:
    """A stereo file at any rate becomes 48 kHz mono of the same length and tone."""
    path = tmp_path / f"hello.{fmt.lower()}"
    t = np.arange(rate // 2) / rate
    stereo = np.stack([0.5 * np.sin(2 * np.pi * 440 * t)] * 2, axis=1)
    soundfile.write(path, stereo, rate, format=fmt)
    u = load(path)
    assert u.source == path.name and len(u.sha256) == 64
    assert abs(u.samples - 24_000) <= 1
    spectrum = np.abs(np.fft.rfft(u.pcm.astype(np.float64)))
    assert np.argmax(spectrum) * 48_000 / u.samples == pytest.approx(440, abs=3)


def test_the_speech_is_found_inside_its_file(tmp_path: Path) -> None:
    """0.2 s of silence, 0.5 s of a tone, 0.3 s of silence: the speech's bounds to 0.2 ms."""
    rate = 16_000
    t = np.arange(rate // 2) / rate
    audio = np.concatenate([np.zeros(rate // 5), 0.3 * np.sin(2 * np.pi * 300 * t), np.zeros(4800)])
    soundfile.write(tmp_path / "hello.wav", audio, rate)
    u = load(tmp_path / "hello.wav")
    assert u.speech[0] == pytest.approx(9_600, abs=10) and u.speech[1] == pytest.approx(
        33_600, abs=10
    )
    [turn] = turns([u], duration_s=6.0, window_s=2.0)
    assert turn.speech_start_sample == turn.start_sample + u.speech[0]
    assert turn.speech_end_sample == turn.start_sample + u.speech[1] < turn.end_sample


def test_a_file_of_silence_is_named(tmp_path: Path) -> None:
    """A --say file with no sound is a ConfigError naming it."""
    soundfile.write(tmp_path / "quiet.wav", np.zeros(8_000), 16_000)
    with pytest.raises(ConfigError, match=r"quiet\.wav holds no sound above -55 dBFS"):
        load(tmp_path / "quiet.wav")


def test_a_file_that_is_not_audio_is_named(tmp_path: Path) -> None:
    """A text file given to --say is a ConfigError naming it."""
    path = tmp_path / "notes.wav"
    path.write_text("hello")
    with pytest.raises(ConfigError, match=r"notes\.wav is not audio"):
        load(path)


def test_turns_listen_one_window_before_and_after_each_utterance() -> None:
    """Turns start on frames, one answer window apart, and all fit the conversation."""
    u = tone(np.full(12_000, 1000, np.int16), 440.0)  # 0.25 s
    schedule = turns([u], duration_s=10.0, window_s=2.0)
    assert [t.start_sample for t in schedule] == [96_000, 204_000, 312_000]
    assert needed_s([u], 2.0) == pytest.approx(4.25)
    script = turn_script([u], schedule)
    frames = [script.frame(n) for n in range(1000)]
    assert sum(int(f.sum()) for f in frames) == 3 * 12_000 * 1000
    assert [t.id for t in script.finished(1000)] == [0, 1, 2]


@pytest.fixture
def sigint_handled() -> Iterator[None]:
    """SIGINT handled in this process while a worker starts, as the CLI has it (it handles SIGINT
    before it starts one): a test process started in the background by a shell has SIGINT
    ignored, and an ignored signal stays ignored in every child, across exec."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _worker(tmp_path: Path, code: str) -> AgentWorker:
    config = from_dict({"livekit": LIVEKIT})
    cmd = f"{sys.executable} -u -c '{code}'"
    return AgentWorker(cmd, config, tmp_path / "agent-worker.log")


@pytest.mark.usefixtures("sigint_handled")
async def test_the_worker_registers_is_stopped_and_its_log_is_redacted(tmp_path: Path) -> None:
    """A worker printing its secret: redacted in the log; SIGINT ends it; registration seen."""
    worker = _worker(
        tmp_path,
        'import os, time; print(os.environ["LIVEKIT_API_SECRET"]); '
        'print("registered worker", os.environ["LIVEKIT_URL"]); time.sleep(60)',
    )
    await worker.start()
    await worker.wait_registered(scaled(20))
    await worker.stop()
    log = (tmp_path / "agent-worker.log").read_text()
    assert "s3cr3t-value" not in log and "<redacted>" in log
    assert "registered worker ws://127.0.0.1:7880" in log
    record = worker.record()
    assert record["stopped_by"] == "SIGINT" and record["exited_ns"] is None
    assert record["exit_code"] is not None


async def test_a_worker_that_ignores_sigint_is_terminated(tmp_path: Path) -> None:
    """SIGINT ignored: SIGTERM ends it within the bound."""
    worker = _worker(
        tmp_path,
        "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        'print("registered worker"); time.sleep(60)',
    )
    await worker.start()
    await worker.wait_registered(scaled(20))
    await asyncio.wait_for(worker.stop(), scaled(30))
    assert worker.record()["stopped_by"] == "SIGTERM"


async def test_a_worker_that_exits_before_registering_is_an_error(tmp_path: Path) -> None:
    """Exit 3 before registering: ConnectError naming the code and the log."""
    worker = _worker(tmp_path, 'import sys; print("boom"); sys.exit(3)')
    await worker.start()
    with pytest.raises(ConnectError, match="exited with code 3 before it registered"):
        await worker.wait_registered(scaled(20))
    await worker.stop()
    assert "boom" in (tmp_path / "agent-worker.log").read_text()
