"""Tone power per block with the Goertzel recursion: batch (``goertzel_power``) and streaming.

The power of block ``b`` at frequency ``f`` is ``|sum_n x[b*block + n] exp(-2j pi f n / rate)|**2``
in the input's own units (int16 counts or float), i.e. the DTFT at exactly ``f`` (no rounding to
a DFT bin). A full block of a tone of amplitude ``A`` at ``f`` gives about ``(A * block / 2)**2``.
Trailing samples that do not fill a block are ignored (batch) or kept for the next call (stream).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dsp import _checks
from dsp._kernels import STEP, goertzel_blocks

# Blocks per kernel call: bounds the kernel's working set (and any output slice) on long input.
_CHUNK_BLOCKS = 1 << 14


class _Workspace:
    """Scratch arrays of the Goertzel kernel for K frequencies (reused between calls)."""

    def __init__(self, n_freqs: int):
        self.s_a = np.empty(n_freqs)
        self.s_b = np.empty(n_freqs)


def _coefficients(freqs: np.ndarray, sample_rate: float) -> np.ndarray:
    """The kernel's ``(STEP + 1, K)`` table: row 1 holds the Goertzel coefficients 2 cos(w)."""
    table = np.empty((STEP + 1, freqs.shape[0]))
    table[0] = 1.0
    table[1] = 2.0 * np.cos(2.0 * np.pi * freqs / sample_rate)
    for i in range(2, STEP + 1):
        table[i] = table[1] * table[i - 1] - table[i - 2]
    return table


def _run(
    x: np.ndarray, n_blocks: int, block: int, coeffs: np.ndarray, work: _Workspace
) -> np.ndarray:
    out = np.empty((n_blocks, coeffs.shape[1]), dtype=np.float64)
    for first in range(0, n_blocks, _CHUNK_BLOCKS):
        n = min(_CHUNK_BLOCKS, n_blocks - first)
        goertzel_blocks(
            x, first * block, n, block, coeffs, out[first : first + n], work.s_a, work.s_b
        )
    return out


def goertzel_power(
    samples: np.ndarray,
    sample_rate: float,
    freqs_hz: Sequence[float] | np.ndarray,
    block: int = 480,
) -> np.ndarray:
    """Power of every complete ``block`` of ``samples`` at each of ``freqs_hz``: ``(n_blocks, K)``.

    ``samples`` is 1-D int16, float32 or float64, read in place (no full-length copy).
    """
    rate = _checks.positive("sample_rate", sample_rate)
    freqs = _checks.frequencies("freqs_hz", freqs_hz, rate)
    size = _checks.count("block", block)
    x = _checks.samples("samples", samples)
    return _run(x, x.shape[0] // size, size, _coefficients(freqs, rate), _Workspace(freqs.shape[0]))


class GoertzelStream:
    """``goertzel_power`` fed frame by frame: each call returns the blocks it completed.

    Samples left over after the last complete block are kept for the next call, so the rows
    returned over a whole stream equal ``goertzel_power`` of the concatenated frames.
    """

    def __init__(
        self, sample_rate: float, freqs_hz: Sequence[float] | np.ndarray, block: int = 480
    ):
        self.sample_rate = _checks.positive("sample_rate", sample_rate)
        self.freqs_hz = _checks.frequencies("freqs_hz", freqs_hz, self.sample_rate)
        self.block = _checks.count("block", block)
        self._coeffs = _coefficients(self.freqs_hz, self.sample_rate)
        self._work = _Workspace(self.freqs_hz.shape[0])
        self._pending = np.empty(0, dtype=np.float64)

    @property
    def pending(self) -> int:
        """Samples received but not yet part of a complete block."""
        return int(self._pending.shape[0])

    def process(self, frame: np.ndarray) -> np.ndarray:
        """Add ``frame`` (1-D int16/float32/float64, may be empty); return ``(n_complete, K)``."""
        x = _checks.samples("frame", frame, allow_empty=True)
        if self._pending.shape[0]:
            x = np.concatenate((self._pending, x.astype(np.float64)))
        n_blocks = x.shape[0] // self.block
        out = _run(x, n_blocks, self.block, self._coeffs, self._work)
        self._pending = x[n_blocks * self.block :].astype(np.float64)
        return out

    def reset(self) -> None:
        """Forget the pending samples (start a new stream)."""
        self._pending = np.empty(0, dtype=np.float64)
