"""Thresholds: documented defaults, merging, and one clear sentence for every bad value."""

from __future__ import annotations

import pytest

from verify import Thresholds, VerifyError


def test_defaults_are_documented_values() -> None:
    """No data gives the defaults."""
    assert Thresholds.from_dict(None) == Thresholds()
    assert Thresholds().max_bursts_lost == 0


def test_merge_over_defaults() -> None:
    """Given fields replace the defaults, the rest keep theirs."""
    t = Thresholds.from_dict({"max_latency_p95_ms": 250, "max_bursts_lost": 2.0})
    assert t.max_latency_p95_ms == 250.0
    assert t.max_bursts_lost == 2 and isinstance(t.max_bursts_lost, int)
    assert t.min_snr_db == Thresholds().min_snr_db


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"max_latency": 1}, "unknown threshold 'max_latency'"),
        ({"min_snr_db": "20"}, "threshold 'min_snr_db' is '20', expected a number"),
        ({"min_snr_db": True}, "threshold 'min_snr_db' is True, expected a number"),
        ({"max_packet_loss_pct": -1}, "expected a finite number >= 0"),
        ({"max_bursts_lost": 1.5}, "expected a whole number"),
        ({"min_frames_received_share": 2}, "expected a share between 0 and 1"),
        ([1, 2], "thresholds must be a JSON object"),
    ],
)
def test_bad_values_name_the_field(data: object, message: str) -> None:
    """Every bad threshold raises VerifyError naming the field and what was expected."""
    with pytest.raises(VerifyError, match=message):
        Thresholds.from_dict(data)  # type: ignore[arg-type]
