"""Bursts through a real Opus encode/decode (PyAV libopus, 32 kbit/s as WebRTC uses for voice)."""

from __future__ import annotations

import numpy as np
import pytest

import dsp
from benchmarks._opus import opus_round_trip

from ._signals import RATE, recording

# libopus at 48 kHz delays by 312 samples (6.5 ms); its phase response moves the tone's carrier
# by a few samples more or less depending on the mode it picks: constant, and kept as latency.
OPUS_DELAY = (300.0, 320.0)


def _errors(freq, snr_db, trials, seed, duration_hint):
    rng = np.random.default_rng(seed)
    errors = []
    for _ in range(trials):
        start, offset = int(rng.integers(2000, 4000)), float(rng.uniform(0, 1))
        x = opus_round_trip(recording(RATE // 2, [(freq, start, offset)], snr_db, rng))
        found = dsp.detect_bursts(x, RATE, freq, duration_s=duration_hint)
        assert len(found) == 1, found
        errors.append(found[0].onset - (start + offset))
    return np.array(errors)


def test_round_trip_keeps_length_and_level():
    """The helper returns the whole signal, delayed, at the same level."""
    x = recording(RATE // 2, [(440.0, 3000, 0.0)], None, np.random.default_rng(0))
    y = opus_round_trip(x)
    assert y.dtype == np.int16 and y.shape[0] >= x.shape[0]
    (burst,) = dsp.detect_bursts(y, RATE, 440.0)
    assert burst.level_dbfs == pytest.approx(-6.02, abs=0.5)
    assert OPUS_DELAY[0] < burst.onset - 3000 < OPUS_DELAY[1]


@pytest.mark.parametrize("freq", [440.0, 550.0])
def test_opus_at_0_db_snr(freq):
    """0 dB SNR then Opus: onset std within 5 us, no cycle slip in 100 trials (duration known)."""
    errors = _errors(freq, 0, 100, seed=int(freq), duration_hint=0.3)
    delay = float(np.median(errors))
    assert OPUS_DELAY[0] < delay < OPUS_DELAY[1]
    assert errors.std() < 0.24
    assert np.max(np.abs(errors - delay)) < 0.25 * RATE / freq


@pytest.mark.parametrize("freq", [440.0, 550.0])
def test_opus_at_20_db_snr(freq):
    """20 dB SNR then Opus, without knowing the duration: a constant delay, tight spread."""
    errors = _errors(freq, 20, 40, seed=3 + int(freq), duration_hint=None)
    assert OPUS_DELAY[0] < float(np.median(errors)) < OPUS_DELAY[1]
    assert errors.std() < 0.1
