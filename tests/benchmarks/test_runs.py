"""The benchmarks' `python -m pipeline` run, for real: embedded server, impairment, report."""

from __future__ import annotations

from pathlib import Path

from benchmarks import _runs
from tests.conftest import scaled


def test_a_lossy_run_fails_on_packet_loss_and_is_removed(tmp_path: Path) -> None:
    """5 % loss in the config's impairment block: exit 1, a report naming packet loss; removed."""
    out = tmp_path / "out"
    done = _runs.pipeline_run(
        {"impairment": {"loss_pct": 5, "seed": 1}, "probe": None}, 4.0, out, tmp_path
    )
    report = done.report()
    assert report is not None, f"no report (exit {done.returncode}: {done.stderr_tail})"
    assert _runs.exit_status(done.returncode) == "FAIL"
    assert any("packet loss" in f for f in report["verdict"]["failures"])
    assert 0 < done.wall_s < scaled(4.0 + _runs.OVERRUN_S)
    assert (tmp_path / "signing-key.pem").exists()  # a temporary key, not the user's
    _runs.remove(out)
    assert not out.exists()
