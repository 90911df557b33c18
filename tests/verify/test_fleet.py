"""One summary across a fleet's conversations: fleet.json and fleet.html beside the run folders,
recomputed from them alone; the fleet thresholds decide the exit code; JUnit has a case per
conversation and one for the fleet."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
import pytest

import verify
from benchmarks import _synth as synth
from tests.verify.agent_synth import AgentSpec, make_agent_run
from verify.__main__ import main
from verify.fleet import FLEET_HTML, FLEET_JSON, fleet_dir_name

FLEET = "20261206T120000Z-0f1e2d3c"
NAMES = [f"20261206T120000Z-0000000{i}" for i in range(4)]


def _runs(tmp_path: Path, key: Path, specs: list[synth.Spec]) -> Path:
    root = tmp_path / "runs"
    for name, spec in zip(NAMES, specs, strict=False):
        verify.write_report(synth.make_run(root, spec, name), key_path=key, html=False)
    return root


def _spec(delay_ms: float = 42.37) -> synth.Spec:
    return synth.Spec(fleet=FLEET, customer=synth.Direction(delay_ms=delay_ms))


def test_a_fleet_of_ok_runs_is_summarised_from_its_reports(
    tmp_path: Path, session_key: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Three OK conversations: one FLEET line, fleet.json's spreads equal those recomputed from
    the runs' own reports, fleet.html links every report, exit 0."""
    root = _runs(tmp_path, session_key, [_spec(40.0), _spec(60.0), _spec(80.0)])
    assert main([str(root)]) == 0
    out = capsys.readouterr().out.splitlines()
    summary_path = root / fleet_dir_name(FLEET) / FLEET_JSON
    assert out[-2:] == [
        f"FLEET {FLEET} OK: 3 conversations (3 OK, 0 FAIL, 0 INCONCLUSIVE); {summary_path}",
        f"page: {summary_path.with_name(FLEET_HTML)}",  # the runs' own pages are in it
    ]
    summary = json.loads(summary_path.read_text())
    assert summary["counts"] == {"ok": 3, "fail": 0, "inconclusive": 0}
    medians = []
    for name in NAMES[:3]:
        report = json.loads((root / name / "report.json").read_bytes())
        medians.append(max(d["latency_ms"]["median"] for d in report["directions"]))
    spread = summary["figures"]["latency_median_ms"]
    assert spread["p50"] == pytest.approx(float(np.percentile(medians, 50)), abs=1e-4)
    assert spread["max"] == pytest.approx(max(medians), abs=1e-4)
    assert spread["count"] == 3
    page = (root / fleet_dir_name(FLEET) / FLEET_HTML).read_text()
    for name in NAMES[:3]:
        assert f'href="../{name}/report.html"' in page


def test_the_worst_conversation_comes_first_and_the_default_fails_the_fleet(
    tmp_path: Path, session_key: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One conversation lost a burst: the fleet FAILs by default (every one must be OK), the
    failing run is listed first; with fleet_min_ok_share 0.6 in config.thresholds it passes."""
    lost = synth.Spec(fleet=FLEET, customer=synth.Direction(lost=(2,)))
    root = _runs(tmp_path, session_key, [_spec(), lost, _spec()])
    assert main([str(root)]) == 1
    last = capsys.readouterr().out.splitlines()[-2]
    assert last.startswith(f"FLEET {FLEET} FAIL: 3 conversations (2 OK, 1 FAIL, 0 INCONCLUSIVE)")
    assert "OK conversations 2 of 3 (0.6667) are below the minimum share 1" in last
    summary = json.loads((root / fleet_dir_name(FLEET) / FLEET_JSON).read_text())
    assert summary["runs"][0]["run"] == NAMES[1]
    assert summary["runs"][0]["status"] == "fail"

    relaxed = {"fleet_min_ok_share": 0.6, "max_bursts_lost": 0}
    root2 = _runs(
        tmp_path / "2",
        session_key,
        [synth.Spec(fleet=FLEET, thresholds=relaxed), lost, synth.Spec(fleet=FLEET)],
    )
    assert main([str(root2)]) == 0
    assert capsys.readouterr().out.splitlines()[-2].startswith(f"FLEET {FLEET} OK")


def test_junit_has_a_case_per_conversation_and_one_for_the_fleet(
    tmp_path: Path, session_key: Path
) -> None:
    """--junit: one test case per run and one named `fleet <id>`."""
    root = _runs(tmp_path, session_key, [_spec(), _spec()])
    assert main([str(root), "--junit", str(tmp_path / "v.xml")]) == 0
    suite = ET.parse(tmp_path / "v.xml").getroot()
    names = [c.get("name") for c in suite.iter("testcase")]
    assert names == [str(root / n) for n in NAMES[:2]] + [f"fleet {FLEET}"]


def test_runs_of_no_fleet_or_a_fleet_of_one_are_not_summarised(
    tmp_path: Path, session_key: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run without a fleet id and a fleet of one: no summary, no FLEET line."""
    root = _runs(tmp_path, session_key, [synth.Spec(), _spec()])
    assert main([str(root)]) == 0
    assert "FLEET" not in capsys.readouterr().out
    assert not list(root.glob("fleet-*"))


def test_a_fleet_of_callers_pools_every_turn(tmp_path: Path, session_key: Path) -> None:
    """Three callers of one agent (replies 300, 400, 500 ms): the response percentiles run over
    every turn of every caller, and dispatch and first audio spread across the callers."""
    root = tmp_path / "runs"
    # WER 0, 0.2 and 0.2: within the limit (0.25), so every run passes
    heard = ("check my order now please", "check my water now please", "check my order now")
    for name, reply_ms, understood in zip(NAMES, (300, 400, 500), heard, strict=False):
        spec = AgentSpec(
            reply_ms=reply_ms,
            greeting_s=0.25,
            fleet=FLEET,
            texts=("check my order now please",),
            understood=(understood,),
        )
        verify.write_report(make_agent_run(root, spec, name), key_path=session_key, html=False)
    assert main([str(root)]) == 0
    summary = json.loads((root / fleet_dir_name(FLEET) / FLEET_JSON).read_text())
    responses = [r + 40.0 for r in (300, 400, 500) for _ in range(4)]
    assert summary["response_ms"]["count"] == 12
    assert summary["response_ms"]["p95"] == pytest.approx(np.percentile(responses, 95), abs=1.0)
    assert summary["figures"]["dispatch_ms"]["max"] == pytest.approx(300, abs=1e-3)
    assert summary["figures"]["first_audio_ms"]["count"] == 3
    # what each agent understood, spread across the callers; none lost its first words
    wer = summary["figures"]["wer_mean"]
    assert (wer["p50"], wer["max"], wer["count"]) == (0.2, 0.2, 3)
    assert summary["figures"]["first_words_lost_turns"]["max"] == 0
    assert summary["figures"]["customer_audio_lost_ms"]["max"] == 0
