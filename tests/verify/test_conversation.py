"""Figures and verdicts of synthetic runs with an agent under test (conversation figures)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import verify
from echoproof.contract import UTTERANCES_HEADER
from tests.verify.agent_synth import AgentSpec, make_agent_run, turn_ends_s
from verify.__main__ import main as verify_main


def _report(tmp_path: Path, spec: AgentSpec) -> verify.ReportResult:
    run = make_agent_run(tmp_path, spec)
    return verify.write_report(run, key_path=tmp_path / "key.pem")


def test_a_conversation_that_answers_passes_with_its_response(tmp_path: Path) -> None:
    """Every turn answered: the response is reply + transport within 1 ms, greeting timed."""
    result = _report(tmp_path, AgentSpec(reply_ms=300, transport_ms=40, greeting_s=0.25))
    conv = result.report["conversation"]
    assert result.status == "passed", result.failures
    assert conv["turns_sent"] == 4 and conv["turns_answered"] == 4 and conv["unanswered"] == []
    assert conv["response_ms"]["median"] == pytest.approx(340, abs=1.0)
    assert conv["greeting_ms"] == pytest.approx(250, abs=1.0)
    assert conv["talk_time_s"] == pytest.approx(5 * 0.4, abs=0.002)
    assert conv["joined_s"] == 0.5 and conv["kind"] == "AGENT"
    assert verify_main([str(tmp_path)]) == 0


def test_first_audio_runs_from_each_sides_publication(tmp_path: Path) -> None:
    """The Customer: published to the first speech the agent could hear, and what it sent before
    the agent subscribed (lost); the agent: published to its first audio heard."""
    on_time = _report(tmp_path / "a", AgentSpec(greeting_s=0.25)).report["conversation"]
    speech_s = on_time["turns"][0]["speech_start_s"]
    customer, agent = on_time["first_audio"]["customer"], on_time["first_audio"]["agent"]
    assert customer["published_s"] == pytest.approx(0.1) and customer["speech_s"] == speech_s
    assert customer["lost_ms"] == 0 and customer["subscribed_s"] == pytest.approx(0.6)
    assert customer["first_audio_ms"] == pytest.approx((speech_s - 0.1) * 1000, abs=0.01)
    # the greeting 250 ms after the join (0.5 s), the track published 50 ms after the join
    assert (
        agent["published_s"] == pytest.approx(0.55) and agent["heard_s"] == on_time["first_audio_s"]
    )
    assert agent["first_audio_ms"] == pytest.approx(200, abs=1.0)

    late = speech_s + 0.3  # the agent subscribed 300 ms into the Customer's first words
    conv = _report(tmp_path / "b", AgentSpec(subscribed_s=late)).report["conversation"]
    customer = conv["first_audio"]["customer"]
    assert customer["lost_ms"] == pytest.approx(300, abs=0.01)
    assert customer["first_audio_ms"] == pytest.approx((late - 0.1) * 1000, abs=0.01)

    older = _report(tmp_path / "c", AgentSpec(subscribed_s=None)).report["conversation"]
    assert older["first_audio"]["customer"]["lost_ms"] is None
    assert older["first_audio"]["customer"]["first_audio_ms"] is None


def test_the_response_moves_with_the_reply_delay(tmp_path: Path) -> None:
    """A reply 300 ms later reads 300 ms later, to 0.1 ms."""
    medians = [
        _report(tmp_path / str(d), AgentSpec(reply_ms=d)).report["conversation"]["response_ms"][
            "median"
        ]
        for d in (200, 500)
    ]
    assert medians[1] - medians[0] == pytest.approx(300, abs=0.1)


def test_unanswered_turns_fail_naming_them(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Turns 1 and 3 unanswered: the verdict FAILs naming them; python -m verify exits 1."""
    result = _report(tmp_path, AgentSpec(silent=(1, 3)))
    assert result.status == "failed"
    assert result.report["conversation"]["unanswered"] == [1, 3]
    assert any("turns unanswered 2 of 4 (turn 1, 3:" in f for f in result.failures)
    assert verify_main([str(tmp_path)]) == 1
    assert "turn 1, 3" in capsys.readouterr().out


def test_an_agent_never_heard_fails_saying_so(tmp_path: Path) -> None:
    """No answer at all: 'was never heard' and every turn named."""
    result = _report(tmp_path, AgentSpec(silent=(0, 1, 2, 3)))
    lines = "; ".join(result.failures)
    assert result.report["conversation"]["heard"] is False
    assert "agent reply-agent was never heard" in lines and "turn 0, 1, 2, 3" in lines


def test_a_worker_that_exits_mid_run_is_named(tmp_path: Path) -> None:
    """The worker exited at 6 s: the report says so, and the turns after it are unanswered."""
    result = _report(tmp_path, AgentSpec(exited_s=6.0))
    conv = result.report["conversation"]
    assert conv["worker"]["exited_s"] == 6.0 and conv["worker"]["exit_code"] == 1
    assert any("its worker exited with code 1 at 6 s" in f for f in result.failures)
    assert conv["unanswered"] == [2, 3]
    assert "agent-worker.log" in result.report["evidence"]


