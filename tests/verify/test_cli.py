"""`python -m verify`: OK/FAIL/INCONCLUSIVE lines naming the signer, exit codes 0/1/2/4, --json,
--junit, --key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

import verify
from benchmarks import _synth as synth
from tests.conftest import scaled
from verify import signing
from verify.__main__ import main


def _key_id(session_key: Path) -> str:
    pem = signing.public_path(session_key).read_bytes()
    return signing.key_id(signing.load_public_key(pem, "the session's key"))


def test_ok_run_exit_0(
    signed_run: Path, session_key: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One OK run prints `OK: <run> (<its signer's short key id> untrusted, in-toto)`, then where
    its page is, and exits 0: its key is neither pinned nor in the (empty) trusted-keys folder."""
    assert main([str(signed_run)]) == 0
    short = _key_id(session_key)[:16]
    assert capsys.readouterr().out == (
        f"OK: {signed_run} (key {short} untrusted, in-toto)\npage: {signed_run / 'report.html'}\n"
    )


def test_fail_run_exit_1(
    signed_run: Path, session_key: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A tampered run prints `FAIL: <run> (<signer>): <reason>` and exits 1."""
    (signed_run / "stray.tmp").write_text("x")
    assert main([str(signed_run.parent)]) == 1
    assert capsys.readouterr().out == (
        f"FAIL: {signed_run} (key {_key_id(session_key)[:16]} untrusted, in-toto): "
        "unexpected file stray.tmp in the run folder\n"
        f"page: {signed_run / 'report.html'}\n"
    )


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No such path, nothing to verify, an unreadable pinned key: exit 2 with one sentence."""
    assert main([str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main([str(tmp_path)]) == 2
    assert "nothing to verify" in capsys.readouterr().err
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "manifest.json").write_text("{}")
    assert main([str(tmp_path), "--key", str(tmp_path / "absent.pem")]) == 2
    assert "pinned key" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2


def test_json_output(
    signed_run: Path, session_key: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json prints one object per run with run, ok, status, reason, the signer's full key id,
    whether it is trusted and by what, and the envelope's format."""
    assert main([str(signed_run), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert results == [
        {
            "run": str(signed_run),
            "ok": True,
            "reason": "",
            "reasons": [],
            "status": "ok",
            "signer": _key_id(session_key),
            "trusted": False,
            "trusted_by": None,
            "envelope": "in-toto",
            "quality_rechecked": {},  # a short run's probe is scored again in full
        }
    ]


def test_junit_output(signed_run: Path, tmp_path: Path) -> None:
    """--junit writes a test suite with one failing test case per failing run."""
    (signed_run / "events.jsonl").write_text("")
    out = tmp_path / "verify.xml"
    assert main([str(signed_run), "--junit", str(out)]) == 1
    suite = ET.parse(out).getroot()
    assert suite.tag == "testsuite"
    assert suite.get("tests") == "1" and suite.get("failures") == "1"
    failure = suite.find("testcase/failure")
    assert failure is not None
    assert "events.jsonl has changed" in (failure.get("message") or "")


def test_pinned_key_option(signed_run: Path, session_key: Path, tmp_path: Path) -> None:
    """--key with the signer's key is OK; with another key it is a FAIL."""
    assert main([str(signed_run), "--key", str(signing.public_path(session_key))]) == 0
    other = tmp_path / "other.pem"
    signing.load_or_create_key(other)
    assert main([str(signed_run), "--key", str(signing.public_path(other))]) == 1


def test_module_entry_point_no_traceback(signed_run: Path) -> None:
    """`python -m verify` on a corrupt run FAILs with exit 1 and no traceback."""
    (signed_run / "manifest.json").write_text("{broken")
    proc = subprocess.run(
        [sys.executable, "-m", "verify", str(signed_run)],
        capture_output=True,
        text=True,
        timeout=scaled(60),
        check=False,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "manifest.json is not valid JSON" in proc.stdout


def test_several_paths(signed_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Several PATH arguments are checked in order, one line each; a page is named once."""
    assert main([str(signed_run), str(signed_run.parent)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" (")[0] for line in lines] == [f"OK: {signed_run}"] * 2 + [
        f"page: {signed_run / 'report.html'}"
    ]


def _inconclusive_run(make_run: Callable[..., Path]) -> Path:
    spec = synth.Spec(
        thresholds={"max_latency_median_ms": 30.0},  # the injected 42.37 ms fails it
        host_stalls=[(1.0, "support_send_late_ms", 540.0)],
    )
    run = make_run(spec, name="20261123T221900Z-0badc0de")
    verify.write_report(run)
    return run


def test_inconclusive_run_exit_4(
    make_run: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A failure explained by a host stall prints `INCONCLUSIVE: <run>: <stall>`, exits 4 and
    is a skipped test case in JUnit, with the stall as its message."""
    run = _inconclusive_run(make_run)
    out = tmp_path / "verify.xml"
    assert main([str(run), "--junit", str(out)]) == 4
    reason = (
        "support's sending process was 540 ms behind real time at 1.0 s; rerun on a quieter machine"
    )
    printed = capsys.readouterr().out
    assert printed.startswith(f"INCONCLUSIVE: {run} (key ")
    assert printed.endswith(f" untrusted, in-toto): {reason}\npage: {run / 'report.html'}\n")
    suite = ET.parse(out).getroot()
    assert suite.get("skipped") == "1" and suite.get("failures") == "0"
    skipped = suite.find("testcase/skipped")
    assert skipped is not None and skipped.get("message") == reason


def test_a_fail_outranks_an_inconclusive(
    make_run: Callable[..., Path], signed_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With one FAIL and one INCONCLUSIVE run the exit code is 1."""
    run = _inconclusive_run(make_run)
    (signed_run / "stray.tmp").write_text("x")
    assert main([str(run), str(signed_run)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("INCONCLUSIVE: ") and "\nFAIL: " in out


def test_open_shows_the_runs_page_in_the_users_browser(signed_run: Path, tmp_path: Path) -> None:
    """`--open` hands the page's file:// URL to the user's browser (webbrowser, here $BROWSER)."""
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" >> {opened}\n')
    browser.chmod(0o755)
    proc = subprocess.run(
        [sys.executable, "-m", "verify", str(signed_run), "--open"],
        capture_output=True,
        text=True,
        timeout=scaled(60),
        check=False,
        env={**os.environ, "BROWSER": str(browser)},
    )
    assert proc.returncode == 0, proc.stderr
    page = signed_run / "report.html"
    assert proc.stdout.splitlines()[-1] == f"page: {page}"
    assert opened.read_text().splitlines() == [page.resolve().as_uri()]


def test_a_long_run_says_when_its_recheck_begins_within_80_columns(tmp_path: Path) -> None:
    """Off a terminal, only a run with 10 minutes or more of recording says so (a CI log), in
    one line of at most 80 columns, a long path shortened from its start."""
    import io

    from verify.__main__ import COLUMNS, _progress, progress_line

    short, long = tmp_path / "short", tmp_path / ("a-long-folder-name-" * 4) / "run"
    for run, seconds in ((short, 30), (long, 62 * 60)):
        run.mkdir(parents=True)
        with (run / "customer-from-support.wav").open("wb") as f:
            f.truncate(2 * 48_000 * seconds)  # sparse: only its size is read
    out = io.StringIO()
    began = _progress(out)
    with began(1, 2, short):
        pass
    with began(2, 2, long):
        pass
    line, *quarters = out.getvalue().splitlines()
    assert line.startswith("checking 2/2: ...") and line.endswith("/run, 62 min of audio")
    assert len(line) == COLUMNS
    assert progress_line(1, 1, Path("r"), 0.5) == "checking 1/1: r, 0 min of audio"
    # nothing measured its work here: done at once, every quarter passed
    assert quarters == [f"checking 2/2: {q}% done" for q in (25, 50, 75)]
