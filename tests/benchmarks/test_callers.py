"""The callers benchmark's parts: the bare caller says what our Customer says, and one
side-by-side measurement against the real example agent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks import _bare_sdk as bare
from benchmarks import callers
from pipeline.agent.utterances import tone, turns
from tests.echoproof.sfu._agents import agent_python


def test_the_bare_caller_says_the_customers_turns() -> None:
    """The bare caller's turns start and end where the pipeline's Customer's do."""
    samples, ends = bare.turn_signal(20.0, callers.WINDOW_S)
    burst = np.zeros(round(bare.BURST_S * bare.RATE), dtype=np.int16) + 1000
    ours = turns([tone(burst, 440.0)], duration_s=20.0, window_s=callers.WINDOW_S)
    assert ends == [t.end_sample for t in ours]
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > 0)
    assert loud[0] >= ours[0].start_sample and loud[-1] < ours[-1].end_sample


def test_a_window_of_cpu_samples_reads_cores_and_steal() -> None:
    """Half a core over the audio's middle, 1 % steal: read back from the samples."""
    samples = [(t, 0.5 * t, (int(t * 10), int(t * 1000))) for t in np.arange(0.0, 12.0, 0.2)]
    found = callers._window(samples, 1.0, 10.0)
    assert found["cores"] == pytest.approx(0.5, abs=1e-3)
    assert found["steal_pct"] == pytest.approx(1.0, abs=0.01)
    assert callers._window(samples, None, 10.0) == {"cores": None, "steal_pct": None}


def test_our_caller_and_the_bare_one_are_measured_side_by_side(tmp_path: Path) -> None:
    """Against the real example agent: both callers' CPU per audio second is measured."""
    python = agent_python()
    found = callers.cost(python, 8.0, 1, tmp_path)
    [trial] = found["trials"]
    assert trial["ours"]["cores"] > 0 and trial["bare"]["cores"] > 0
    assert found["overhead_ratio"] == pytest.approx(
        trial["ours"]["cores"] / trial["bare"]["cores"], abs=1e-3
    )
