"""How far a re-check has got: counted in the forked workers, shown in place on a terminal
within 80 columns, by quarters in a log."""

from __future__ import annotations

import io
import multiprocessing
import re
import threading
from pathlib import Path

import pytest

import verify
from benchmarks import _synth as synth
from verify import progress
from verify.__main__ import COLUMNS, _progress
from verify.check import check


def _work() -> None:
    progress.expect(4.0)
    progress.done(1.0)


def test_work_counted_in_a_forked_process_reaches_the_meter() -> None:
    """A forked child's expectations and work are seen by the parent's ticker; the end shows
    1.0 whatever the estimate."""
    seen: list[float] = []
    ticked = threading.Event()

    def show(share: float) -> None:
        seen.append(share)
        ticked.set()

    with progress.metered(show, every_s=0.01):
        child = multiprocessing.get_context("fork").Process(target=_work)
        child.start()
        child.join()
        progress.done(1.0)
        ticked.clear()
        assert ticked.wait(10)  # the ticker's next tick, after both counted
        assert seen[-1] == 0.5
    assert seen[-1] == 1.0
    progress.done(5.0)  # no meter running: nothing counted, no error


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _probe_run(tmp_path: Path) -> Path:
    run = synth.make_run(tmp_path / "runs", synth.Spec(duration_s=30.0, probe_share=0.5))
    verify.write_report(run, key_path=tmp_path / "signing-key.pem", html=False)
    return run


def test_on_a_terminal_the_share_done_is_rewritten_in_place(tmp_path: Path) -> None:
    """A probe run's re-check on a terminal: its line, then its share done rising to 100%, each
    state within 80 columns, a newline at the end."""
    run = _probe_run(tmp_path)
    out = _Terminal()
    check(run, on_run=_progress(out, every_s=0.01))
    text = out.getvalue()
    assert text.endswith("100%\n") and text.count("\n") == 1
    states = text.rstrip("\n").split("\r")
    assert all(len(s) <= COLUMNS for s in states), [s for s in states if len(s) > COLUMNS]
    shares = [int(m[1]) for s in states[1:] if (m := re.search(r" +(\d+)%$", s))]
    assert len(shares) == len(states) - 1 and shares == sorted(shares)
    assert any(0 < s < 100 for s in shares), shares


def test_in_a_log_a_long_run_says_each_quarter_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Off a terminal a long run (here: any) gets its line and one line per quarter passed."""
    monkeypatch.setattr("verify.__main__.LONG_RUN_MIN", 0.0)
    run = _probe_run(tmp_path)
    out = io.StringIO()
    check(run, on_run=_progress(out, every_s=0.01))
    first, *rest = out.getvalue().splitlines()
    assert first.startswith("checking 1/1: ") and first.endswith("min of audio")
    assert rest == [f"checking 1/1: {q}% done" for q in (25, 50, 75)]
