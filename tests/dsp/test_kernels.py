"""Every numba kernel gives what its pure-Python ``.py_func`` gives."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dsp import _kernels as k
from dsp.goertzel import _coefficients


@pytest.fixture
def signal():
    """Half a second of a 440 Hz tone in noise, int16."""
    rng = np.random.default_rng(11)
    n = np.arange(24000)
    x = 8000 * np.sin(2 * np.pi * 440 * n / 48000) + rng.standard_normal(n.shape[0]) * 2000
    return np.round(x).astype(np.int16)


def test_sine_int16():
    """Tone synthesis, including the phase it returns."""
    a, b = np.empty(1000, np.int16), np.empty(1000, np.int16)
    pa = k.sine_int16(a, 0.3, 440 / 48000, 16383.5)
    pb = k.sine_int16.py_func(b, 0.3, 440 / 48000, 16383.5)
    np.testing.assert_array_equal(a, b)
    assert pa == pytest.approx(pb, abs=1e-12)


def test_burst_wave():
    """Burst synthesis at a fractional offset."""
    a, b = np.empty(5000), np.empty(5000)
    args = (10.37, 2 * math.pi * 550 / 48000, 240.0, 4800.0, 1.0)
    k.burst_wave(a, *args)
    k.burst_wave.py_func(b, *args)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("block", [480, 97])
@pytest.mark.parametrize("n_freqs", [1, 3, 4, 9, 30])
@pytest.mark.parametrize("n_blocks", [5, 20])
def test_goertzel_blocks(signal, block, n_freqs, n_blocks):
    """Every layout (by K), odd blocks, blocks left over from groups of eight."""
    table = _coefficients(np.linspace(300.0, 3000.0, n_freqs), 48000)
    outs = []
    for fn in (k.goertzel_blocks, k.goertzel_blocks.py_func):
        out = np.empty((n_blocks, n_freqs))
        fn(signal, block, n_blocks, block, table, out, np.empty(n_freqs), np.empty(n_freqs))
        outs.append(out)
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-9, atol=1e-6)


def test_block_energy(signal):
    """Sum of squares per block."""
    a, b = np.empty(40), np.empty(40)
    k.block_energy(signal, 100, 40, 480, a)
    k.block_energy.py_func(signal, 100, 40, 480, b)
    np.testing.assert_allclose(a, b, rtol=1e-12)


def test_sine_sums_and_hann_demod(signal):
    """The sums of the sine fit and the windowed demodulation."""
    omega = 2 * math.pi * 440 / 48000
    np.testing.assert_allclose(
        k.sine_sums(signal, 7, omega), k.sine_sums.py_func(signal, 7, omega), rtol=1e-9, atol=1e-9
    )
    np.testing.assert_allclose(
        k.hann_demod(signal, 7, omega, 960, 240),
        k.hann_demod.py_func(signal, 7, omega, 960, 240),
        rtol=1e-9,
        atol=1e-6,
    )


@pytest.mark.parametrize("rising", [True, False])
def test_edge_scores(signal, rising):
    """Ramp likelihoods at fractional candidate positions."""
    x = signal.astype(np.float64)[:3000]
    carrier = np.sin(2 * math.pi * 440 / 48000 * np.arange(3000))
    u, s2 = x * carrier, carrier * carrier
    v_cum = np.concatenate(([0.0], np.cumsum(2 * 8000 * u - 8000**2 * s2)))
    taus = np.array([-3.0, 100.25, 1000.5, 2999.0, 4000.0])
    a = k.edge_scores(v_cum, u, s2, 0, taus, 240.0, rising, 8000.0)
    b = k.edge_scores.py_func(v_cum, u, s2, 0, taus, 240.0, rising, 8000.0)
    np.testing.assert_allclose(a, b, rtol=1e-12)


@pytest.mark.parametrize("block", [480, 97])
def test_goertzel_helpers_match_reference(signal, block):
    """The two inner layouts, run as plain Python, give the float64 DTFT power."""
    freqs = np.array([440.0, 550.0, 1234.5])
    coeffs = 2 * np.cos(2 * np.pi * freqs / 48000)
    blocks = signal[: 8 * block].astype(np.float64).reshape(8, block)
    basis = np.exp(-2j * np.pi * np.outer(np.arange(block), freqs) / 48000)
    want = np.abs(blocks @ basis) ** 2
    eight = np.empty((8, 3))
    for j in range(3):
        k._goertzel_eight_blocks.py_func(signal, 0, block, coeffs[j], eight, 0, j)
    wide = np.empty((8, 3))
    stepped = np.empty((8, 3))
    table = _coefficients(freqs, 48000)
    for b in range(8):
        k._goertzel_over_freqs.py_func(
            signal, b * block, block, coeffs, np.empty(3), np.empty(3), wide[b]
        )
        k._goertzel_stepped.py_func(
            signal, b * block, block, table, np.empty(3), np.empty(3), stepped[b]
        )
    np.testing.assert_allclose(eight, want, rtol=1e-9)
    np.testing.assert_allclose(wide, want, rtol=1e-9)
    np.testing.assert_allclose(stepped, want, rtol=1e-9)


def test_phasor_matches_cos_and_sin():
    """The table-and-anchor oscillator gives cos and sin of the angle to ~1e-12, past resyncs."""
    c, s = np.empty(1000), np.empty(1000)
    k._phasor(0.7, 0.0576, c, s)
    angle = 0.7 + 0.0576 * np.arange(1000)
    np.testing.assert_allclose(c, np.cos(angle), rtol=0, atol=1e-12)
    np.testing.assert_allclose(s, np.sin(angle), rtol=0, atol=1e-12)
    c2, s2 = np.empty(1000), np.empty(1000)
    k._phasor.py_func(0.7, 0.0576, c2, s2)
    np.testing.assert_allclose(c2, np.cos(angle), rtol=0, atol=1e-12)
    np.testing.assert_allclose(s2, np.sin(angle), rtol=0, atol=1e-12)


def test_edge_terms(signal):
    """Carrier, products and prefix sums over a region, against plain numpy."""
    x = signal.astype(np.float64)
    omega, theta, gain = 2 * math.pi * 440 / 48000, 0.4, 8000.0
    carrier = np.sin(omega * np.arange(500, 3100) - theta)
    u, s2 = x[500:3100] * carrier, carrier * carrier
    v_cum = np.concatenate(([0.0], np.cumsum(2 * gain * u - gain**2 * s2)))
    for fn in (k.edge_terms, k.edge_terms.py_func):
        got = fn(x, 500, 3100, omega, theta, gain)
        for a, b in zip(got, (carrier, u, s2, v_cum), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-6)


@pytest.mark.parametrize("end", [math.inf, 2400.5])
def test_model_residual(signal, end):
    """The residual of the burst model, and the bound on any tone left in it."""
    x = signal.astype(np.float64)
    omega, theta, gain, ramp, onset = 2 * math.pi * 440 / 48000, 0.4, 8000.0, 240.0, 700.25
    carrier = np.sin(omega * np.arange(500, 2700) - theta)
    n = np.arange(500, 2700, dtype=np.float64)
    rise = 0.5 - 0.5 * np.cos(np.pi * np.clip((n - onset) / ramp, 0, 1))
    fall = 0.5 - 0.5 * np.cos(np.pi * np.clip((end - n) / ramp, 0, 1))
    want = x[500:2700] - gain * rise * fall * carrier
    window = np.hanning(want.shape[0])
    largest = np.abs(np.fft.rfft(want * window, 1 << 14)).max() * 2 / window.sum()
    for fn in (k.model_residual, k.model_residual.py_func):
        residual, bound = fn(x, 500, carrier, onset, end, ramp, gain)
        np.testing.assert_allclose(residual, want, rtol=0, atol=1e-6)
        assert largest <= bound == pytest.approx(2 * np.abs(want * window).sum() / window.sum())
