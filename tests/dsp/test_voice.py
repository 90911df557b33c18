"""dsp.find_voice: onsets and offsets of any sound to a fraction of a millisecond."""

from __future__ import annotations

import numpy as np
import pytest

import dsp
from dsp import _kernels as k

RATE = 48_000


def _signal(rng: np.random.Generator, start: float, end: float, kind: str) -> np.ndarray:
    """One second of low noise with a tone or a noise burst from `start` to `end` (fractional)."""
    n = np.arange(RATE)
    x = rng.standard_normal(RATE) * 10
    on = (n >= start) & (n < end)
    if kind == "tone":
        x[on] += 8000 * np.sin(2 * np.pi * 550 * (n[on] - start) / RATE + rng.uniform(0, 6.28))
    else:
        x[on] += rng.standard_normal(int(on.sum())) * 3000
    return np.round(x).astype(np.int16)


@pytest.mark.parametrize("kind", ["tone", "noise"])
def test_onset_and_offset_within_a_tenth_of_a_millisecond(kind: str) -> None:
    """Sounds starting and ending at fractional samples are found within 0.1 ms (4.8 samples)."""
    rng = np.random.default_rng(3)
    errors = []
    for _ in range(25):
        start = 10_000 + rng.uniform(0, 48)
        end = start + rng.uniform(4_800, 9_600)
        found = dsp.find_voice(_signal(rng, start, end, kind), RATE).segments
        assert len(found) == 1, found
        errors.append((found[0].onset - start, found[0].offset - end))
    worst_ms = np.abs(np.array(errors)).max(axis=0) / RATE * 1000
    assert worst_ms[0] < 0.1 and worst_ms[1] < 0.1, worst_ms


def test_a_shift_moves_the_onset_by_the_same_amount() -> None:
    """The same sound 300.25 ms later is found 300.25 ms later, to 0.01 ms."""
    rng = np.random.default_rng(5)
    wave = (np.sin(2 * np.pi * 550 * np.arange(9_600) / RATE) * 6000).astype(np.float64)
    onsets = []
    for at in (10_000.0, 10_000.0 + 0.30025 * RATE):
        x = rng.standard_normal(2 * RATE) * 5
        i = int(at)
        frac = at - i
        # a fractional shift: the sound sampled frac samples later
        t = np.arange(9_600) - frac
        x[i : i + 9_600] += np.sin(2 * np.pi * 550 * np.clip(t, 0, None) / RATE) * 6000 * (t >= 0)
        onsets.append(dsp.find_voice(np.round(x).astype(np.int16), RATE).segments[0].onset)
    assert wave.size
    assert abs((onsets[1] - onsets[0]) / RATE * 1000 - 300.25) < 0.01


def test_pauses_split_and_dips_merge() -> None:
    """A 200 ms pause splits two segments; a 10 ms dropout inside one is a dip, not a split."""
    x = np.zeros(RATE, dtype=np.float64)
    x[4_800:14_400] = 0.3  # 100-300 ms
    x[24_000:33_600] = 0.3  # 500-700 ms: after a 200 ms pause
    x[28_800:29_280] = 0.0  # a 10 ms dropout inside the second
    voice = dsp.find_voice(x, RATE)
    assert [(round(s.onset), round(s.offset), s.dips) for s in voice.segments] == [
        (4_800, 14_400, 0),
        (24_000, 33_600, 1),
    ]


def test_silence_has_no_voice() -> None:
    """Digital silence and low noise give no segment; the threshold keeps its floor."""
    assert dsp.find_voice(np.zeros(RATE, np.int16), RATE).segments == []
    quiet = np.round(np.random.default_rng(1).standard_normal(RATE) * 2).astype(np.int16)
    voice = dsp.find_voice(quiet, RATE)
    assert voice.segments == [] and voice.threshold_dbfs == pytest.approx(-55.0)


def test_bad_arguments_are_named() -> None:
    """A 2-D array or a bad window raises DspError naming it."""
    with pytest.raises(dsp.DspError, match="samples must be 1-D"):
        dsp.find_voice(np.zeros((2, 10), np.int16))
    with pytest.raises(dsp.DspError, match="window_s"):
        dsp.find_voice(np.zeros(10, np.int16), window_s=0)


def test_kernels_match_their_python() -> None:
    """sliding_power and first_crossing give what their .py_func gives."""
    x = np.round(np.random.default_rng(2).standard_normal(5_000) * 1000).astype(np.int16)
    a, b = np.empty(900), np.empty(900)
    k.sliding_power(x, 4_500, 5_400, 240, a)
    k.sliding_power.py_func(x, 4_500, 5_400, 240, b)
    np.testing.assert_allclose(a, b, rtol=1e-9)
    env = np.array([0.0, 1.0, 3.0, 5.0, 2.0])
    assert k.first_crossing(env, 2.0, True) == k.first_crossing.py_func(env, 2.0, True) == 1.5
    assert k.first_crossing(env, 4.0, False) == pytest.approx(3 + 1 / 3)
