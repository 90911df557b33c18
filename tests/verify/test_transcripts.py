"""What the agent understood of each turn (verify.transcripts): WER and lost first words, from
the room's transcriptions as the Customer received them; on synthetic run folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import verify
from echoproof.contract import TRANSCRIPTS
from tests.verify.agent_synth import AgentSpec, make_agent_run
from verify.__main__ import main as verify_main
from verify.transcripts import word_errors, words

ORDER = "hello i would like to check my order status"
REFUND = "where is my refund"


def _report(tmp_path: Path, spec: AgentSpec, **thresholds: float) -> verify.ReportResult:
    run = make_agent_run(tmp_path, spec)
    if thresholds:
        manifest = json.loads((run / "manifest.json").read_text())
        manifest["config"]["thresholds"] = thresholds
        (run / "manifest.json").write_text(json.dumps(manifest))
    return verify.write_report(run, key_path=tmp_path / "key.pem")


@pytest.mark.parametrize(
    ("understood", "wer", "lost"),
    [
        (ORDER, 0.0, 0),
        ("Hello, I would like to check my ORDER status!", 0.0, 0),  # case and punctuation
        ("would like to check my order status", 2 / 9, 2),  # the first two words deleted
        ("oh would like to check my order status", 2 / 9, 2),  # one substituted, one deleted
        ("hello i would like to check my order", 1 / 9, 0),  # the last word lost: not first
        ("", 1.0, 9),  # nothing understood: every word lost
        ("cancel subscription", 1.0, 9),  # nothing right
    ],
)
def test_word_errors_and_lost_first_words(understood: str, wer: float, lost: int) -> None:
    """WER against the words said, and how many leading words come before the first right one."""
    found_wer, found_lost = word_errors(ORDER, understood)
    assert found_wer == pytest.approx(wer) and found_lost == lost


def test_a_turn_without_words_has_no_word_errors() -> None:
    """No text (a --say file): no WER, no lost words; words are lowercased, apostrophes kept."""
    assert word_errors("", "anything") == (None, None)
    assert words("I'd like it, please.") == ["i'd", "like", "it", "please"]


def test_an_agent_that_understands_every_turn_passes_with_its_transcripts(tmp_path: Path) -> None:
    """Every turn understood word for word: WER 0, nothing lost, its answers' text reported."""
    spec = AgentSpec(texts=(ORDER, REFUND), understood=(ORDER, REFUND))
    result = _report(tmp_path, spec)
    conv = result.report["conversation"]
    assert result.status == "passed", result.failures
    assert [t["text"] for t in conv["turns"][:2]] == [ORDER, REFUND]
    for t in conv["turns"]:
        assert t["understood"] == t["text"] and t["wer"] == 0.0 and t["first_words_lost"] == 0
        assert t["answer_text"] == f"You said: {t['text']}"
    summary = conv["transcripts"]
    assert summary["available"] and summary["wer_mean"] == 0.0 and summary["wer_max"] == 0.0
    assert summary["turns_scored"] == conv["turns_sent"] == 4
    assert summary["customer_streams"] == 8 and summary["agent_streams"] == 4
    assert summary["first_words_lost_turns"] == []
    assert TRANSCRIPTS in result.report["evidence"]


