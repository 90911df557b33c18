"""The speech-like probe: deterministic from its seed, speech's level and rhythm, tones clear."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import welch

import dsp
from dsp import speech

RATE = 48_000


def test_same_seed_same_samples_other_seed_other_samples() -> None:
    """The probe is a function of its seed alone."""
    a = speech.artificial_voice(7, 3.0, RATE)
    assert np.array_equal(a, speech.artificial_voice(7, 3.0, RATE))
    assert not np.allclose(a, speech.artificial_voice(8, 3.0, RATE))


def test_level_pauses_and_band() -> None:
    """Speech's level (-26 dBFS while talking) with pauses, no clipping, energy in 100-7000 Hz."""
    x = speech.artificial_voice(1, 20.0, RATE)
    frames = x[: x.size // 480 * 480].reshape(-1, 480)
    sounding = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-20) > -60
    assert 0.4 < sounding.mean() < 0.95  # pauses between syllables: not a continuous noise
    level = 10 * np.log10(np.mean(x**2))  # over the pauses too: below the active level
    assert speech.LEVEL_DBFS - 4 < level < speech.LEVEL_DBFS
    assert np.abs(x).max() < 1.0
    freqs, power = welch(x, fs=RATE, nperseg=4096)
    inside = (freqs >= 70) & (freqs <= 7050)  # the band and its 20 Hz transitions
    assert power[inside].sum() > 0.999 * power.sum()


def test_clear_tones_leaves_no_burst_to_find() -> None:
    """With the tones' bands removed, the burst detector finds nothing in 20 s of probe."""
    x = speech.to_int16(
        speech.clear_tones(speech.artificial_voice(3, 20.0, RATE), RATE, [440, 550])
    )
    for tone in (440.0, 550.0):
        assert dsp.detect_bursts(x, RATE, tone, duration_s=0.3) == []
    freqs, power = welch(x / 32768, fs=RATE, nperseg=16384)
    near = (np.abs(freqs - 440) < 50) | (np.abs(freqs - 550) < 50)
    assert 10 * np.log10(power[near].max() / power.max()) < -60  # int16 quantisation: ~-74


def test_piece_fades_and_wraps() -> None:
    """A piece starts and ends at zero and wraps round the end of the probe signal."""
    probe = np.arange(1, 1001, dtype=np.int16)
    p = speech.piece(probe, 900, 2000, RATE)
    assert p[0] == 0 and p[-1] == pytest.approx(0, abs=1e-4)
    mid = 1000  # sample 900 + 1000 wraps to probe[900]
    assert p[mid] == pytest.approx(probe[900] / 32768)
