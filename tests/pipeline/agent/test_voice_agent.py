"""`python -m pipeline --agent echoproof-voice` with the real offline voice agent
(examples/voice_agent.py: livekit-agents' AgentSession, Silero VAD, PocketSphinx, eSpeak NG) in
the agents' own environment; the Customer says eSpeak NG turns and records the room's
transcriptions, and verify scores what the agent understood.

Until the Customer says scripted text (`--script`), the turns are `--say` files made with
espeak-ng here, and each test writes their words into the turns file's `text` column after the
run, as the Customer would, and re-signs the report.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

import verify
from echoproof.contract import HOST, TRANSCRIPTS, UTTERANCES_HEADER, utterances_name
from tests.conftest import scaled
from tests.echoproof.sfu._agents import REPO, agent_python
from tests.pipeline.conftest import Finished, free_port, run_cli, write_config

VOICE_AGENT = REPO / "examples" / "voice_agent.py"
AGENT = "echoproof-voice"
ORDER = "hello i would like to check my order status"
ADDRESS = "i need to change my delivery address"
PACKAGE = "my package has not arrived yet"
# long enough for the agent's answer ("You said: ..." in eSpeak's voice, about 4 s after the
# longer turn) to end before the Customer's next turn
WINDOW_S = 6.0


def _espeak(tmp_path: Path, name: str, text: str) -> Path:
    """`text` spoken by eSpeak NG's American voice into a WAV file (22.05 kHz), a --say file."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        why = "espeak-ng is not installed (Debian's package; nox -s tests installs it)"
        if os.environ.get("ECHOPROOF_AGENT_REQUIRED"):
            pytest.fail(why)
        pytest.skip(why)
    path = tmp_path / f"{name}.wav"
    # the American voice: PocketSphinx's model is American English (13 of 15 exact, against 6)
    subprocess.run([espeak, "-v", "en-us", "-w", str(path), text], check=True, timeout=30)
    return path


async def _voice_run(
    tmp_path: Path, duration_s: float, texts: list[str], window_s: float = WINDOW_S, **env: str
) -> tuple[Finished, Path]:
    """One run of the Customer saying `texts` (eSpeak files) to the voice agent, listening
    `window_s` after each; its folder."""
    say = [str(_espeak(tmp_path, f"turn{i}", t)) for i, t in enumerate(texts)]
    port = free_port()
    config = write_config(
        tmp_path / "config.json", f"ws://127.0.0.1:{port}", "devkey",
        "secret-" + os.urandom(8).hex(), agent={"name": AGENT, "answer_window_s": window_s},
    )  # fmt: skip
    out = tmp_path / "recordings"
    finished = await run_cli(
        "--config", str(config), "--agent", AGENT,
        "--agent-cmd", f"{agent_python()} {VOICE_AGENT} start",
        "--duration", str(duration_s), "--out", str(out), "--say", *say,
        limit_s=scaled(duration_s + 120),
        env={"LIVEKIT_AGENT_NAME": AGENT, **env},
    )  # fmt: skip
    runs = sorted(p for p in out.iterdir() if p.is_dir()) if out.is_dir() else []
    assert len(runs) == 1, finished.stdout + finished.stderr
    return finished, runs[0]


def _with_texts(run: Path, texts: list[str], key: Path) -> dict[str, Any]:
    """Write each turn's words into the turns file's `text` column (turn k said texts[k mod
    n]), as a Customer saying scripted text does, and sign the report anew."""
    path = run / utterances_name("customer")
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == UTTERANCES_HEADER
    column = UTTERANCES_HEADER.index("text")
    for row in rows[1:]:
        row[column] = texts[int(row[0]) % len(texts)]
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    return verify.write_report(run, key_path=key).report


def _agent_cpu_s(run: Path) -> float:
    """The CPU seconds of the agent's worker and its jobs while the Customer talked."""
    with (run / HOST).open() as f:
        return sum(float(r["agent_cpu_ms"] or 0) for r in csv.DictReader(f)) / 1000


async def test_the_voice_agent_answers_and_its_transcripts_are_scored(tmp_path: Path) -> None:
    """Two eSpeak turns: each answered; the room's transcriptions land in the run folder and
    the report (the agent's transcript of each turn, its answer's text); with the turns' words
    known, the WER is low and no first word is lost."""
    texts = [ORDER, ADDRESS]
    finished, run = await _voice_run(tmp_path, 24.0, texts)
    assert finished.code == 0, finished.stdout + finished.stderr
    lines = [json.loads(x) for x in (run / TRANSCRIPTS).read_text().splitlines()]
    assert {x["track"] for x in lines} == {"customer", "agent"}
    assert all(x["sender"].startswith("agent-") for x in lines)
    report = _with_texts(run, texts, tmp_path / "key.pem")
    conv = report["conversation"]
    turns = conv["turns"]
    print(
        f"responses {[t.get('response_ms') for t in turns]} ms; understood "
        f"{[t['understood'] for t in turns]}; WER {[t['wer'] for t in turns]}; agent CPU "
        f"{_agent_cpu_s(run):.2f} s in {report['duration_s']:g} s"
    )
    assert conv["turns_sent"] == 2 and conv["turns_unanswered"] == 0
    assert TRANSCRIPTS in report["evidence"] and conv["transcripts"]["available"]
    for t in turns:
        assert t["understood"] and t["answer_text"].lower().startswith("you said")
    assert report["verdict"]["passed"], report["verdict"]["failures"]
    assert conv["transcripts"]["wer_mean"] <= 0.25
    [result] = verify.check(run)
    assert result.status == "ok", result.reason


