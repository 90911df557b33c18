"""detect_bursts on a Source read a chunk at a time finds what it finds in the whole array."""

from __future__ import annotations

import numpy as np
import pytest

import dsp
from dsp import source
from dsp.source import source_of

from ._signals import RATE, recording


class _Reads:
    """An int16 array as a Source that notes the longest stretch read."""

    dtype = np.dtype(np.int16)

    def __init__(self, samples: np.ndarray) -> None:
        self._x = samples
        self.size = samples.size
        self.longest = 0

    def read(self, start: int, stop: int) -> np.ndarray:
        start, stop = max(start, 0), min(stop, self.size)
        self.longest = max(self.longest, stop - start)
        return self._x[start:stop].copy()


def test_a_source_read_in_chunks_gives_the_bursts_of_the_whole_array(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Chunks of 0.5 s against bursts of 0.3 s every 0.37 s: many straddle a chunk's edge, one
    runs past the end; every figure is the same, and no read is longer than a chunk (or a
    burst's neighbourhood)."""
    rng = np.random.default_rng(3)
    starts = [(440.0, 1000 + k * 0.37 * RATE // 1, float(rng.uniform(0, 1))) for k in range(20)]
    x = recording(int(starts[-1][1]) + 7000, starts, 20, rng)  # the last burst cut after 146 ms
    whole = dsp.detect_bursts(x, RATE, 440.0, duration_s=0.3)
    monkeypatch.setattr(source, "CHUNK_SAMPLES", 50 * 480)
    reads = _Reads(x)
    assert dsp.detect_bursts(reads, RATE, 440.0, duration_s=0.3) == whole
    assert len(whole) == 20
    assert reads.longest <= 0.5 * RATE


def test_a_source_must_be_an_array_or_read_stretches() -> None:
    """Neither an array nor a Source: one sentence naming what came."""
    with pytest.raises(dsp.DspError, match="must be a numpy array or a sample source, got list"):
        dsp.detect_bursts([0, 1, 2], RATE, 440.0)  # type: ignore[arg-type]
    with pytest.raises(dsp.DspError, match="samples is empty"):
        source_of(np.zeros(0, np.int16))
    assert source_of(np.zeros(0, np.int16), allow_empty=True).size == 0


def test_progress_is_told_the_samples_dealt_with_up_to_the_end() -> None:
    """Positions rise as the bursts are timed; the last is the input's length."""
    rng = np.random.default_rng(4)
    x = recording(RATE * 3, [(440.0, 1000 + k * RATE // 2, 0.5) for k in range(5)], 20, rng)
    told: list[int] = []
    assert len(dsp.detect_bursts(x, RATE, 440.0, progress=told.append)) == 5
    assert told == sorted(told) and len(told) == 6 and told[-1] == x.size
    told.clear()
    assert dsp.detect_bursts(x[:100], RATE, 440.0, progress=told.append) == []
    assert told == [100]
