"""Samples read a stretch at a time: what the detector needs of a recording too long to hold.

A `Source` is 1-D mono audio of a known length and dtype whose stretches are read on demand
(a file on disk, read with seeks); a numpy array is wrapped by `source_of`. The detector walks a
source in chunks and reads each burst's neighbourhood alone, so an hour's recording never has
to be in memory at once.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from dsp import _checks
from dsp._errors import DspError
from dsp.tone import SAMPLE_RATE

# What a reader of a whole source holds at once: a minute of 48 kHz audio.
CHUNK_SAMPLES = 60 * SAMPLE_RATE


class Source(Protocol):
    """1-D samples whose `read(start, stop)` gives `[start, stop)` cut to `[0, size)`."""

    @property
    def size(self) -> int: ...

    @property
    def dtype(self) -> np.dtype: ...

    def read(self, start: int, stop: int) -> np.ndarray: ...


class _Array:
    """A numpy array as a `Source` (its slices are views, no copies)."""

    def __init__(self, samples: np.ndarray) -> None:
        self._x = samples

    @property
    def size(self) -> int:
        return int(self._x.shape[0])

    @property
    def dtype(self) -> np.dtype:
        return self._x.dtype

    def read(self, start: int, stop: int) -> np.ndarray:
        return self._x[max(start, 0) : max(stop, 0)]


def source_of(samples: object, name: str = "samples", *, allow_empty: bool = False) -> Source:
    """`samples` as a `Source`: an array is checked (1-D, int16/float32/float64, finite, not
    empty unless `allow_empty`) and wrapped; anything with `size`, `dtype` and `read` is taken
    as it is."""
    if isinstance(samples, np.ndarray):
        return _Array(_checks.samples(name, samples, allow_empty=allow_empty))
    if all(hasattr(samples, a) for a in ("size", "dtype", "read")):
        return samples  # type: ignore[return-value]
    raise DspError(f"{name} must be a numpy array or a sample source, got {type(samples).__name__}")