def test_a_dropout_inside_an_answer_is_a_glitch(tmp_path: Path) -> None:
    """A 10 ms hole in turn 1's answer is one glitch; the answer stays one segment."""
    conv = _report(tmp_path, AgentSpec(dropout_in_answer=1)).report["conversation"]
    assert conv["glitches"] == 1 and conv["gaps"] == 0 and len(conv["segments"]) == 4


def test_a_slow_agent_fails_the_response_limit(tmp_path: Path) -> None:
    """A 1.5 s response against a 1 s median limit FAILs naming the figure."""
    run = make_agent_run(tmp_path, AgentSpec(reply_ms=1500, window_s=2.5))
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["config"]["thresholds"] = {"max_response_median_ms": 1000}
    (run / "manifest.json").write_text(json.dumps(manifest))
    result = verify.write_report(run, key_path=tmp_path / "key.pem")
    assert any("response median 1540" in f and "maximum 1000 ms" in f for f in result.failures)


def test_a_changed_turn_time_is_caught(tmp_path: Path) -> None:
    """Editing a turn's end time in the turns file makes the re-check FAIL."""
    run = make_agent_run(tmp_path, AgentSpec())
    verify.write_report(run, key_path=tmp_path / "key.pem")
    path = run / "customer.utterances.csv"
    lines = path.read_text().splitlines()
    cells = lines[2].split(",")
    end = UTTERANCES_HEADER.index("speech_end_ns")
    cells[end] = str(int(cells[end]) - 1_000_000)
    lines[2] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    [result] = verify.check(run)
    assert result.status == "fail"
    assert "customer.utterances.csv has changed" in result.reason


def test_turn_ends_are_on_the_run_clock(tmp_path: Path) -> None:
    """The report's sent_end_s are the turns file's ends on the manifest's clock."""
    run = make_agent_run(tmp_path, AgentSpec())
    report = verify.write_report(run, key_path=tmp_path / "key.pem").report
    ends = [t["sent_end_s"] for t in report["conversation"]["turns"]]
    assert ends == pytest.approx(turn_ends_s(run), abs=1e-6)


def test_the_response_runs_from_the_end_of_speech_not_of_the_file(tmp_path: Path) -> None:
    """Files ending in 0.6 s of silence, answered 340 ms after the speech: answered, 340 ms."""
    result = _report(tmp_path, AgentSpec(trail_s=0.6, reply_ms=300, transport_ms=40))
    conv = result.report["conversation"]
    assert result.status == "passed", result.failures
    assert conv["turns_answered"] == conv["turns_sent"] >= 3
    assert conv["response_ms"]["median"] == pytest.approx(340, abs=1.0)
    for t in conv["turns"]:
        assert t["sent_end_s"] - t["speech_end_s"] == pytest.approx(0.6, abs=1e-4)
        assert t["speech_start_s"] == t["sent_start_s"]
        assert t["answer_start_s"] < t["sent_end_s"]  # while the file's silence still played


def test_a_turns_file_without_the_speech_columns_still_verifies(tmp_path: Path) -> None:
    """A run folder written before the speech's bounds: responses from the file's end, OK."""
    result = _report(tmp_path, AgentSpec(file_columns_only=True, reply_ms=300, transport_ms=40))
    conv = result.report["conversation"]
    assert result.status == "passed", result.failures
    assert conv["response_ms"]["median"] == pytest.approx(340, abs=1.0)
    assert all(t["speech_end_s"] is None and t["speech_start_s"] is None for t in conv["turns"])
    assert verify_main([str(tmp_path)]) == 0


def test_dispatch_and_first_audio_are_timed_from_the_dispatch(tmp_path: Path) -> None:
    """Dispatched at 0.2 s, joined at 0.5 s, greeting 0.25 s later: 300 ms and 550 ms."""
    conv = _report(tmp_path, AgentSpec(greeting_s=0.25)).report["conversation"]
    assert conv["dispatch_ms"] == pytest.approx(300, abs=1e-3)
    assert conv["first_audio_ms"] == pytest.approx(550, abs=1.0)
    assert conv["first_audio_s"] == pytest.approx(0.75, abs=1e-3)
    older = _report(tmp_path / "older", AgentSpec(dispatched_s=None)).report["conversation"]
    assert older["dispatch_ms"] is None and older["first_audio_ms"] is None


def test_a_stall_of_the_agents_own_worker_makes_an_unanswered_turn_inconclusive(
    tmp_path: Path,
) -> None:
    """Turn 1 unanswered while the agent's worker waited 400 ms for a CPU: INCONCLUSIVE, named;
    the same turn unanswered with the stall 5 s later FAILs."""
    stalled = _report(tmp_path / "near", AgentSpec(silent=(1,), agent_stall_at_s=6.0))
    assert stalled.status == "inconclusive", stalled.failures
    assert stalled.reason is not None
    assert stalled.reason.startswith("a thread of the agent's worker waited 400 ms for a CPU")
    far = _report(tmp_path / "far", AgentSpec(silent=(1,), agent_stall_at_s=11.0))
    assert far.status == "failed"
