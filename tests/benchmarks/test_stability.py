"""The stability benchmark's pure parts: lateness, verdict counting, goals, its summary rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import stability
from benchmarks.__main__ import summary


def test_lateness_is_measured_against_the_first_frame() -> None:
    """Frame n's lateness is t_ns[n] - (t_ns[0] + n x 10 ms), in ms, n from the first frame."""
    frames = np.array([5, 6, 7, 9])
    t_ns = np.array([1_000_000_000, 1_010_000_000, 1_022_500_000, 1_040_000_000])
    assert stability.lateness_ms(frames, t_ns).tolist() == [0.0, 0.0, 2.5, 0.0]


def test_lateness_reads_a_sent_csv(tmp_path: Path) -> None:
    """A ``*.sent.csv`` gives one lateness per frame; an empty one gives none."""
    csv = tmp_path / "customer.sent.csv"
    csv.write_text("frame,sample,samples,t_ns\n0,0,480,100000000\n1,480,480,111000000\n")
    assert stability.read_lateness(csv).tolist() == [0.0, 1.0]
    csv.write_text("frame,sample,samples,t_ns\n")
    assert stability.read_lateness(csv).size == 0


@pytest.mark.parametrize(
    ("code", "status"), [(0, "OK"), (1, "FAIL"), (4, "INCONCLUSIVE"), (3, "ERROR"), (-9, "ERROR")]
)
def test_exit_codes_map_to_statuses(code: int, status: str) -> None:
    """0 OK, 1 FAIL, 4 INCONCLUSIVE; any other exit code, a kill included, is an ERROR."""
    assert stability.exit_status(code) == status


def test_statuses_are_counted_with_zeros() -> None:
    """Every status has a count, zero when no run had it."""
    counts = stability.count_statuses(["OK", "OK", "INCONCLUSIVE"])
    assert counts == {"OK": 2, "FAIL": 0, "INCONCLUSIVE": 1, "ERROR": 0}


def test_verdict_status_falls_back_on_passed() -> None:
    """A report without ``verdict.status`` reads passed / failed from ``verdict.passed``."""
    assert stability.verdict_status({"passed": True, "failures": []}) == "passed"
    assert stability.verdict_status({"passed": False, "failures": ["x"]}) == "failed"
    assert stability.verdict_status({"passed": False, "status": "inconclusive"}) == "inconclusive"


def test_run_figures_read_a_run_folder(tmp_path: Path) -> None:
    """Medians per direction, verdict, failures and reason come from report.json."""
    verdict = {"passed": False, "status": "inconclusive", "failures": ["a"], "reason": "stall"}
    report = {"directions": [{"latency_ms": {"median": 50.04}}, {"latency_ms": {"median": 60}}]}
    (tmp_path / "report.json").write_text(json.dumps({**report, "verdict": verdict}))
    (tmp_path / "support.sent.csv").write_text("frame,sample,samples,t_ns\n0,0,480,0\n")
    figures = stability.run_figures(tmp_path)
    assert figures["medians_ms"] == [50.0, 60.0]
    assert (figures["status"], figures["reason"]) == ("inconclusive", "stall")
    assert figures["freezes_ms"] == []
    assert stability.run_median(figures["medians_ms"]) == 55.0
    assert stability.run_median([50.0, None]) is None


def _run(status: str, median: float | None, failures: tuple[str, ...] = ()) -> dict[str, object]:
    return {"status": status, "median_ms": median, "failures": list(failures)}


def test_summary_of_a_condition() -> None:
    """Counts, spread of the run medians, lateness over every frame, share within 25 %."""
    runs = [_run("OK", 50.0), _run("OK", 60.0), _run("FAIL", 70.0), _run("ERROR", None)]
    runs[0]["lateness"] = np.array([0.0, 1.0, 3.0])
    figures = stability.summarise(runs, quiet_median=50.0)
    assert (figures["OK"], figures["FAIL"], figures["ERROR"]) == (2, 1, 1)
    assert figures["median_spread"] == 1.4
    assert figures["median_of_medians_ms"] == 60.0
    assert figures["lateness_max_ms"] == 3.0
    assert figures["within_25pct_of_quiet"] == 0.5  # 50 and 60 of four runs


def test_goals_per_condition() -> None:
    """quiet: not OK misses; hog: FAIL or slow OK misses; hog_loss5: no packet-loss FAIL misses;
    freeze: FAIL, or the freeze not in the report or not the INCONCLUSIVE reason, misses."""
    assert stability.goal_misses("quiet", [_run("OK", 50), _run("INCONCLUSIVE", 90)], 50) == 1
    hog = [_run("OK", 55), _run("INCONCLUSIVE", 200), _run("OK", 90), _run("FAIL", 50)]
    assert stability.goal_misses("hog", hog, 50.0) == 2
    loss = [
        _run("FAIL", 50, ("a->b: packet loss 4.4 % exceeds the maximum 1 %",)),
        _run("FAIL", 50, ("a->b: SNR 18 dB is below the minimum 20 dB",)),
        _run("OK", 50),
    ]
    assert stability.goal_misses("hog_loss5", loss, 50.0) == 2
    named = "the whole host stood still for 490 ms at 20.1 s (...); rerun on a quieter machine"
    frozen = [
        {**_run("OK", 60), "freezes_ms": [490.0]},
        {**_run("INCONCLUSIVE", 300), "freezes_ms": [490.0], "reason": named},
        {**_run("INCONCLUSIVE", 300), "freezes_ms": [490.0], "reason": "a->b: other stall"},
        {**_run("FAIL", 300), "freezes_ms": [490.0]},
        {**_run("OK", 60), "freezes_ms": []},  # the freeze went unseen
    ]
    assert stability.goal_misses("freeze", frozen, 50.0) == 3


def test_progress_line_fits_80_columns() -> None:
    """A run's progress line is under 80 columns, even with long figures."""
    run = {**_run("INCONCLUSIVE", 1.0), "medians_ms": [12345.6, None], "wall_s": 12345.0}
    run["lateness_p99_ms"] = 123456.0
    assert len(stability._progress("hog_loss5", 9, 10, run)) < 80


def test_summary_rows_judge_stability_goals() -> None:
    """The summary table shows stability's goals with PASS and MISS."""
    results = {
        "stability": {
            "quiet": {"goal_misses": 0, "lateness_p99_ms": 2.5, "median_spread": 1.1},
            "hog": {"goal_misses": 1},
            "hog_loss5": {"goal_misses": 0},
            "freeze": {"goal_misses": 0},
        }
    }
    rows = {name: (value, verdict) for name, value, _, verdict in summary(results)}
    assert rows["quiet runs not OK"] == ("0", "PASS")
    assert rows["quiet sender lateness p99"] == ("2.5 ms", "MISS")
    assert rows["quiet spread of run medians"] == ("1.1", "PASS")
    assert rows["hog runs FAIL/ERROR or slow OK"] == ("1", "MISS")
    assert rows["hog+loss5 runs not FAIL on loss"] == ("0", "PASS")
    assert rows["frozen runs FAIL or freeze unnamed"] == ("0", "PASS")
