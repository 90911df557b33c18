"""A caller's script against the real example agent (examples/reply_agent.py): eSpeak NG speaks
the turns, one with babble and a phone line, and the Customer barges in on a 5 s answer."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.pipeline.agent.calls import call, reply_agent, report, write_script

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="eSpeak NG is not installed"
)

# Turn 0 (2.0 s in) is answered with a 5 s tone; turn 1 cuts into it 400 ms after it was heard
# to begin. No commas: the agent's 300 ms end-of-utterance silence must not fall inside a turn.
TURNS: tuple[dict[str, Any], ...] = (
    {"text": "Hello can you hear me", "noise": {"kind": "babble", "snr_db": 25}, "phone": True},
    {"text": "Sorry I have one more question about my order", "barge_in_after_ms": 400},
)
DURATION_S = 10.5  # the two turns, and no third (it would cut into the answer to the second)


async def _scripted_call(tmp_path: Path, **env: str) -> tuple[Any, dict[str, Any]]:
    path = write_script(tmp_path / "call.json", *TURNS)
    agent = reply_agent(ECHOPROOF_REPLY_MS="5000", **env)
    finished, runs = await call(tmp_path, agent, DURATION_S, "--script", str(path),
                                answer_window_s=2.0)  # fmt: skip
    assert len(runs) == 1, finished.stdout + finished.stderr
    return finished, report(runs[0])["conversation"]


async def test_an_agent_that_stops_when_interrupted_is_measured(tmp_path: Path) -> None:
    """ECHOPROOF_REPLY_INTERRUPT_MS=300: the agent stops 300 ms of voice into the barge-in; the
    report times the stop (that, plus a transport leg each way and the voice's pauses) and the
    answer after it, carries each turn's words and conditions, and the run passes."""
    finished, conv = await _scripted_call(tmp_path, ECHOPROOF_REPLY_INTERRUPT_MS="300")
    assert finished.code == 0, finished.stdout + finished.stderr
    assert len(conv["turns"]) == 2
    first, second = conv["turns"]
    print(f"barge-in stop {second['barge_in_stop_ms']} ms, talk-over {conv['talk_over_ms']} ms")
    assert first["text"] == "Hello can you hear me" and first["source"] == "espeak-ng"
    assert (first["noise"], first["snr_db"], first["phone"]) == ("babble", 25, True)
    assert first["state"] == "answered" and first["barge_in"] is None
    assert second["barge_in"] == "stopped" and second["barge_in_answered"] is True
    assert 300 < second["barge_in_stop_ms"] < 1000
    assert second["speech_start_s"] - second["barge_in_heard_s"] == pytest.approx(0.4, abs=0.02)
    assert conv["barge_ins"] == 1 and conv["talk_over_ms"] == 0
    assert conv["greeting_ms"] is None  # it never greets
    # The Customer speaks only once the agent is heard to be in the room: the agent's
    # subscription came first, and no speech was sent before anyone could hear it.
    customer, agent = conv["first_audio"]["customer"], conv["first_audio"]["agent"]
    print(f"first audio: Customer {customer}, agent {agent}")
    assert customer["subscribed_s"] <= customer["speech_s"] and customer["lost_ms"] == 0
    assert customer["first_audio_ms"] > 0 and agent["first_audio_ms"] > 0
    assert agent["heard_s"] == conv["first_audio_s"]


async def test_an_agent_that_talks_through_a_barge_in_fails_naming_the_turn(
    tmp_path: Path,
) -> None:
    """The agent plays its 5 s answer to the end over the interruption: exit 1, the FAIL names
    turn 1."""
    finished, conv = await _scripted_call(tmp_path)
    assert finished.code == 1, finished.stdout + finished.stderr
    second = conv["turns"][1]
    print(f"talked on {second['barge_in_stop_ms']} ms")
    assert second["barge_in"] == "talked_on" and conv["barge_ins_talked_on"] == [1]
    assert second["barge_in_stop_ms"] > 2000
    assert "turn 1: the agent did not stop when the Customer interrupted" in finished.stdout
