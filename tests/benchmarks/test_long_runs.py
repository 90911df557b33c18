"""The long-run benchmark's parts: the process tree it watches, and one timed re-check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import verify
from benchmarks import _synth, long_runs


def test_the_tree_holds_a_process_and_its_children() -> None:
    """A child's child is in the tree, and each has a resident size."""
    code = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'input()'])"
    parent = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE)
    try:
        tree: list[int] = []
        while len(tree) < 2 and parent.poll() is None:  # until the grandchild has started
            tree = long_runs._tree(parent.pid)
        assert tree[0] == parent.pid and len(tree) == 2
        assert all((long_runs._rss_mb(pid) or 0) > 1 for pid in tree)
        assert all(
            0 < (long_runs._pss_mb(pid) or 0) <= (long_runs._rss_mb(pid) or 0) + 1 for pid in tree
        )
    finally:
        parent.communicate(b"\n", timeout=30)
    assert long_runs._rss_mb(parent.pid) is None  # gone: no figure, no error


def test_a_timed_recheck_reports_wall_cpu_and_peak(tmp_path: Path) -> None:
    """A synthetic 20 s run re-checked by `python -m verify`: every figure measured."""
    run = _synth.make_run(tmp_path / "runs", _synth.Spec(duration_s=20.0))
    key = tmp_path / "signing-key.pem"
    verify.write_report(run, key_path=key, html=False)
    figures = long_runs._time_verify(run, tmp_path / "signing-key.pub.pem")
    assert figures["wall_s"] > 0 and figures["cpu_s"] > 0
    assert 50 < figures["peak_mib"] <= figures["peak_rss_mib"] < 2000  # numpy loaded, no leak
