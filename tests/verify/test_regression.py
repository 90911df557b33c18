"""The figures of synthesised runs with outages, lost, late, repeated and truncated bursts,
against figures stored before `verify.figures` and `verify._gaps` were restructured.

The stored figures (tests/verify/expected/) pin every figure of `verify.analyse`, so a change
in how the code is laid out cannot move a signed number. They are compared as `python -m verify
--check` compares a stored report with a fresh one (`verify.check`: the last rounded digit may
differ across CPUs). After a deliberate change of a figure's definition, rewrite them with
``python -m tests.verify.test_regression`` and say why in the commit.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from benchmarks import _synth as synth
from verify.figures import analyse_run

EXPECTED = Path(__file__).parent / "expected"


def _start_s(spec: synth.Spec, role: str, burst: int) -> float:
    return dict(synth.schedule(spec, role))[burst] / synth.RATE


def _outages_spec() -> synth.Spec:
    """Long bursts, outages over several bursts (one with the receiver's fade-out)."""
    return synth.Spec(
        duration_s=8.0,
        burst_s=0.9,
        period_s=1.0,
        customer=synth.Direction(outages=((2.25, 2.0),), outage_fade_s=0.04),
        support=synth.Direction(delay_ms=57.81, outages=((3.65, 1.3), (6.1, 0.05))),
    )


def _mixed_spec() -> synth.Spec:
    """A head cut (truncated), a short dropout (glitch), lost, repeated and late bursts."""
    spec = synth.Spec(duration_s=10.0, thresholds={"match_window_ms": 200})
    head = _start_s(spec, "customer", 2)
    inside = _start_s(spec, "customer", 5)
    spec.customer = synth.Direction(
        outages=((head - 0.05, 0.2), (inside + 0.12, 0.03)), lost=(7,), repeated=(4,)
    )
    spec.support = synth.Direction(
        delay_ms=57.81, late_ms={3: 300.0}, lost=(1, 6), jitter_ms=3.0, outliers=0.05
    )
    return spec


SPECS = {"outages": _outages_spec, "mixed": _mixed_spec}


def _figures(name: str, root: Path) -> dict[str, Any]:
    """The run's figures, and the state of every detection (what the plots colour)."""
    analysis = analyse_run(synth.make_run(root, SPECS[name]()))
    states = {d.label: d.states for d in analysis.details}
    return {"figures": analysis.figures, "detection_states": states}


def _differences(stored: Any, fresh: Any, where: str = "") -> list[str]:
    """Where `fresh` differs from `stored` beyond the re-check's rounding tolerance."""
    if isinstance(stored, dict) and isinstance(fresh, dict):
        if stored.keys() != fresh.keys():
            return [f"{where}: keys {sorted(stored)} != {sorted(fresh)}"]
        return [d for k in stored for d in _differences(stored[k], fresh[k], f"{where}.{k}")]
    if isinstance(stored, list) and isinstance(fresh, list):
        if len(stored) != len(fresh):
            return [f"{where}: {len(stored)} entries != {len(fresh)}"]
        return [
            d
            for i, (a, b) in enumerate(zip(stored, fresh, strict=True))
            for d in _differences(a, b, f"{where}[{i}]")
        ]
    if isinstance(stored, float) and isinstance(fresh, float):
        if math.isclose(stored, fresh, rel_tol=1e-6, abs_tol=2e-3):
            return []
    elif stored == fresh and type(stored) is type(fresh):
        return []
    return [f"{where}: stored {stored!r}, now {fresh!r}"]


@pytest.mark.parametrize("name", sorted(SPECS))
def test_figures_match_stored(name: str, tmp_path: Path) -> None:
    """Every figure of a synthesised run with outages and lost bursts equals the stored one."""
    stored = json.loads((EXPECTED / f"{name}.json").read_text())
    assert _differences(stored, _figures(name, tmp_path)) == []


if __name__ == "__main__":  # rewrite the stored figures (after a deliberate change only)
    for spec_name in sys.argv[1:] or sorted(SPECS):
        with tempfile.TemporaryDirectory() as tmp:
            figures = _figures(spec_name, Path(tmp))
        (EXPECTED / f"{spec_name}.json").write_text(json.dumps(figures, indent=1, sort_keys=True))
