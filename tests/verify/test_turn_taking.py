"""Barge-ins, talk-over and the greeting of synthetic agent runs (`verify.turn_taking`)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

import verify
from tests.verify.agent_synth import AgentSpec, make_agent_run
from verify.check import shape_errors

# Turns of 1 s, answers of 2.5 s heard 340 ms after each turn's speech, windows of 3.5 s:
# turns 1 and 3 barge in 500 ms after the answer before them was heard to begin.
BARGE = {"duration_s": 17.0, "utterance_s": 1.0, "window_s": 3.5, "answer_s": 2.5}


def _verified(tmp_path: Path, spec: AgentSpec, **thresholds: float) -> verify.ReportResult:
    run = make_agent_run(tmp_path, spec)
    if thresholds:
        manifest = json.loads((run / "manifest.json").read_text())
        manifest["config"]["thresholds"] = thresholds
        (run / "manifest.json").write_text(json.dumps(manifest))
    result = verify.write_report(run, key_path=tmp_path / "key.pem")
    assert shape_errors(result.report) == []
    [checked] = verify.check(run)
    assert checked.status != "fail" or result.status == "failed", checked.reason
    return result


def _turns(result: verify.ReportResult) -> list[dict[str, Any]]:
    return list(result.report["conversation"]["turns"])


def test_an_agent_that_stops_when_interrupted_passes_with_its_stop_time(tmp_path: Path) -> None:
    """The agent's answer ends 600 ms after the interrupting speech began: both barge-ins read
    600 ms to 1 ms, answered; the run passes."""
    spec = AgentSpec(**BARGE, barge_in={1: 500.0, 3: 500.0}, stops_after_ms=600)
    result = _verified(tmp_path, spec)
    assert result.status == "passed", result.failures
    conv = result.report["conversation"]
    turns = _turns(result)
    assert [t["barge_in"] for t in turns] == [None, "stopped", None, "stopped"]
    for t in (turns[1], turns[3]):
        assert t["barge_in_stop_ms"] == pytest.approx(600, abs=1.0)
        assert t["barge_in_after_ms"] == 500 and t["barge_in_answered"] is True
        assert t["talk_over_ms"] is None
        # the turn began 500 ms after the answer it cut into was heard
        assert t["speech_start_s"] - t["barge_in_heard_s"] == pytest.approx(0.5, abs=1e-4)
    assert conv["barge_ins"] == 2 and conv["barge_ins_answered"] == 2
    assert conv["barge_in_stop_ms"]["median"] == pytest.approx(600, abs=1.0)
    assert conv["barge_ins_talked_on"] == [] and conv["barge_ins_missed"] == []
    assert conv["talk_over_ms"] == 0 and conv["talk_over_turns"] == []
    assert turns[0]["talk_over_ms"] == 0 and turns[2]["talk_over_ms"] == 0


def test_an_agent_that_talks_on_through_an_interruption_fails_naming_the_turn(
    tmp_path: Path,
) -> None:
    """The agent plays its 2.5 s answer to its end over the Customer's 1 s interruption: FAIL
    naming the turn, which no short host stall explains."""
    spec = AgentSpec(**BARGE, barge_in={1: 500.0}, silent=(1,))
    result = _verified(tmp_path, spec)
    turn = _turns(result)[1]
    assert turn["barge_in"] == "talked_on"
    assert turn["barge_in_stop_ms"] == pytest.approx(2000, abs=1.0)
    assert result.report["conversation"]["barge_ins_talked_on"] == [1]
    assert (
        "agent reply-agent: turn 1: the agent did not stop when the Customer interrupted: it kept "
        "talking 2000" in "; ".join(result.failures)
    )
    assert "past the end of the Customer's 1000 ms of speech" in "; ".join(result.failures)
    # a 400 ms stall of the agent's worker meanwhile explains the unanswered turn, not 2 s of
    # talking on: still a FAIL
    stalled = _verified(tmp_path / "stalled", dataclasses.replace(spec, agent_stall_at_s=6.0))
    assert stalled.status == "failed", stalled.reason


def test_a_slow_stop_fails_above_the_maximum(tmp_path: Path) -> None:
    """Stopping 900 ms after the interruption against a maximum of 800 ms FAILs naming turn 1."""
    spec = AgentSpec(**BARGE, barge_in={1: 500.0}, stops_after_ms=900)
    result = _verified(tmp_path, spec, max_barge_in_stop_ms=800)
    assert result.status == "failed"
    [line] = [f for f in result.failures if "interrupted" in f]
    assert line.startswith("agent reply-agent: turn 1: the agent kept talking 90")
    assert line.endswith("ms after the Customer interrupted, above the maximum 800 ms")
    assert _verified(tmp_path / "default", spec).status == "passed"  # 1500 ms by default


def test_a_barge_in_with_no_answer_to_cut_into_is_missed(tmp_path: Path) -> None:
    """Turn 0 unanswered: turn 1 was said after its window, no barge-in, named as missed."""
    result = _verified(tmp_path, AgentSpec(**BARGE, barge_in={1: 500.0}, silent=(0,)))
    turn = _turns(result)[1]
    assert turn["barge_in"] == "missed" and turn["barge_in_heard_s"] is None
    assert turn["barge_in_stop_ms"] is None and turn["talk_over_ms"] == 0
    assert result.report["conversation"]["barge_ins_missed"] == [1]


def test_a_barge_in_after_the_answer_ended_has_nothing_to_interrupt(tmp_path: Path) -> None:
    """Turn 1 said 3 s after a 2.5 s answer began: `over`, no stop time, no failure for it."""
    result = _verified(tmp_path, AgentSpec(**BARGE, barge_in={1: 3000.0}))
    turn = _turns(result)[1]
    assert turn["barge_in"] == "over" and turn["barge_in_stop_ms"] is None
    assert turn["talk_over_ms"] == 0 and turn["barge_in_heard_s"] is not None
    assert result.report["conversation"]["barge_ins_missed"] == [1]
    assert result.status == "passed", result.failures


def test_talk_over_fails_naming_the_turn(tmp_path: Path) -> None:
    """An answer heard before the turn's speech ended: its overlap is talk-over; 650 ms of it
    FAILs naming the turn, 450 ms passes the maximum of 500 ms."""
    result = _verified(tmp_path, AgentSpec(talk_over={2: 300.0}))
    conv = result.report["conversation"]
    assert _turns(result)[2]["talk_over_ms"] == pytest.approx(300, abs=1.0)
    assert conv["talk_over_turns"] == [2] and conv["talk_over_ms"] == pytest.approx(300, abs=1.0)
    long_turns = {"utterance_s": 1.0, "answer_s": 1.0}
    within = _verified(tmp_path / "within", AgentSpec(**long_turns, talk_over={2: 450.0}))
    assert _turns(within)[2]["talk_over_ms"] == pytest.approx(450, abs=1.0)
    assert not any("talked over" in f for f in within.failures)
    over = _verified(tmp_path / "over", AgentSpec(**long_turns, talk_over={2: 650.0}))
    [line] = [f for f in over.failures if "talked over" in f]
    assert line.startswith("agent reply-agent: turn 2: the agent talked over the Customer for 6")
    assert line.endswith("ms, above the maximum 500 ms")


def test_the_greeting_is_only_audio_before_the_first_turn(tmp_path: Path) -> None:
    """An agent that never greets has no greeting (its first answer is not one); first audio
    still says when it was first heard."""
    quiet = _verified(tmp_path / "quiet", AgentSpec()).report["conversation"]
    assert quiet["greeting_ms"] is None and quiet["first_audio_ms"] is not None
    greets = _verified(tmp_path / "greets", AgentSpec(greeting_s=0.25)).report["conversation"]
    assert greets["greeting_ms"] == pytest.approx(250, abs=1.0)


def test_how_each_turn_was_said_is_carried_into_its_figures(tmp_path: Path) -> None:
    """Noise, SNR, phone line and words per turn; a turns file from before the script: none."""
    how = {0: ("pink", 10.0, True, "Hello, I'd like a café"), 2: ("babble", -5.0, False, "Bye")}
    turns = _turns(_verified(tmp_path, AgentSpec(how=how)))
    assert [t["text"] for t in turns] == ["Hello, I'd like a café", None, "Bye", None]
    assert [t["noise"] for t in turns] == ["pink", None, "babble", None]
    assert [t["snr_db"] for t in turns] == [10.0, None, -5.0, None]
    assert [t["phone"] for t in turns] == [True, False, False, False]
    older = _turns(_verified(tmp_path / "older", AgentSpec(speech_columns_only=True)))
    assert all(t["text"] is None and t["noise"] is None and not t["phone"] for t in older)
    assert all(t["barge_in"] is None and t["talk_over_ms"] == 0 for t in older)