async def test_an_stt_that_skips_the_first_500_ms_fails_naming_the_turn(tmp_path: Path) -> None:
    """ECHOPROOF_STT_SKIP_MS=500: the agent's transcript lacks the first words; with the turn's
    words known the report FAILs naming the turn; python -m verify exits 1."""
    finished, run = await _voice_run(tmp_path, 16.0, [ORDER], ECHOPROOF_STT_SKIP_MS="500")
    assert finished.code == 0, finished.stdout + finished.stderr
    report = _with_texts(run, [ORDER], tmp_path / "key.pem")
    [turn] = report["conversation"]["turns"]
    print(f"understood {turn['understood']!r}: {turn['first_words_lost']} first words lost")
    assert turn["first_words_lost"] >= 1
    failures = "; ".join(report["verdict"]["failures"])
    n = turn["first_words_lost"]
    assert f"turn 0: the agent's transcript lacks the first {n} word" in failures
    from verify.__main__ import main as verify_main

    assert verify_main([str(run)]) == 1


async def test_a_barge_in_stops_the_agent_and_its_log_is_on_the_runs_clock(
    tmp_path: Path,
) -> None:
    """A 2 s answer window: the Customer's next turn starts while the agent still answers; the
    agent stops, and logs when its VAD heard the caller and when it stopped, on the run's
    clock: within 0.5 s of the turn's speech onset as sent, then within 1 s."""
    finished, run = await _voice_run(tmp_path, 16.0, [ORDER, "where is my refund"], window_s=2.0)
    assert finished.code == 0, finished.stdout + finished.stderr
    log = (run / "agent-worker.log").read_text()
    found = re.findall(r"barge-in: heard_ns=(\d+) stopped_ns=(\d+)", log)
    assert found, log[-2000:]
    with (run / utterances_name("customer")).open(encoding="utf-8") as f:
        onsets = [int(r["speech_start_ns"]) for r in csv.DictReader(f)]
    for heard, stopped in ((int(a), int(b)) for a, b in found):
        onset = max(t for t in onsets if t < heard)
        heard_ms, stopped_ms = (heard - onset) / 1e6, (stopped - onset) / 1e6
        print(f"barge-in: heard {heard_ms:.0f} ms, stopped {stopped_ms:.0f} ms after the onset")
        assert heard - onset < 500e6 and 0 < stopped - heard < 1e9


def _stt(corpus: Path) -> subprocess.Popen[bytes]:
    """examples/voice_stt.py on `corpus`, in the agents' environment (it has pocketsphinx)."""
    script = REPO / "examples" / "voice_stt.py"
    return subprocess.Popen(
        [agent_python(), str(script), str(corpus)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def test_the_stt_process_recognises_the_sentences_of_its_corpus(tmp_path: Path) -> None:
    """A corpus file of two sentences: an eSpeak utterance of one (at 16 kHz, between silences,
    as the agent sends it) comes back word for word; the process ends with its input."""
    import numpy as np
    import soundfile
    from livekit import rtc

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("My package has not arrived yet.\nPlease call me back!\n", encoding="utf-8")
    audio, rate = soundfile.read(_espeak(tmp_path, "package", PACKAGE), dtype="int16")
    # resampled as the agent does: the recognizer is sensitive to it (scipy's polyphase filter
    # cost this sentence two words)
    resampler = rtc.AudioResampler(
        input_rate=rate, output_rate=16_000, quality=rtc.AudioResamplerQuality.HIGH
    )
    frames = [*resampler.push(rtc.AudioFrame(audio.tobytes(), rate, 1, audio.size))]
    frames += resampler.flush()
    quiet = np.zeros(8_000, dtype=np.int16)  # 0.5 s either side, as the agent's VAD hands it
    speech = [np.frombuffer(f.data, dtype=np.int16) for f in frames]
    pcm = np.concatenate([quiet, *speech, quiet]).tobytes()
    proc = _stt(corpus)
    try:
        out, err = proc.communicate(len(pcm).to_bytes(4, "little") + pcm, timeout=scaled(30))
    finally:
        proc.kill()
    assert proc.returncode == 0, err.decode()
    assert out.decode().splitlines() == ["ready", PACKAGE]


def test_a_corpus_word_the_dictionary_lacks_is_named(tmp_path: Path) -> None:
    """A word the CMU dictionary cannot spell: the STT process exits at once, naming it."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("hello zqxjv\n", encoding="utf-8")
    proc = _stt(corpus)
    _, err = proc.communicate(timeout=scaled(30))
    assert proc.returncode == 1
    assert "the corpus has words the CMU dictionary does not know: zqxjv" in err.decode()