def test_lost_first_words_fail_naming_the_turn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Turn 1's transcript lacks its first 2 words: FAIL naming the turn and the words;
    python -m verify exits 1."""
    spec = AgentSpec(texts=(REFUND, ORDER), understood=(REFUND, ORDER.split(" ", 2)[2]))
    result = _report(tmp_path, spec)
    assert result.status == "failed"
    conv = result.report["conversation"]
    assert [t["first_words_lost"] for t in conv["turns"]] == [0, 2, 0, 2]
    assert conv["transcripts"]["first_words_lost_turns"] == [1, 3]
    [line] = [f for f in result.failures if "first" in f]
    assert "turn 1: the agent's transcript lacks the first 2 words ('hello i'" in line
    assert "turn 3: the agent's transcript lacks the first 2 words" in line
    assert line.endswith("expected at most 0 lost")
    assert verify_main([str(tmp_path)]) == 1
    assert "turn 1: the agent's transcript lacks the first 2 words" in capsys.readouterr().out


def test_a_mean_wer_over_the_limit_fails_naming_the_worst_turn(tmp_path: Path) -> None:
    """Every other turn misheard at its end: mean WER 0.111 against a 0.1 limit FAILs (the
    default 0.25 passes)."""
    spec = AgentSpec(texts=(ORDER,), understood=(ORDER, "hello i would like to check my"))
    result = _report(tmp_path, spec, max_wer=0.1)
    conv = result.report["conversation"]
    assert conv["transcripts"]["wer_mean"] == pytest.approx(1 / 9, abs=1e-4)
    [line] = [f for f in result.failures if "word error rate" in f]
    assert line.startswith("agent reply-agent: word error rate mean 0.1111 over 4 turns")
    assert "exceeds the maximum 0.1 (worst turn 1, 0.2222" in line
    assert _report(tmp_path / "default", spec).status == "passed"


def test_the_lost_words_limit_is_a_threshold(tmp_path: Path) -> None:
    """max_first_words_lost 2 lets two lost words pass."""
    spec = AgentSpec(texts=(ORDER,), understood=(ORDER.split(" ", 2)[2],))
    assert _report(tmp_path, spec, max_first_words_lost=2, max_wer=1).status == "passed"


def test_turns_without_words_or_transcripts_are_not_judged(tmp_path: Path) -> None:
    """--say files (no text): understood reported, no WER; an agent that publishes no transcript
    of the caller: understood null; a run made before transcripts: available false. All pass."""
    no_text = _report(tmp_path / "a", AgentSpec(understood=(REFUND,))).report["conversation"]
    assert all(t["understood"] == REFUND and t["wer"] is None for t in no_text["turns"])
    assert all(t["text"] is None for t in no_text["turns"])
    mute = _report(tmp_path / "b", AgentSpec(texts=(ORDER,)))
    assert mute.status == "passed", mute.failures
    assert all(t["understood"] is None for t in mute.report["conversation"]["turns"])
    older = _report(tmp_path / "c", AgentSpec(texts=(ORDER,), transcripts=False))
    assert older.status == "passed", older.failures
    conv = older.report["conversation"]
    assert conv["transcripts"]["available"] is False
    assert all(t["answer_text"] is None for t in conv["turns"])


def test_a_changed_transcript_is_caught_by_the_recheck(tmp_path: Path) -> None:
    """The transcripts file is evidence: editing it after signing makes the re-check FAIL."""
    run = make_agent_run(tmp_path, AgentSpec(texts=(ORDER,), understood=(ORDER,)))
    verify.write_report(run, key_path=tmp_path / "key.pem")
    [ok] = verify.check(run)
    assert ok.status == "ok", ok.reason
    path = run / TRANSCRIPTS
    path.write_text(path.read_text().replace("order status", "order"), encoding="utf-8")
    [result] = verify.check(run)
    assert result.status == "fail" and f"{TRANSCRIPTS} has changed" in result.reason


def test_a_malformed_transcript_line_is_named(tmp_path: Path) -> None:
    """A line of the wrong shape: the evidence error names the file and the line."""
    run = make_agent_run(tmp_path, AgentSpec(texts=(ORDER,), understood=(ORDER,)))
    with (run / TRANSCRIPTS).open("a", encoding="utf-8") as f:
        f.write(json.dumps({"t_ns": 1, "text": "x"}) + "\n")
    with pytest.raises(verify.VerifyError, match=f"{TRANSCRIPTS} line 13 has fields"):
        verify.write_report(run, key_path=tmp_path / "key.pem")
