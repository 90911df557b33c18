"""The server-cost benchmark's parts: the base tree it exports and one trial, real processes."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from benchmarks import server_cost
from tests.conftest import scaled

ROOT = Path(__file__).resolve().parents[2]


def _show(commit: str, path: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{commit}:{path}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_exported_tree_is_the_commit_and_goes_away() -> None:
    """The export holds the base commit's server, not the working tree's, and is removed after."""
    with server_cost.exported(server_cost.BASE) as tree:
        media = (tree / "sfu" / "media.py").read_text()  # the base: a top-level sfu
        assert media == _show(server_cost.BASE, "sfu/media.py")
        assert media != (ROOT / "echoproof" / "sfu" / "media.py").read_text()
    assert not tree.exists()


async def test_a_trial_measures_every_forwarded_stream_of_both_servers() -> None:
    """Against the current and the base server: every listener's stream is counted and flows."""
    load = server_cost.Load(rooms=1, listeners=2, window_s=2.0, repeats=1)
    with server_cost.exported(server_cost.BASE) as base:
        for root in (ROOT, base):
            async with asyncio.timeout(scaled(90)):
                figures = await server_cost.trial(root, load)
            assert figures["streams"] == 2, (root, figures)
            # 50 packets a second flow on each stream (half of that is plenty to show they do)
            assert figures["packets"] >= 0.5 * 50 * 2 * figures["window_s"], (root, figures)
            assert figures["server_cpu_s"] > 0, (root, figures)
