"""The caller's script: the file, its turns rendered (eSpeak NG, noise, phone line), turns placed
live around barge-ins, and the turns file verify reads back."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from dsp import noise as background
from echoproof.contract import FRAME_SAMPLES, SAMPLE_RATE
from pipeline.__main__ import main
from pipeline.agent import script
from pipeline.agent.live import AnswerOnsets, LiveTurns
from pipeline.agent.utterances import frames_up, from_line, tone, turns
from pipeline.errors import ConfigError
from pipeline.recording.evidence import ClockedTimingWriter, UtterancesWriter
from verify.evidence import read_turns

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="eSpeak NG is not installed"
)


def _parse(data: Any, tmp_path: Path) -> list[script.Line]:
    return script.parse(data, "call.json", tmp_path)


def test_a_script_is_read_with_every_field(tmp_path: Path) -> None:
    """Each field as given; `say` relative to the script's folder; noise seeded by its turn."""
    path = tmp_path / "call.json"
    path.write_text(
        json.dumps(
            {
                "turns": [
                    {"text": "Hello there"},
                    {"text": "It is order one two three", "say": "order.wav", "phone": True},
                    {"text": "Stop", "barge_in_after_ms": 800, "noise": {"kind": "babble",
                                                                          "snr_db": 5}},
                ]
            }
        )
    )  # fmt: skip
    lines = script.load(path)
    assert lines[0] == script.Line("Hello there")
    assert lines[1].say == tmp_path / "order.wav" and lines[1].phone
    assert lines[2].barge_in_after_ms == 800.0
    assert lines[2].noise == script.Noise("babble", 5.0, seed=2)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "script file call.json holds a list; expected an object with a 'turns' list."),
        ({"turns": []}, "call.json: 'turns' is a list; expected a list of 1 to 1000 turns"),
        ({"turns": [{"text": "a"}], "voice": "x"}, "call.json has an unknown field 'voice'"),
        ({"turns": [{"txt": "a"}]}, "call.json has an unknown field 'turns[0].txt'; expected one "
         "of 'turns[0].text', 'turns[0].say'"),
        ({"turns": [{"say": "a.wav"}]}, "call.json: 'turns[0]' has no 'text'"),
        ({"turns": [{"text": "  "}]}, "call.json: 'turns[0].text' is blank"),
        ({"turns": [{"text": "a", "barge_in_after_ms": -1}]},
         "call.json: 'turns[0].barge_in_after_ms' is -1 (a number); expected milliseconds in "
         "[0, 60000]."),
        ({"turns": [{"text": "a", "noise": {"kind": "brown", "snr_db": 5}}]},
         "call.json: 'turns[0].noise.kind' is 'brown' (a string); expected 'pink' or 'babble'."),
        ({"turns": [{"text": "a", "noise": {"kind": "pink"}}]},
         "call.json: 'turns[0].noise.snr_db' is null; expected decibels in [-20, 60]."),
        ({"turns": [{"text": "a", "noise": {"kind": "pink", "snr_db": 5, "seed": 1}}]},
         "call.json has an unknown field 'turns[0].noise.seed'"),
        ({"turns": [{"text": "a", "phone": "yes"}]},
         "call.json: 'turns[0].phone' is 'yes' (a string); expected true or false."),
    ],
)  # fmt: skip
def test_a_bad_script_is_one_sentence_naming_the_field(
    tmp_path: Path, data: Any, message: str
) -> None:
    """Every mistake names where it is, what was found and what was expected."""
    with pytest.raises(ConfigError) as caught:
        _parse(data, tmp_path)
    assert str(caught.value).startswith(message), str(caught.value)


