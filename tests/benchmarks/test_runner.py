"""The benchmark runner's summary and the capacity benchmark's parts, with real processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import capacity
from benchmarks.__main__ import PLAN, TOTAL_BUDGET_S, summary
from tests.conftest import scaled

ROOT = Path(__file__).resolve().parents[2]


def test_summary_judges_each_goal() -> None:
    """A figure within its goal reads PASS, one beyond it MISS, one without a goal neither."""
    results = {
        "sfu": {"latency_ms": {"median": 48.0, "p95": 70.0, "p99": 130.0}, "bursts_lost": 0},
        "capacity": {"capacity_share": 0.5, "capacity_vs_bare": 0.8, "predicted_pairs": 8.0},
        "sfu_wall_s": PLAN["sfu"][1] + 1.0,
        "server_cost": {"ratio": 1.12, "current_cpu_s_per_stream_min": 0.9},
    }
    rows = {name: (value, verdict) for name, value, _, verdict in summary(results)}
    assert rows["mouth-to-ear median"] == ("48 ms", "PASS")
    assert rows["mouth-to-ear p99"] == ("130 ms", "MISS")
    assert rows["mouth-to-ear p95"] == ("70 ms", "")
    assert rows["bursts lost through the server"] == ("0", "PASS")
    assert rows["capacity / prediction"] == ("0.5", "")
    assert rows["capacity / bare SDK's"] == ("0.8", "MISS")
    assert rows["wall time: sfu"][1] == "MISS"
    assert rows["server CPU / base commit's"] == ("1.12", "MISS")
    assert rows["server CPU s / stream-min, A/B"] == ("0.9 s", "")


def test_area_budgets_fit_the_whole_run() -> None:
    """The areas' wall-time budgets add up to no more than the whole run's."""
    assert sum(budget for _, budget in PLAN.values()) <= TOTAL_BUDGET_S


def test_summary_reads_keys_that_hold_dots() -> None:
    """dsp's figures are keyed like "60s.k2" and "snr0db.opus.f440": the summary finds them."""
    results = {
        "dsp": {
            "goertzel": {"60s.k2": {"ratio": 10.6}, "60s.k32": {"ratio": 7.0}},
            "onset": {"snr0db.opus.f440": {"std_us": 3.3}},
        }
    }
    rows = {name: (value, verdict) for name, value, _, verdict in summary(results)}
    assert rows["Goertzel numba / numpy, K=2, 60s"] == ("10.6x", "PASS")
    assert rows["Goertzel numba / numpy, K=32, 60s"] == ("7x", "MISS")
    assert rows["onset std, 0 dB, Opus, 440 Hz"] == ("3.3 us", "PASS")


def test_summary_leaves_out_what_was_not_measured() -> None:
    """A failed area or a figure quick mode skips makes no row, and no error."""
    results = {"dsp": {"error": "RuntimeError: boom"}, "verify": {"check_120s_median_s": 0.7}}
    names = [name for name, *_ in summary(results)]
    assert names == ["verify a 120 s run"]


def test_unknown_area_is_a_usage_error() -> None:
    """`python -m benchmarks nope` names the area and the choices, exit 2, no traceback."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "nope"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=scaled(30),
    )
    assert done.returncode == 2
    assert "unknown area 'nope'" in done.stderr
    assert "Traceback" not in done.stderr


def test_bare_sdk_pair_is_measured_on_the_real_server(tmp_path: Path) -> None:
    """The baseline script talks 5 s through a real server: CPU from /proc, every burst heard."""
    usage, summary = capacity._bare(1, 5.0, tmp_path)
    assert usage.window_s == pytest.approx(2.0, abs=0.5)
    assert usage.agents_cpu_s > 0 and usage.server_cpu_s > 0
    assert usage.agents_total_cpu_s > usage.agents_cpu_s
    assert "5 s of audio sent" in (tmp_path / "bare.log").read_text()
    assert (summary["conversations_complete"], summary["bursts_sent"]) == (1, 9)
    figures = capacity._bare_figures([summary])
    assert figures["bursts_lost"] == 0
    assert 0 < figures["latency_median_ms"] < 1000
