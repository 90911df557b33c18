"""Signals shared by the dsp tests: bursts placed in noise at a known full-band SNR."""

from __future__ import annotations

import numpy as np

import dsp

RATE = dsp.SAMPLE_RATE
BURST_AMPLITUDE = 0.5


def noise_sigma(snr_db: float, amplitude: float = BURST_AMPLITUDE) -> float:
    """White-noise std (int16 counts) for ``snr_db`` against a tone of ``amplitude``."""
    tone_power = (amplitude * 32767) ** 2 / 2
    return float(np.sqrt(tone_power / 10 ** (snr_db / 10)))


def recording(
    length: int,
    placements: list[tuple[float, float, float]],
    snr_db: float | None,
    rng: np.random.Generator,
    duration_s: float = 0.3,
) -> np.ndarray:
    """int16 recording of ``length`` samples with one ``dsp.burst`` per (freq, start, offset).

    Each burst's array starts at integer ``start``; its sample 0 lies at ``start + offset``;
    a burst running past the end is cut there.
    """
    x = np.zeros(length)
    for freq, start, offset in placements:
        wave = dsp.burst(freq, duration_s, offset=offset).astype(np.float64)
        stop = min(length, int(start) + wave.shape[0])
        x[int(start) : stop] += wave[: stop - int(start)]
    if snr_db is not None:
        x += rng.standard_normal(length) * noise_sigma(snr_db)
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)
