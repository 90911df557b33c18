"""The quality benchmark's loss ladder, its pure parts: order, figures per level, steps, goals."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks import quality
from benchmarks.__main__ import summary


def _direction(sender: str, receiver: str, segments: list[float], loss: float) -> dict[str, Any]:
    mean = round(sum(segments) / len(segments), 3)
    q = {"mos": mean, "mos_min": min(segments), "segments": [{"mos": m} for m in segments]}
    return {"from": sender, "to": receiver, "quality": q, "rtc": {"packet_loss_pct": loss}}


def test_runs_alternate_order_between_passes() -> None:
    """Each pass runs every level, the next pass in reverse; one pass is the levels in order."""
    assert quality.interleaved((0.0, 2.0, 5.0), 1) == [0.0, 2.0, 5.0]
    assert quality.interleaved((0.0, 10.0), 3) == [0.0, 10.0, 10.0, 0.0, 0.0, 10.0]


def test_ladder_config_probes_every_segment_and_impairs_only_with_loss() -> None:
    """Share 1.0 and no RED everywhere; loss 0 has no impairment block, others the loss with the
    same seed."""
    clean, lossy = quality.ladder_config(0.0), quality.ladder_config(5.0)
    assert clean == {"probe": {"share": 1.0, "seed": 1, "file": None}, "red": False}
    assert lossy["red"] is False
    assert lossy["impairment"] == {"loss_pct": 5.0, "seed": quality.LADDER_SEED}
    assert lossy["probe"] == clean["probe"]


def test_direction_figures_pool_the_runs_of_a_level() -> None:
    """Mean of the runs' means, lowest segment, standard error over segments, mean wire loss."""
    reports = [
        {"directions": [_direction("customer", "support", [4.9, 4.7], 9.0)]},
        {"directions": [_direction("customer", "support", [4.9, 4.9], 11.0)]},
        {"directions": [{"from": "support", "to": "customer", "quality": {"mos": None}}]},
    ]
    figures = quality.direction_figures(reports)
    assert list(figures) == ["customer_to_support"]
    f = figures["customer_to_support"]
    assert (f["mos_mean"], f["mos_min"], f["segments"], f["packet_loss_pct"]) == (
        4.85,
        4.7,
        4,
        10.0,
    )
    assert f["mos_se"] == pytest.approx(0.05, abs=1e-4)  # std 0.1 over 4 segments


def test_steps_report_size_noise_and_rises() -> None:
    """A step is MOS after - before; its noise 2 x the standard error of the difference."""
    steps = quality.ladder_steps([(0.0, 4.95, 0.003), (2.0, 4.96, 0.004), (5.0, 4.90, 0.0)])
    assert [s["step"] for s in steps] == [0.01, -0.06]
    assert steps[0]["noise"] == pytest.approx(0.01)
    assert [s["rises"] for s in steps] == [True, False]
    assert [s["beyond_noise"] for s in steps] == [False, True]


def test_judge_counts_rises_in_every_direction_and_the_clean_goal() -> None:
    """The clean MOS is the lower direction's; any rise breaks monotonic; noise is kept apart."""

    def level(a: float, b: float, se: float = 0.001) -> dict[str, dict[str, Any]]:
        return {"a_to_b": {"mos_mean": a, "mos_se": se}, "b_to_a": {"mos_mean": b, "mos_se": se}}

    falling = {0.0: level(4.95, 4.94), 2.0: level(4.95, 4.93), 10.0: level(4.90, 4.92)}
    judged = quality.judge_ladder(falling)
    assert (judged["clean_mos"], judged["clean_goal_met"]) == (4.94, 1)
    assert (judged["rises"], judged["monotonic"]) == (0, 1)
    rising = {0.0: level(3.9, 4.94), 2.0: level(3.95, 4.945, se=0.01), 10.0: level(3.8, 4.9)}
    judged = quality.judge_ladder(rising)
    assert (judged["clean_mos"], judged["clean_goal_met"]) == (3.9, 0)
    assert (judged["rises"], judged["rises_beyond_noise"], judged["monotonic"]) == (2, 1, 0)


def test_ladder_rows_in_the_summary() -> None:
    """The clean MOS and the rises are judged; per-level MOS and measured loss are shown."""
    ladder = {
        "clean_mos": 4.95,
        "rises": 1,
        "rises_beyond_noise": 0,
        "levels_missing": 1,
        "levels": {"loss_10": {"lower_mos": 4.92, "packet_loss_pct": 9.7}},
    }
    rows = {
        name: (value, verdict)
        for name, value, _, verdict in summary({"quality": {"ladder": ladder}})
    }
    assert rows["ladder: clean MOS, lower direction"] == ("4.95", "PASS")
    assert rows["ladder: MOS rises, level to level"] == ("1", "MISS")
    assert rows["ladder: rises beyond noise"] == ("0", "")
    assert rows["ladder: levels without a report"] == ("1", "MISS")
    assert rows["ladder: 10 % loss, lower MOS"] == ("4.92", "")
    assert rows["ladder: 10 % loss, loss measured"] == ("9.7%", "")
    assert "ladder: 2 % loss, lower MOS" not in rows  # not run (quick mode)
