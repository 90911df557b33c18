"""ToneGenerator and burst against float64 references."""

from __future__ import annotations

import numpy as np
import pytest

import dsp


def _reference_burst(freq, duration_s, offset, ramp_s=0.005, amplitude=0.5, rate=48000):
    n = np.arange(int(np.floor(offset + duration_s * rate)) + 1)
    t = n - offset
    ramp, dur = ramp_s * rate, duration_s * rate
    env = np.ones_like(t)
    env[(t <= 0) | (t >= dur)] = 0.0
    rising = (t > 0) & (t < ramp)
    env[rising] = 0.5 - 0.5 * np.cos(np.pi * t[rising] / ramp)
    falling = (t > dur - ramp) & (t < dur)
    env[falling] = 0.5 - 0.5 * np.cos(np.pi * (dur - t[falling]) / ramp)
    return amplitude * 32767 * env * np.sin(2 * np.pi * freq * t / rate)


def test_constants():
    """The stream format every package codes against."""
    assert (dsp.SAMPLE_RATE, dsp.FRAME_SAMPLES) == (48000, 480)


def test_tone_generator_matches_reference():
    """Frames of any size concatenate to one sine of the requested amplitude."""
    gen = dsp.ToneGenerator(440.0, amplitude=0.5)
    frames = [gen.frame(n) for n in (480, 1, 333, 480, 960, 7)]
    for frame in frames:
        assert frame.dtype == np.int16
    got = np.concatenate(frames).astype(np.float64)
    n = np.arange(got.shape[0])
    want = 0.5 * 32767 * np.sin(2 * np.pi * 440.0 * n / 48000)
    assert np.max(np.abs(got - want)) <= 0.5 + 1e-6


def test_tone_generator_has_no_click_at_frame_edges():
    """Sample-to-sample steps across frame edges stay within the sine's own slope."""
    gen = dsp.ToneGenerator(550.0, amplitude=1.0)
    x = np.concatenate([gen.frame() for _ in range(200)]).astype(np.float64)
    max_step = 32767 * 2 * np.pi * 550.0 / 48000 + 1
    assert np.max(np.abs(np.diff(x))) <= max_step


def test_tone_generator_keeps_phase_over_a_minute():
    """After a minute of frames the phase still matches the exact sine (no drift)."""
    gen = dsp.ToneGenerator(441.3)
    frames = 6_000
    for _ in range(frames):
        gen.frame()
    got = gen.frame().astype(np.float64)
    n = frames * 480 + np.arange(480)
    want = 0.5 * 32767 * np.sin(2 * np.pi * ((4413 * n) % 480_000) / 480_000)
    assert np.max(np.abs(got - want)) <= 0.5 + 1e-6


@pytest.mark.parametrize("offset", [0.0, 0.25, 0.5, 17.3, 123.999])
@pytest.mark.parametrize("freq", [440.0, 550.0])
def test_burst_matches_reference(freq, offset):
    """burst equals the float64 formula (rounded) at fractional offsets."""
    got = dsp.burst(freq, 0.3, offset=offset)
    want = _reference_burst(freq, 0.3, offset)
    assert got.dtype == np.int16
    assert got.shape == want.shape
    assert np.max(np.abs(got - want)) <= 0.5 + 1e-6


def test_burst_has_smooth_ramps_and_starts_at_offset():
    """Silent before its offset, ramps without a step, peak at the requested amplitude."""
    x = dsp.burst(440.0, 0.2, offset=50.0, amplitude=0.25).astype(np.float64)
    assert not x[:51].any()
    # |d/dn (w sin)| <= omega + max |w'|: the carrier's slope plus the ramp's, never a step
    slope = 2 * np.pi * 440 / 48000 + np.pi / (2 * 240)
    assert np.max(np.abs(np.diff(x[:400]))) <= 0.25 * 32767 * slope + 1
    assert abs(np.max(np.abs(x)) - 0.25 * 32767) <= 1.0
    assert x.shape[0] == 50 + int(0.2 * 48000) + 1