def test_a_yaml_script_reads_as_its_json_twin(tmp_path: Path) -> None:
    """The same turns in YAML (.yaml or .yml) and in JSON make the same script."""
    turns = [
        {"text": "Hello there"},
        {"text": "Stop", "barge_in_after_ms": 800, "noise": {"kind": "pink", "snr_db": 10}},
        {"text": "On the phone", "say": "phone.wav", "phone": True},
    ]
    as_json = tmp_path / "call.json"
    as_json.write_text(json.dumps({"turns": turns}))
    (tmp_path / "call.yaml").write_text(
        "turns:\n"
        "  - text: Hello there\n"
        "  - text: Stop\n"
        "    barge_in_after_ms: 800\n"
        "    noise: {kind: pink, snr_db: 10}\n"
        "  - text: On the phone\n"
        "    say: phone.wav\n"
        "    phone: true\n"
    )
    (tmp_path / "call.yml").write_text((tmp_path / "call.yaml").read_text())
    assert script.load(tmp_path / "call.yaml") == script.load(as_json)
    assert script.load(tmp_path / "call.yml") == script.load(as_json)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("call.json", "turns:\n  - text: hello\n", r"call\.json is not valid JSON: .* at line 1"),
        ("call.yaml", "turns: [text: a\n", r"call\.yaml is not valid YAML: .* at line 2"),
        ("call.yaml", "- text: hello\n", r"holds a list; expected an object with a 'turns'"),
        ("call.yaml", "turns:\n  - text: 7\n", r"'turns\[0\]\.text' is 7 \(a number\)"),
    ],
)
def test_a_broken_script_file_is_named_with_where(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    """Broken JSON, broken YAML, YAML of the wrong shape: one sentence each, with where."""
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        script.load(path)


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "config.json"
    config.write_text('{"livekit": {"url": "ws://127.0.0.1:1", "api_key": "k", "api_secret": "s"}}')
    return config


def test_the_cli_takes_a_script_and_refuses_it_with_say(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """--script with --say, an unknown field, a missing file: exit 2, one sentence each."""
    config, out = str(_config(tmp_path)), str(tmp_path / "out")
    base = ["--config", config, "--agent", "a", "--out", out, "--no-verify"]
    assert main([*base, "--say", "a.wav", "--script", "s.json"]) == 2
    assert "--say and --script are both given" in capsys.readouterr().err
    assert main([*base, "--script", str(tmp_path / "missing.json")]) == 2
    assert "missing.json does not exist; pass --script PATH." in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('{"turns": [{"text": "hi", "loud": true}]}')
    assert main([*base, "--script", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.json has an unknown field 'turns[0].loud'" in err and "Traceback" not in err


def _wav(path: Path, seconds: float, rate: int = 16_000, lead_s: float = 0.1) -> Path:
    t = np.arange(round(seconds * rate)) / rate
    tone_ = 0.3 * np.sin(2 * np.pi * 300 * t)
    soundfile.write(path, np.concatenate([np.zeros(round(lead_s * rate)), tone_]), rate)
    return path


def test_a_turn_with_noise_and_a_phone_line_keeps_its_clean_speech_bounds(
    tmp_path: Path,
) -> None:
    """A say file with pink noise at 10 dB and the phone line: the speech's bounds are the
    clean file's; what is sent carries noise at about 10 dB below the speech."""
    path = _wav(tmp_path / "order.wav", 0.8)
    clean = from_line(script.Line("Order", say=path), "turn 0")
    said = from_line(script.Line("Order", say=path, noise=script.Noise("pink", 10.0, 0)), "turn 0")
    assert said.speech == clean.speech and said.text == "Order"
    assert said.source == "order.wav" and said.sha256 == clean.sha256
    added = said.pcm.astype(np.float64) - clean.pcm
    measured = background.snr_db(clean.pcm.astype(np.float64), added, said.speech)
    assert measured == pytest.approx(10.0, abs=0.5)
    phoned = from_line(script.Line("Order", say=path, phone=True), "turn 0")
    spectrum = np.abs(np.fft.rfft(phoned.pcm.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(phoned.samples, 1 / SAMPLE_RATE)
    assert spectrum[freqs > 4200].sum() < 1e-4 * spectrum.sum()


@needs_espeak
def test_words_without_a_file_are_spoken_by_espeak(tmp_path: Path) -> None:
    """eSpeak NG speaks the text: 48 kHz audio whose speech lies inside it, hashed, named."""
    u = from_line(script.Line("Hello, I would like to check my order."), "turn 0")
    assert u.source == "espeak-ng" and len(u.sha256) == 64 and u.text.startswith("Hello")
    assert 1.0 < u.samples / SAMPLE_RATE < 5.0
    assert 0 <= u.speech[0] < u.speech[1] <= u.samples
    again = from_line(script.Line("Hello, I would like to check my order."), "turn 0")
    assert again.sha256 == u.sha256  # the same words, the same audio


def _frames(level: float, n: int) -> list[np.ndarray]:
    return [np.full(FRAME_SAMPLES, level, np.int16) for _ in range(n)]


def test_the_live_detector_finds_an_answers_onset() -> None:
    """Silence, a 10 ms click, silence, then a sound: one onset, at the sound's first frame."""
    heard = AnswerOnsets()
    frames = _frames(0, 50) + _frames(3000, 1) + _frames(0, 20) + _frames(3000, 40)
    for i, pcm in enumerate(frames):
        heard.feed(pcm, 1_000 + i * 10_000_000)
    assert heard.onsets == [1_000 + 71 * 10_000_000]
    assert heard.first_after(0) == heard.onsets[0] and heard.first_after(1e12) is None


def _utterance(barge_in_after_ms: float | None = None) -> Any:
    import dataclasses

    u = tone(np.full(12_000, 1000, np.int16), 440.0)  # 0.25 s
    return dataclasses.replace(u, barge_in_after_ms=barge_in_after_ms)


def _play(live: LiveTurns, frames: int, start_ns: int, answer_at: dict[int, int]) -> None:
    """Render `frames` frames; the agent is heard answering at frame f for 30 frames from each
    `answer_at` key f."""
    live.begin(start_ns)
    loud = {f + i for f in answer_at for i in range(30)}
    for n in range(frames):
        level = 3000 if n in loud else 0
        live.heard.feed(np.full(FRAME_SAMPLES, level, np.int16), start_ns + (n + 4) * 10_000_000)
        live.frame(n)


def test_without_barge_ins_the_live_turns_are_the_planned_ones() -> None:
    """No barge-in: the same turns as `turns()` places ahead."""
    u = _utterance()
    live = LiveTurns([u], duration_s=10.0, window_s=2.0)
    _play(live, 1000, 5_000_000_000, {})
    assert live.turns == turns([u], duration_s=10.0, window_s=2.0)


def test_a_barge_in_turn_starts_its_speech_after_the_answer_was_heard() -> None:
    """Turn 1 barges in 100 ms after the answer to turn 0 was heard begin: its speech starts
    there to the sample; turn 2 (the same line) hears no answer and waits its window."""
    u0, u1 = _utterance(), _utterance(barge_in_after_ms=100.0)
    live = LiveTurns([u0, u1, u1], duration_s=14.0, window_s=2.0)
    start = 5_000_000_000
    # turn 0 is 2.0-2.25 s; its answer heard from frame 250 (2.5 s, arriving 40 ms later)
    _play(live, 1400, start, {250: 1})
    t0, t1, t2 = live.turns[:3]
    assert t0.start_sample == 96_000 and t0.barge_in_heard_ns is None
    heard = start + 250 * 10_000_000 + 40_000_000
    assert t1.barge_in_heard_ns == heard
    assert t1.speech_start_sample == round(2.64 * SAMPLE_RATE)  # heard at 2.54 s, + 100 ms
    assert t1.speech_start_sample - t1.start_sample == u1.speech[0]
    assert t2.barge_in_heard_ns is None  # no answer heard: said after its window
    assert t2.start_sample == frames_up(t1.end_sample / SAMPLE_RATE + 2.0)


def test_the_turns_file_records_how_each_turn_was_said_and_verify_reads_it(
    tmp_path: Path,
) -> None:
    """Barge-in delay and when its answer was heard, noise, SNR, phone, the words (UTF-8, with
    commas and quotes): written by the Customer's writer, read back by verify."""
    import dataclasses

    u0 = dataclasses.replace(
        _utterance(), text='Hé, "order", one', noise=script.Noise("pink", 7.5, 0), phone=True
    )
    u1 = _utterance(barge_in_after_ms=250.0)
    sent = ClockedTimingWriter(tmp_path / "customer.sent.csv")
    for n in range(600):
        sent.write(n, n * FRAME_SAMPLES, FRAME_SAMPLES, 10**12 + n * 10_000_000)
    writer = UtterancesWriter(tmp_path / "customer.utterances.csv", [u0, u1], sent)
    live = LiveTurns([u0, u1], duration_s=6.0, window_s=1.0)
    _play(live, 600, 10**12, {150: 1})
    for turn in live.turns:
        writer.record(turn)
    writer.close()
    sent.close()
    back = read_turns(tmp_path / "customer.utterances.csv")
    first, second = back.how[:2]
    assert back.text is not None and back.text[:2] == ['Hé, "order", one', ""]
    assert first.noise == "pink" and first.snr_db == 7.5
    assert first.phone and first.barge_in_after_ms is None and first.barge_in_heard_ns is None
    assert second.noise is None and not second.phone
    assert second.barge_in_after_ms == 250.0
    assert second.barge_in_heard_ns == live.turns[1].barge_in_heard_ns


def test_the_config_file_names_a_script_but_not_with_say_files() -> None:
    """`agent.script` in config.json: a path, recorded as given; with `say` files, one sentence."""
    from pipeline.config import from_dict

    livekit = {"url": "ws://127.0.0.1:7880", "api_key": "k", "api_secret": "s"}
    config = from_dict({"livekit": livekit, "agent": {"name": "a", "script": "call.json"}})
    assert config.agent is not None and config.agent.script == Path("call.json")
    assert config.public()["agent"]["script"] == "call.json"
    both = {"name": "a", "say": ["a.wav"], "script": "call.json"}
    with pytest.raises(ConfigError, match=r"'agent\.say' and 'agent\.script' are both given"):
        from_dict({"livekit": livekit, "agent": both})
    with pytest.raises(ConfigError, match=r"'agent\.script' is 3; expected a file path or null"):
        from_dict({"livekit": livekit, "agent": {"name": "a", "script": 3}})
