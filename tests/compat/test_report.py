"""A real run's report.html in headless Chromium, opened from its folder (file://) with every
request that leaves the folder blocked: the verdict and headline figures are report.json's, the
first received stream plays with the recording's length, a burst's region moves the playback to
that burst, and the page logs no error; recordings past the RIFF limit (RF64) play too.

Runs with ``nox -s compat`` (Chromium, Node and compat/node_modules' playwright-core).
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path
from typing import Any

import pytest
import soundfile

import verify
from pipeline.recording.wav import RIFF_LIMIT_ENV
from tests.compat._chromium import COMPAT, NODE, REQUIRED, missing
from tests.conftest import scaled
from tests.verify.agent_synth import AgentSpec, make_agent_run
from tests.verify.real_runs import record
from verify import evidence as ev
from verify.headline import STATUS_WORDS, lookup

_WHY = missing("playwright-core")
pytestmark = pytest.mark.skipif(_WHY is not None and not REQUIRED, reason=_WHY or "")

DURATION_S = 6


def open_page(page: Path, **params: Any) -> dict[str, Any]:
    """What compat/report.mjs found on `page` (it fails the test when it could not drive it)."""
    assert NODE is not None, _WHY
    proc = subprocess.run(
        [NODE, str(COMPAT / "report.mjs"), json.dumps({"page": str(page), **params})],
        cwd=COMPAT,
        capture_output=True,
        text=True,
        timeout=scaled(120),
        check=False,
    )
    assert proc.stdout.strip(), proc.stderr[-2000:]
    found: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert proc.returncode == 0, found.get("error")
    return found


@pytest.fixture(scope="module")
def signed_real_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 6 s run on the embedded server, signed, with its report.html."""
    root = tmp_path_factory.mktemp("report-page")
    run = record(root, DURATION_S, {}, ())
    verify.write_report(run, key_path=root / "key.pem")
    return run


def test_a_real_runs_page_answers_plays_and_needs_no_network(signed_real_run: Path) -> None:
    report = json.loads((signed_real_run / ev.REPORT).read_bytes())
    found = open_page(signed_real_run / ev.HTML)

    assert found["console"] == []
    assert found["blocked"] == []  # the page asked for nothing outside its folder
    assert ev.HTML in found["requested"]

    verdict = found["verdict"]
    assert verdict["word"] == STATUS_WORDS[report["verdict"]["status"]]
    assert verdict["status"] == report["verdict"]["status"]
    assert verdict["signature"] == "verified"
    assert verdict["keyId"] == report["key_id"]
    assert verdict["visible"]  # the answer is on the first screen

    cards = found["cards"]
    paths = {c["path"] for c in cards}
    for i, d in enumerate(report["directions"]):
        for key in ("latency_ms.median", "latency_ms.p95", "bursts_lost", "gap_max_ms"):
            assert f"directions[{i}].{key}" in paths
        assert (f"directions[{i}].quality.mos" in paths) == bool(d.get("quality"))
    for card in cards:
        value = lookup(report, card["path"])
        assert json.loads(card["value"]) == value, card
        if value is None:  # e.g. no probe segment scored in a short run
            assert (card["shown"], card["state"]) == ("n/a", "none"), card
        else:
            assert math.isclose(float(card["shown"]), value, abs_tol=0.05), card
            assert card["state"] in ("ok", "fail")

    received = [p["wav"] for p in found["players"]]
    assert received[:2] == [d["files"]["wav"] for d in report["directions"]]
    assert all(p["src"] == p["wav"] for p in found["players"])  # relative: nothing copied
    played = found["played"]
    assert played["error"] is None
    assert played["duration"] == pytest.approx(
        soundfile.info(str(signed_real_run / received[0])).duration, abs=1e-3
    )

    clicked = found["clicked"]
    burst = next(b for b in report["directions"][0]["bursts"] if b["burst"] == clicked["burst"])
    assert clicked["seek"] == pytest.approx(burst["onset_sample"] / ev.SAMPLE_RATE, abs=1e-4)
    assert clicked["seek"] - 1e-3 <= clicked["currentTime"] < clicked["seek"] + 0.5


def test_an_agent_runs_turn_row_plays_its_part_of_the_recording(tmp_path: Path) -> None:
    """A conversation with an agent under test (synthesised evidence, verify's own report):
    clicking a turn's row plays what the Customer heard from where the turn was said."""
    run = make_agent_run(tmp_path, AgentSpec(texts=("hello there",), understood=("hello",)))
    verify.write_report(run, key_path=tmp_path / "key.pem")
    report = json.loads((run / ev.REPORT).read_bytes())
    found = open_page(run / ev.HTML)

    assert found["console"] == [] and found["blocked"] == []
    assert found["verdict"]["word"] == STATUS_WORDS[report["verdict"]["status"]]
    assert [c["path"] for c in found["cards"]][:3] == [
        "conversation.greeting_ms",
        "conversation.response_ms.median",
        "conversation.response_ms.p95",
    ]
    for card in found["cards"]:
        assert json.loads(card["value"]) == lookup(report, card["path"]), card
    assert found["players"][0]["wav"] == report["conversation"]["files"]["wav"]
    assert found["played"]["duration"] == pytest.approx(
        soundfile.info(str(run / found["players"][0]["wav"])).duration, abs=1e-3
    )
    turn = found["turn"]
    assert turn["turn"] == report["conversation"]["turns"][0]["turn"]
    assert turn["seek"] - 1e-3 <= turn["currentTime"] < turn["seek"] + 0.5
    assert float(turn["until"]) > turn["seek"]  # it stops at the end of the answer


def test_a_recording_past_the_riff_limit_plays_on_the_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real run whose recordings became RF64 (the limit lowered to 2 s of audio, as past
    4 GiB): Chromium plays the first one with its length, and a burst's region seeks in it."""
    monkeypatch.setenv(RIFF_LIMIT_ENV, str(2 * ev.SAMPLE_WIDTH * ev.SAMPLE_RATE))
    run = record(tmp_path, DURATION_S, {}, ())
    verify.write_report(run, key_path=tmp_path / "key.pem")
    report = json.loads((run / ev.REPORT).read_bytes())
    first = run / report["directions"][0]["files"]["wav"]
    assert first.read_bytes()[:4] == b"RF64"

    found = open_page(run / ev.HTML)
    assert found["console"] == [] and found["played"]["error"] is None
    assert found["played"]["duration"] == pytest.approx(
        soundfile.info(str(first)).duration, abs=1e-3
    )
    clicked = found["clicked"]
    assert clicked["seek"] - 1e-3 <= clicked["currentTime"] < clicked["seek"] + 0.5
