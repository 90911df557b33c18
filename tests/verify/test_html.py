"""report.html without a browser: the verdict banner and the headline cards come first and hold
report.json's figures, the recordings are linked where they lie, and a table appears only where
the run has its figures (an agent under test has no tone table)."""

from __future__ import annotations

import html
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import verify
from benchmarks import _synth as synth
from tests.verify.agent_synth import AgentSpec, make_agent_run
from verify import evidence as ev
from verify.headline import lookup

MakeRun = Callable[..., Path]


def _cards(page: str) -> list[tuple[str, str, str]]:
    """Each card's class, path and value, in the page's order."""
    return re.findall(r'<div class="card (\w+)" data-path="([^"]+)" data-value="([^"]*)"', page)


def _report_and_page(run: Path) -> tuple[dict[str, object], str]:
    return json.loads((run / ev.REPORT).read_bytes()), (run / ev.HTML).read_text("utf-8")


def test_a_passing_runs_page_opens_with_its_verdict_signature_and_cards(signed_run: Path) -> None:
    report, page = _report_and_page(signed_run)
    banner = page.index('id="verdict"')
    assert banner < page.index('id="headline"') < page.index('id="evidence"')
    assert page.index('id="evidence"') < page.index('id="detail"')
    assert 'class="banner passed" data-status="passed"><div class="word">PASSED</div>' in page
    assert "every figure is within its threshold" in page
    assert '<span class="signature-status">verified</span>' in page
    assert f'<code class="key-id">{report["key_id"]}</code>' in page

    cards = _cards(page)
    assert [p for _, p, _ in cards] == [
        f"directions[{i}].{key}"
        for i in (0, 1)
        for key in ("latency_ms.median", "latency_ms.p95", "bursts_lost", "gap_max_ms")
    ]
    for state, path, value in cards:
        assert json.loads(value) == lookup(report, path)
        assert state == "ok"
    assert "max_latency_p95_ms ≤ 600 ms" in page  # each card names its threshold


def test_the_recordings_play_from_the_run_folder_by_relative_links(signed_run: Path) -> None:
    report, page = _report_and_page(signed_run)
    sources = re.findall(r'<audio id="audio-\d+" controls preload="metadata" src="([^"]+)"', page)
    assert sources == [d["files"]["wav"] for d in report["directions"]]  # type: ignore[index]
    for src in sources:
        assert (signed_run / src).is_file()  # linked where it lies: nothing copied
    assert not any(p.suffix == ".wav" for p in signed_run.iterdir() if ev.is_derived(p.name))
    assert "http://" not in page and "https://" not in page  # no CDN, no network
    regions = re.findall(r'"kind":"burst","label":"burst (\d+) \(detected\)"', page)
    assert len(regions) == sum(d["bursts_detected"] for d in report["directions"])  # type: ignore


def test_a_failing_runs_banner_gives_the_first_failure_and_its_card_fails(
    make_run: MakeRun, tmp_path: Path
) -> None:
    run = make_run(synth.Spec(customer=synth.Direction(lost=(1, 3))))
    result = verify.write_report(run, key_path=tmp_path / "k.pem")
    _, page = _report_and_page(run)
    assert '<div class="word">FAILED</div>' in page
    assert f'<div class="reason">{html.escape(result.failures[0])}' in page
    states = {path: state for state, path, _ in _cards(page)}
    assert states["directions[0].bursts_lost"] == "fail"
    assert states["directions[1].bursts_lost"] == "ok"
    assert '"kind":"lost","label":"burst 1 lost"' in page


def test_a_changed_report_shows_its_signature_does_not_verify(signed_run: Path) -> None:
    from verify.figures import analyse_run
    from verify.html import write_html

    report = json.loads((signed_run / ev.REPORT).read_bytes())
    (signed_run / ev.REPORT).write_bytes((signed_run / ev.REPORT).read_bytes() + b" ")
    write_html(signed_run, report, analyse_run(signed_run))
    page = (signed_run / ev.HTML).read_text("utf-8")
    assert f'<span class="signature-status">does not verify: {ev.REPORT} changed</span>' in page


def test_an_agent_runs_page_has_its_cards_and_turns_and_no_tone_table(
    tmp_path: Path, session_key: Path
) -> None:
    spec = AgentSpec(texts=("hello there",), understood=("hello there",))
    run = make_agent_run(tmp_path, spec)
    verify.write_report(run, key_path=session_key)
    report, page = _report_and_page(run)
    conv = report["conversation"]
    assert report["directions"] == []

    assert [p for _, p, _ in _cards(page)] == [
        "conversation.greeting_ms",
        "conversation.response_ms.median",
        "conversation.response_ms.p95",
        "conversation.turns_unanswered",
        "conversation.barge_in_stop_ms.max",
        "conversation.transcripts.wer_mean",
    ]
    for _, path, value in _cards(page):
        assert json.loads(value) == lookup(report, path)
    # no empty tone table, no gaps of bursts, no latency plot
    for absent in ("frames sent", "bursts lost</td>", "Gaps (audio", "latency.png"):
        assert absent not in page
    row = r'<tr data-turn="(\d+)"><td>\d+</td><td><button[^>]*data-play="audio-0"'
    rows = re.findall(row, page)
    assert [int(n) for n in rows] == [t["turn"] for t in conv["turns"]]  # type: ignore[index]
    assert f'src="{ev.agent_files(ev.read_manifest(run))["wav"]}"' in page  # type: ignore[index]
    assert "hello there" in page


def test_the_page_is_written_again_from_a_copied_folder(signed_run: Path, tmp_path: Path) -> None:
    """The page holds no absolute path: a copied folder's page still finds its recordings."""
    copy = Path(shutil.copytree(signed_run, tmp_path / "elsewhere" / signed_run.name))
    page = (copy / ev.HTML).read_text("utf-8")
    assert str(signed_run) not in page and str(signed_run.parent) not in page
