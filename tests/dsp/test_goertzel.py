"""goertzel_power and GoertzelStream against a float64 DTFT reference."""

from __future__ import annotations

import numpy as np
import pytest

import dsp
from dsp import goertzel as goertzel_module


def _reference(x: np.ndarray, rate: float, freqs, block: int) -> np.ndarray:
    """|sum x[n] exp(-j w n)|**2 per block, float64, straight from the definition."""
    n_blocks = x.shape[0] // block
    blocks = x[: n_blocks * block].astype(np.float64).reshape(n_blocks, block)
    n = np.arange(block)
    basis = np.exp(-2j * np.pi * np.outer(n, np.asarray(freqs, dtype=np.float64)) / rate)
    return np.abs(blocks @ basis) ** 2


@pytest.fixture
def noisy_tones():
    """Two seconds of 440 Hz + 550 Hz + noise, float64 in [-1, 1]."""
    rng = np.random.default_rng(3)
    n = np.arange(2 * 48000)
    x = 0.3 * np.sin(2 * np.pi * 440 * n / 48000) + 0.2 * np.sin(2 * np.pi * 550 * n / 48000 + 1)
    return x + 0.05 * rng.standard_normal(n.shape[0])


@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.float64])
@pytest.mark.parametrize("block", [480, 160, 1001])
def test_matches_dtft_reference(noisy_tones, dtype, block):
    """Every dtype and block length, frequencies off the DFT bins, trailing samples ignored."""
    x = (noisy_tones * 30000).astype(dtype) if dtype is np.int16 else noisy_tones.astype(dtype)
    freqs = [440.0, 550.0, 123.4, 3000.0, 23999.0]
    got = dsp.goertzel_power(x, 48000, freqs, block=block)
    want = _reference(x, 48000, freqs, block)
    assert got.shape == (x.shape[0] // block, 5)
    assert got.dtype == np.float64
    scale = want.max()
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=scale * 1e-12)


def test_tone_power_scale():
    """A full block of a tone of amplitude A at the frequency gives (A block / 2)**2."""
    n = np.arange(4800)
    x = 0.5 * np.sin(2 * np.pi * 500 * n / 48000)  # whole cycles per block: no leakage
    power = dsp.goertzel_power(x, 48000, [500.0, 1000.0])
    np.testing.assert_allclose(power[:, 0], (0.5 * 480 / 2) ** 2, rtol=1e-9)
    assert np.all(power[:, 1] < 1e-12 * power[:, 0])


def test_long_input_in_chunks(monkeypatch, noisy_tones):
    """Input longer than one kernel chunk gives the same rows as the reference."""
    monkeypatch.setattr(goertzel_module, "_CHUNK_BLOCKS", 7)
    got = dsp.goertzel_power(noisy_tones, 48000, [440.0, 550.0])
    np.testing.assert_allclose(got, _reference(noisy_tones, 48000, [440.0, 550.0], 480), rtol=1e-9)


def test_short_input_gives_no_rows():
    """Fewer samples than one block: an empty (0, K) result, not an error."""
    assert dsp.goertzel_power(np.zeros(100, np.int16), 48000, [440.0, 550.0]).shape == (0, 2)


@pytest.mark.parametrize("sizes", [[480] * 20, [1, 479, 480, 0, 1000, 7, 33, 2000], [333] * 29])
def test_stream_equals_batch(noisy_tones, sizes):
    """Rows from frames of any size (including empty) equal the batch rows."""
    x = (noisy_tones[: sum(sizes)] * 30000).astype(np.int16)
    stream = dsp.GoertzelStream(48000, [440.0, 550.0])
    rows, at = [], 0
    for size in sizes:
        out = stream.process(x[at : at + size])
        assert out.shape[1] == 2
        rows.append(out)
        at += size
    assert stream.pending == x.shape[0] % 480
    got = np.concatenate(rows)
    np.testing.assert_allclose(got, dsp.goertzel_power(x, 48000, [440.0, 550.0]), rtol=1e-12)


def test_stream_reset_forgets_pending():
    """After reset the stream starts a fresh block."""
    stream = dsp.GoertzelStream(48000, [440.0])
    stream.process(np.ones(100))
    stream.reset()
    assert stream.pending == 0
    assert stream.process(np.ones(480)).shape == (1, 1)


@pytest.mark.parametrize("n_freqs", [1, 2, 4, 8, 23, 24, 32])
def test_every_layout_matches_reference(noisy_tones, n_freqs):
    """Each K takes its own kernel layout; all agree with the DTFT."""
    x = (noisy_tones * 30000).astype(np.int16)
    freqs = np.linspace(100.0, 5000.0, n_freqs)
    got = dsp.goertzel_power(x, 48000, freqs)
    want = _reference(x, 48000, freqs, 480)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=want.max() * 1e-12)
